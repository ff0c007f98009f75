"""Reading a request's JSON body; what it must contain is a request model (callcenter/web/models.py)."""
from __future__ import annotations

import json

from aiohttp import web

from .errors import ApiError


async def read_json(request: web.Request):
    """The body as JSON (an empty body is an empty object); not JSON: 400 ``malformed_json``."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)                        # JSON is UTF-8 whatever the charset claims
    except (ValueError, RecursionError) as exc:       # JSONDecodeError, UnicodeDecodeError, absurd nesting
        raise ApiError(400, "malformed_json", f"the body is not valid UTF-8 JSON: {str(exc)[:200]}") from None
