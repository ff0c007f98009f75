"""Request parsing shared by the API views: JSON bodies, text fields, query choices, the day
and limit filters. Every problem is an ApiError (400) naming the field or parameter."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web
from multidict import MultiMapping

from .errors import ApiError

MAX_LIMIT = 5000


def choice(query: MultiMapping[str], name: str, allowed: tuple[str, ...]) -> str:
    if query[name] not in allowed:
        raise ApiError(400, "invalid_parameter", f"{name}: expected {' or '.join(allowed)}, got {query[name]!r}",
                       parameter=name)
    return query[name]


async def read_json(request: web.Request):
    try:
        return json.loads(await request.read())      # JSON is UTF-8 whatever the charset claims
    except (ValueError, RecursionError) as exc:       # JSONDecodeError, UnicodeDecodeError, absurd nesting
        raise ApiError(400, "malformed_json", f"the body is not valid UTF-8 JSON: {exc}") from None


def text_field(body: dict, name: str, allow_empty: bool = False) -> str:
    value = body[name]
    if not isinstance(value, str) or not (allow_empty or value.strip()):
        wanted = "a string" if allow_empty else "a non-empty string"
        got = json.dumps(value, ensure_ascii=False)
        raise ApiError(400, "invalid_field", f"{name}: expected {wanted}, got {got}", field=name)
    return value


def check_query(query: MultiMapping[str], allowed: tuple[str, ...], may_be_empty: tuple[str, ...] = ()) -> None:
    """Only `allowed` parameters, each given once and (but for `may_be_empty`) not empty."""
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        raise ApiError(400, "unknown_parameters", f"unknown query parameter(s): {', '.join(unknown)}; "
                       f"allowed: {', '.join(allowed)}", parameters=unknown)
    for name in query:
        if len(query.getall(name)) > 1:
            raise ApiError(400, "invalid_parameter", f"{name}: given more than once", parameter=name)
        if not query[name] and name not in may_be_empty:
            raise ApiError(400, "invalid_parameter", f"{name}: empty", parameter=name)


def day_and_limit(query: MultiMapping[str], tz: ZoneInfo) -> dict:
    """`date=YYYY-MM-DD` (a day in `tz`) as since/until, and `limit=N` (1 to MAX_LIMIT)."""
    filters: dict = {}
    if "date" in query:
        try:
            day = date.fromisoformat(query["date"])
        except ValueError:
            raise ApiError(400, "invalid_parameter", f"date: expected YYYY-MM-DD, got {query['date']!r}",
                           parameter="date") from None
        filters["since"] = datetime.combine(day, time(0), tz)
        filters["until"] = filters["since"] + timedelta(days=1)
    if "limit" in query:
        raw = query["limit"]
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
            raise ApiError(400, "invalid_parameter", f"limit: expected an integer from 1 to {MAX_LIMIT}, "
                           f"got {raw!r}", parameter="limit")
        filters["limit"] = int(raw)
    return filters
