"""What the signed-in identity may see and touch, applied in the views: the department and agent
checks of callcenter/domain/access.py with the configuration's facts (an agent's departments are
those of the posts they sit on; the office's pool is the service office's department), and the
masking of callers' numbers (docs/api.md, "Personal data").
"""
from __future__ import annotations

from ..domain import access
from ..domain.access import Identity, Role
from ..domain.validation import mask_number
from .errors import ApiError

NUMBER_KEYS = frozenset({"caller_num", "caller", "number"})


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def agent_departments(settings, agent: str) -> frozenset[str]:
    return frozenset(p.department for p in settings.posts if agent in (p.a, p.b))


def office_department(settings) -> str | None:
    return settings.service_office


def list_departments(who: Identity, asked: str | None) -> list[str | None]:
    """The departments a list may cover: the one asked for if readable, else (a head) each of
    theirs, else (the office, or an agent whose list is limited by agent) every one: [None]."""
    if asked is not None:
        if who.role is Role.AGENT or access.reads_department(who, asked):
            return [asked]
        raise forbidden(f"department {asked!r} is not one of yours")
    if who.role is Role.HEAD:
        return sorted(who.departments)
    return [None]


async def scoped_list(who: Identity, asked: str | None, fetch, limit: int, order, agent_key: str) -> list[dict]:
    """`fetch(department)` for each department the user may list (`list_departments`), merged in
    `order`, cut at `limit` and masked for the user (`agent_key`: the row's agent field)."""
    rows: list[dict] = []
    for department in list_departments(who, asked):
        rows += await fetch(department)
    rows.sort(key=order)
    return [masked(who, r, r["department"], r[agent_key]) for r in rows[:limit]]


def own_agent(who: Identity, asked: str | None, what: str) -> str | None:
    """An agent's lists are their own: the filter is forced to their agent id."""
    if who.role is not Role.AGENT:
        return asked
    if asked is not None and asked != who.agent:
        raise forbidden(f"an agent sees only their own {what}")
    return who.agent


def require_agent(who: Identity, doing: str) -> str:
    """The agent id the identity acts as (a callback rings their phone, a wrap-up is theirs)."""
    if who.agent is None:
        raise forbidden(f"{doing} needs a user bound to an agent (users add ... --agent)")
    return who.agent


def masked(who: Identity, data, department: str | None, agent: str | None):
    """`data` with callers' numbers masked unless `who` sees this record's numbers in full."""
    if access.sees_number(who, department, agent):
        return data
    return _mask(data)


def _mask(data):
    if isinstance(data, dict):
        return {k: (mask_number(v) if k in NUMBER_KEYS and isinstance(v, str) else _mask(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [_mask(v) for v in data]
    return data
