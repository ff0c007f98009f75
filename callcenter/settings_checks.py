"""Consistency rules of the configuration that no single key can check (issue 10).

Each rule raises ValueError("key.path: problem"); `settings.load_settings` adds the file. Checked:
hotline numbers and the callback's dial prefix and context (they reach the PBX), a post whose queue belongs to no department (or to another department), one queue in two
departments (per PBX: a queue without a PBX is on every PBX), one hotline number in two
departments, a post whose A is its B, one interface (or member name) for two agents, and a web
API reachable beyond this host without TLS (`web.tls`) or a TLS reverse proxy (`web.behind_proxy`).
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


def _hotlines(settings) -> None:
    seen: dict[str, tuple[str, str]] = {}
    for i, d in enumerate(settings.departments):
        for j, number in enumerate(d.hotlines):
            if number in seen and seen[number][0] != d.id:
                other, where = seen[number]
                raise ValueError(f"departments[{i}].hotlines[{j}]: hotline {number!r} already belongs to "
                                 f"department {other!r} ({where}); a hotline number belongs to one department")
            seen.setdefault(number, (d.id, f"departments[{i}].hotlines[{j}]"))


def _posts(settings) -> None:
    queue_departments: dict[str, set[str]] = {}
    for d in settings.departments:
        for q in d.queues:
            queue_departments.setdefault(q.name, set()).add(d.id)
    for i, p in enumerate(settings.posts):
        if p.a == p.b:
            raise ValueError(f"posts[{i}].b: agent {p.b!r} is also the post's A; a post needs two agents")
        if p.queue is None:
            continue
        owners = queue_departments.get(p.queue)
        if not owners:
            raise ValueError(f"posts[{i}].queue: queue {p.queue!r} belongs to no department "
                             f"(list it under the queues of department {p.department!r})")
        if p.department not in owners:
            raise ValueError(f"posts[{i}].queue: queue {p.queue!r} belongs to department "
                             f"{sorted(owners)[0]!r}, not to the post's department {p.department!r}")


def _agents(settings) -> None:
    for kind in ("interfaces", "member_names"):
        seen: dict[str, tuple[str, str]] = {}
        for i, a in enumerate(settings.agents):
            for j, value in enumerate(getattr(a, kind)):
                if value in seen and seen[value][0] != a.id:
                    other, where = seen[value]
                    raise ValueError(f"agents[{i}].{kind}[{j}]: {value!r} already belongs to agent {other!r} "
                                     f"({where}); the PBX could not tell the two apart")
                seen.setdefault(value, (a.id, f"agents[{i}].{kind}[{j}]"))


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
