"""One JSON shape for every refusal: ``{"error": code, "message": text, ...details}``.

``error`` is a stable machine-readable code (docs/api.md lists them); ``message`` is for people.
The middleware turns our own `ApiError`, the follow-up service's `TaskError`, aiohttp's HTTP
errors (unknown route, wrong method, body too large) and anything unexpected into that shape,
so a bad request is answered, logged if it is our fault, and never takes the server down.
"""
from __future__ import annotations

import json
import logging
from functools import partial

from aiohttp import web

from ..followup.service import TaskError
from ..storage.health import describe, is_unavailable

log = logging.getLogger(__name__)

dumps = partial(json.dumps, ensure_ascii=False)

# TaskError carries only an HTTP status; these are its codes (a `code` attribute, if the service
# ever sets one, wins).
TASK_ERROR_CODES = {400: "rejected", 404: "not_found", 409: "conflict"}
HTTP_ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
                    413: "body_too_large", 415: "unsupported_media_type"}


class ApiError(Exception):
    """A request we refuse before reaching the service (validation)."""

    def __init__(self, status: int, code: str, message: str, _headers: dict | None = None, **details):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = _headers


def json_response(data, status: int = 200, headers=None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=dumps)


def error_response(status: int, code: str, message: str, headers=None, **details) -> web.Response:
    return json_response({"error": code, "message": message, **details}, status=status, headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers, **exc.details)
    except TaskError as exc:
        code = getattr(exc, "code", None) or TASK_ERROR_CODES.get(exc.status, "rejected")
        current = getattr(exc, "current", None)       # a 409's task or case as it is now
        from .security import IDENTITY
        if current and request.get(IDENTITY) is not None:
            from .scope import masked
            who = request[IDENTITY]
            agent = current.get("assignee", current.get("owner"))
            return error_response(exc.status, code, str(exc), current=masked(who, current, current.get("department"), agent))
        return error_response(exc.status, code, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise                                   # redirects and the like pass through
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(exc.status, HTTP_ERROR_CODES.get(exc.status, f"http_{exc.status}"),
                              exc.reason, headers=headers)
    except Exception as exc:
        if is_unavailable(exc):                     # the database is away: health says so, no traceback
            log.warning("%s %s: database unavailable (%s)", request.method, request.path, describe(exc))
            return error_response(503, "database_unavailable",
                                  "the database is not answering; try again shortly (GET /api/health)")
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal_error", "internal error; see the service log")
