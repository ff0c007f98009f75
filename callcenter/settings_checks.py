"""Consistency rules of the configuration that no single key can check (issue 10).

Each rule raises ValueError("key.path: problem"); `settings.load_settings` adds the file. Checked:
hotline numbers and the callback's dial prefix and context (they reach the PBX), a post whose queue belongs to no department (or to another department), one queue in two
departments (per PBX: a queue without a PBX is on every PBX), one hotline number in two
departments, a post whose A is its B, one interface (or member name) for two agents, and a web
API reachable beyond this host without TLS (`web.tls`) or a TLS reverse proxy (`web.behind_proxy`).

Several PBXes (issue 14): a hotline number, interface or member name is claimed once per PBX (one
without a PBX is on every PBX, so it collides with any other claim); a post must be on one PBX
(its `pbx`, its queue's, or the only one) and its queue and agents must be on that PBX.
"""
from __future__ import annotations

import ipaddress
import ssl
import re
from pathlib import Path

from .domain.validation import IDENT, PHONE

DIAL_PREFIX = re.compile(r"[0-9*#]{0,10}")


def check(settings) -> None:
    _values(settings)
    _queues(settings)
    _hotlines(settings)
    _posts(settings)
    _agents(settings)
    _web(settings.web)


def _values(settings) -> None:
    """What ends up in an Originate (hotline as caller id, dial prefix, context) must be dialable."""
    for i, d in enumerate(settings.departments):
        for j, number in enumerate(d.hotlines):
            if not PHONE.fullmatch(number):
                raise ValueError(f"departments[{i}].hotlines[{j}]: {number!r} is not a phone number "
                                 "(3 to 20 digits with an optional leading +)")
    cb = settings.followup.callback
    if not DIAL_PREFIX.fullmatch(cb.dial_prefix):
        raise ValueError(f"followup.callback.dial_prefix: {cb.dial_prefix!r}: only digits, * and # are allowed")
    if not IDENT.fullmatch(cb.context):
        raise ValueError(f"followup.callback.context: {cb.context!r} is not a dialplan context name "
                         "(A-Z a-z 0-9 _ . - starting with a letter or digit)")


def _queues(settings) -> None:
    owners: dict[str, list[tuple[str, str, str]]] = {}        # name -> [(pbx, department, key path)]
    for i, d in enumerate(settings.departments):
        for j, q in enumerate(d.queues):
            for pbx, other, where in owners.get(q.name, []):
                if other != d.id and (pbx == q.pbx or "*" in (pbx, q.pbx)):
                    on = "every PBX" if "*" in (pbx, q.pbx) else f"PBX {q.pbx}"
                    raise ValueError(f"departments[{i}].queues[{j}]: queue {q.name!r} on {on} already belongs "
                                     f"to department {other!r} ({where}); a queue belongs to one department")
            owners.setdefault(q.name, []).append((q.pbx, d.id, f"departments[{i}].queues[{j}]"))


def _on(a: str, b: str) -> str | None:
    """Where two claims meet: "every PBX", "PBX x", or None (different PBXes)."""
    if "*" in (a, b):
        return "every PBX" if a == b else f"PBX {a if b == '*' else b}"
    return f"PBX {a}" if a == b else None


def _hotlines(settings) -> None:
    seen: dict[str, list[tuple[str, str, str]]] = {}          # number -> [(pbx, department, key path)]
    for i, d in enumerate(settings.departments):
        for j, number in enumerate(d.hotlines):
            pbx = getattr(number, "pbx", "*")
            for other_pbx, other, where in seen.get(str(number), []):
                on = _on(pbx, other_pbx)
                if other != d.id and on:
                    raise ValueError(f"departments[{i}].hotlines[{j}]: hotline {str(number)!r} already belongs to "
                                     f"department {other!r} on {on} ({where}); a hotline number belongs to one "
                                     "department on each PBX (give each its pbx)")
            seen.setdefault(str(number), []).append((pbx, d.id, f"departments[{i}].hotlines[{j}]"))


def _posts(settings) -> None:
    queue_departments: dict[str, set[str]] = {}
    for d in settings.departments:
        for q in d.queues:
            queue_departments.setdefault(q.name, set()).add(d.id)
    agents = {a.id: a for a in settings.agents}
    for i, p in enumerate(settings.posts):
        if p.a == p.b:
            raise ValueError(f"posts[{i}].b: agent {p.b!r} is also the post's A; a post needs two agents")
        if p.queue is not None:
            owners = queue_departments.get(p.queue)
            if not owners:
                raise ValueError(f"posts[{i}].queue: queue {p.queue!r} belongs to no department "
                                 f"(list it under the queues of department {p.department!r})")
            if p.department not in owners:
                raise ValueError(f"posts[{i}].queue: queue {p.queue!r} belongs to department "
                                 f"{sorted(owners)[0]!r}, not to the post's department {p.department!r}")
        _post_pbx(settings, i, p, agents)


def _post_pbx(settings, i: int, p, agents: dict) -> None:
    """A post is on one PBX, and its queue and agents are there (issue 14)."""
    pbx, queue = settings.post_pbx(p)
    if pbx is None:
        if p.pbx is not None:
            raise ValueError(f"posts[{i}].pbx: department {p.department!r} has no queue "
                             f"{'' if p.queue is None else repr(p.queue) + ' '}on PBX {p.pbx!r}")
        ids = ", ".join(x.id for x in settings.pbxes)
        raise ValueError(f"posts[{i}].pbx: queue {queue!r} is on every PBX ({ids}); a post is on one PBX: "
                         f"name it (pbx: {settings.pbxes[0].id}), one post per PBX")
    for role in ("a", "b"):
        agent = agents.get(getattr(p, role))
        if agent is not None and agent.pbx not in ("*", pbx):
            raise ValueError(f"posts[{i}].{role}: agent {agent.id!r} is on PBX {agent.pbx!r}, "
                             f"the post on PBX {pbx!r}")


def _agents(settings) -> None:
    for kind in ("interfaces", "member_names"):
        seen: dict[str, list[tuple[str, str, str]]] = {}       # value -> [(pbx, agent, key path)]
        for i, a in enumerate(settings.agents):
            for j, value in enumerate(getattr(a, kind)):
                for other_pbx, other, where in seen.get(value, []):
                    on = _on(a.pbx, other_pbx)
                    if other != a.id and on:
                        raise ValueError(f"agents[{i}].{kind}[{j}]: {value!r} already belongs to agent {other!r} "
                                         f"({where}); the PBX could not tell the two apart (both on {on})")
                seen.setdefault(value, []).append((a.pbx, a.id, f"agents[{i}].{kind}[{j}]"))


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False                                # a name: it may resolve to anything


def _web(web) -> None:
    if not is_loopback(web.host) and web.tls is None and not web.behind_proxy:
        raise ValueError(f"web.host: {web.host!r} is not a loopback address and the API would serve plain HTTP "
                         "there; configure web.tls (cert and key) or put it behind a TLS reverse proxy and set "
                         "web.behind_proxy: true (docs/operations.md)")


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The server-side TLS context of `web.tls` (TLS 1.2 or later); ValueError naming the problem."""
    for name, path in (("cert", cert), ("key", key)):
        if not path.is_file():
            raise ValueError(f"web.tls.{name}: file not found: {path}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"web.tls: cannot use certificate {cert} with key {key}: {exc}") from None
    return context
