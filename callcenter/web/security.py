"""The web edge's guard: who is asking, may their role use this route, and is a state change
really theirs (docs/api.md, "Authentication").

`POLICIES` gives every route its policy (callcenter/domain/access.py); a route missing from it
is refused to everyone (and tests/test_access_routes.py fails). The `guard` middleware:

1. finds the identity: ``Authorization: Bearer TOKEN``, else the session cookie;
2. anonymous: 401 unless the route is anonymous; a role the policy does not list: 403;
3. on a state change (POST, PATCH, PUT, DELETE): the body must be ``application/json`` (415), and
   with a session cookie the ``Origin`` (when sent) must be allowed (403 ``bad_origin``) and the
   ``X-CSRF-Token`` header must be the session's (403 ``csrf``). Bearer requests carry no ambient
   credential, so they need neither.

What the identity may do with the particular task, case or agent is the view's check
(callcenter/web/scope.py).
"""
from __future__ import annotations

from aiohttp import web

from ..auth import AuthError, Authenticator
from ..auth.secrets_ import digest, same
from ..domain.access import Identity, Policy, allowed
from .errors import ApiError

AUTH: web.AppKey[Authenticator] = web.AppKey("auth")
IDENTITY: web.RequestKey[Identity | None] = web.RequestKey("identity", object)   # None on anonymous routes
COOKIE = "cc_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

P = Policy
POLICIES: dict[tuple[str, str], Policy] = {
    ("GET", "/api/health"): P.ANONYMOUS,
    ("POST", "/api/login"): P.ANONYMOUS,
    ("POST", "/api/logout"): P.ANY,
    ("GET", "/api/me"): P.ANY,
    ("GET", "/api/tasks"): P.WORK,
    ("GET", "/api/tasks/{id}"): P.WORK,
    ("PATCH", "/api/tasks/{id}"): P.WORK,
    ("POST", "/api/tasks/{id}/callbacks"): P.WORK,
    ("POST", "/api/callback-requests"): P.WORK,
    ("POST", "/api/calls/{pbx}/{call_id}/disposition"): P.WORK,
    ("GET", "/api/cases"): P.WORK,
    ("GET", "/api/cases/{id}"): P.WORK,
    ("PATCH", "/api/cases/{id}"): P.WORK,
    ("GET", "/api/route"): P.ROUTE,
    ("GET", "/api/route.txt"): P.ROUTE,
    ("GET", "/api/agents/{agent}/pending"): P.WORK,
    ("GET", "/api/wrapups/pending"): P.WORK,
    ("GET", "/api/coverage/daily"): P.SUPERVISE,
    ("GET", "/api/coverage/live"): P.SUPERVISE,
    ("GET", "/api/coverage/incidents"): P.SUPERVISE,
    ("GET", "/api/coverage/overrides"): P.SUPERVISE,
    ("POST", "/api/agents/{agent}/{action}"): P.WORK,
    ("GET", "/api/notifications"): P.WORK,                     # own panel notifications (callcenter/notify/panel.py)
    ("POST", "/api/notifications/{id}/shown"): P.WORK,
    ("POST", "/api/notifications/{id}/ack"): P.WORK,
    ("GET", "/api/lost-calls"): P.SUPERVISE,                   # heads: their departments; office: all, masked
    ("GET", "/api/lost-calls.csv"): P.SUPERVISE,
    ("GET", "/api/callers/{number}/history"): P.WORK,          # the ringing panel
    ("GET", "/api/reports/daily"): P.SUPERVISE,
    ("GET", "/api/reports/period"): P.SUPERVISE,               # week/month/quarter roll-ups (issue 13)
    ("GET", "/api/reports/archive"): P.SUPERVISE,              # archived reports: heads their own (archive_api.py)
    ("GET", "/api/reports/archive/{id}"): P.SUPERVISE,
    ("GET", "/api/live"): P.WORK,                              # the panel's WebSocket; Origin checked (live/ws.py)
    ("GET", "/api/panel/agent"): P.WORK,                       # the agent snapshot (self, head, office)
    ("GET", "/api/panel/dashboard"): P.SUPERVISE,              # the head dashboard
    # the panel's pages and static files: shells without data (agents/pages.py)
    ("GET", "/"): P.ANONYMOUS,
    ("GET", "/login"): P.ANONYMOUS,
    ("GET", "/agent"): P.ANONYMOUS,
    ("GET", "/head"): P.ANONYMOUS,
    ("GET", "/static/{name}"): P.ANONYMOUS,
    ("GET", "/api/panel/options"): P.WORK,       # configuration the pages need (pages.py)
}


def route_policy(request: web.Request) -> Policy | None:
    """The policy of the matched route; None for an unmatched path or one without a policy."""
    route = request.match_info.route
    resource = getattr(route, "resource", None)
    if resource is None or request.match_info.http_exception is not None:
        return None
    method = "GET" if route.method == "HEAD" else route.method
    return POLICIES.get((method, resource.canonical))


def identity(request: web.Request) -> Identity:
    found = request.get(IDENTITY)
    if found is None:                      # only anonymous routes run without one
        raise ApiError(401, "unauthenticated", "sign in first")
    return found


@web.middleware
async def guard(request: web.Request, handler) -> web.StreamResponse:
    policy = route_policy(request)
    state_change = request.method not in SAFE_METHODS and request.match_info.http_exception is None
    if policy is Policy.ANONYMOUS:
        if state_change:
            check_json(request)
            check_origin(request)          # log-in: no page elsewhere may sign a browser in
        request[IDENTITY] = None
        return await handler(request)
    who, csrf_hash = await authenticate(request)
    if policy is None:
        if request.match_info.http_exception is not None:
            raise request.match_info.http_exception     # 404 / 405 for a signed-in user
        raise ApiError(403, "forbidden", "this route has no access policy")
    if not allowed(who, policy):
        raise ApiError(403, "forbidden", f"role {who.role.value} may not use {request.method} {request.path}")
    if state_change:
        check_json(request)
    if state_change and csrf_hash is not None:
        check_origin(request)
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not same(digest(sent), csrf_hash):
            raise ApiError(403, "csrf", f"missing or wrong {CSRF_HEADER} header (from POST /api/login)")
    request[IDENTITY] = who
    return await handler(request)


async def authenticate(request: web.Request) -> tuple[Identity, str | None]:
    """The identity and, for a session, its CSRF hash (None for a bearer token)."""
    auth = request.app[AUTH]
    header = request.headers.get("Authorization")
    try:
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError("expected Authorization: Bearer TOKEN", 401, "unauthenticated")
            return await auth.bearer(token.strip()), None
        cookie = request.cookies.get(COOKIE)
        if cookie:
            session = await auth.session(cookie)
            return session.identity, session.csrf_hash
    except AuthError as exc:
        raise ApiError(exc.status, exc.code, str(exc), _headers=CHALLENGE) from None
    raise ApiError(401, "unauthenticated", "sign in: Authorization: Bearer TOKEN, or a session from "
                   "POST /api/login", _headers=CHALLENGE)


CHALLENGE = {"WWW-Authenticate": 'Bearer realm="callcenter"'}


def check_json(request: web.Request) -> None:
    """A state change's body is JSON: a form or text/plain post from another site is refused."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "a state change takes a JSON body "
                       "(Content-Type: application/json)")


def check_origin(request: web.Request) -> None:
    """An Origin header, when the browser sends one, must be ours or listed in web.allowed_origins."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    own = f"{request.scheme}://{request.host}"
    if origin != own and origin not in request.app[ORIGINS]:
        raise ApiError(403, "bad_origin", f"requests from {origin[:100]!r} are not allowed (web.allowed_origins)")


ORIGINS: web.AppKey[frozenset[str]] = web.AppKey("allowed_origins")


def client_address(request: web.Request, behind_proxy: bool) -> str:
    """The client's address for the log-in rate limit: the proxy's X-Forwarded-For (its last
    entry, the one the proxy itself added) when web.behind_proxy is set, else the peer."""
    forwarded = request.headers.get("X-Forwarded-For") if behind_proxy else None
    if forwarded:
        return forwarded.split(",")[-1].strip()[:64] or "unknown"
    return request.remote or "unknown"


def secure_cookies(request: web.Request, web_settings) -> bool:
    return bool(request.secure or getattr(web_settings, "behind_proxy", False) or getattr(web_settings, "tls", None))
