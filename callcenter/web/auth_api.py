"""Panel sessions: ``POST /api/login``, ``POST /api/logout``, ``GET /api/me``.

Log-in takes ``{"user", "password"}`` and answers ``{"user": ..., "csrf_token": ...}`` with the
session cookie (HttpOnly, SameSite=Strict, Path=/api; Secure over TLS or behind a proxy). Every
state change made with the cookie sends the CSRF token back as ``X-CSRF-Token``; ``GET /api/me``
answers it again (``csrf_token``) to a page loaded later (it is derived from the session id).
"""
from __future__ import annotations

from aiohttp import web

from ..auth import AuthError
from ..auth.secrets_ import csrf_of
from .app import APP
from .errors import ApiError, json_response
from .models import Login, body
from .parsing import read_json
from .security import AUTH, COOKIE, client_address, identity, secure_cookies


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)


async def login(request: web.Request) -> web.Response:
    settings = request.app[APP].settings.web
    form = body(Login, await read_json(request))
    address = client_address(request, getattr(settings, "behind_proxy", False))
    try:
        done = await request.app[AUTH].login(form.user, form.password, address)
    except AuthError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    response = json_response({"user": done.identity.to_dict(), "csrf_token": done.csrf})
    response.set_cookie(COOKIE, done.session, path="/api", httponly=True, samesite="Strict",
                        secure=secure_cookies(request, settings), max_age=int(settings.session_max_hours * 3600))
    return response


async def logout(request: web.Request) -> web.Response:
    identity(request)
    cookie = request.cookies.get(COOKIE)
    if cookie:
        await request.app[AUTH].logout(cookie)
    response = json_response({"signed_out": True})
    response.del_cookie(COOKIE, path="/api")
    return response


async def me(request: web.Request) -> web.Response:
    """Who is signed in; with a session cookie also its ``csrf_token`` (a page loaded after the
    log-in needs it for its state changes)."""
    who = identity(request)
    data = who.to_dict()
    cookie = request.cookies.get(COOKIE)
    if who.via == "session" and cookie and "Authorization" not in request.headers:
        data["csrf_token"] = csrf_of(cookie)
    return json_response(data)
