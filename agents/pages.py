"""The panel's pages: server-rendered shells without data (zh-CN), and their static files.

`/` sends a browser on by role (its script asks ``GET /api/me``), `/login` signs in, `/agent` is
the agent panel, `/head` the head dashboard. The pages carry no personal data and are anonymous
(callcenter/web/security.py); everything they show comes from ``/api/...`` with the session
cookie and from the WebSocket ``/api/live``, rendered with ``textContent`` by the scripts under
``static/``. A strict Content-Security-Policy (scripts and styles from this origin only, no
inline script) backs that up: a caller name with markup could not run even if it reached the DOM.

`GET /api/panel/options` (signed in, WORK policy) is the configuration the pages need and no
other endpoint gives: pause reasons, wrap-up settings, departments with their queues, service
items, agents and head, posts, and the workdays around today (for "workdays left" on the
service's calendar, 调休 included) with the service's own date and time.
"""
from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from callcenter.web.app import APP
from callcenter.web.errors import ApiError, json_response
from callcenter.web.security import identity

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"
STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,60}\.(js|css|png|svg|txt)$")
CONTENT_TYPES = {"js": "text/javascript", "css": "text/css", "png": "image/png", "svg": "image/svg+xml",
                 "txt": "text/plain"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cache-Control": "no-cache"}

PAGES = {                                      # path: (template, title)
    "/": ("index.html", "热线工作台"),
    "/login": ("login.html", "登录 · 热线工作台"),
    "/agent": ("agent.html", "坐席工作台"),
    "/head": ("head.html", "值班看板"),
}

_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(("html",)),
                   trim_blocks=True, lstrip_blocks=True)


def setup_routes(app: web.Application) -> None:
    for path in PAGES:
        app.router.add_get(path, page)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/panel/options", options)


async def page(request: web.Request) -> web.Response:
    template, title = PAGES[request.match_info.route.resource.canonical]
    html = _env.get_template(template).render(title=title, version=asset_version())
    return web.Response(text=html, content_type="text/html", charset="utf-8", headers=HEADERS)


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    path = STATIC / name
    if not STATIC_NAME.match(name) or not path.is_file():
        raise ApiError(404, "not_found", "no such file")
    ext = name.rsplit(".", 1)[1]
    charset = "utf-8" if ext in ("js", "css", "svg", "txt") else None
    return web.Response(body=path.read_bytes(), content_type=CONTENT_TYPES[ext], charset=charset,
                        headers={**HEADERS, "Cache-Control": "no-cache"})


_version: str | None = None


def asset_version() -> str:
    """A short tag of the static files' modification times, so a new release is not cached."""
    global _version
    if _version is None:
        stamps = sorted(int(p.stat().st_mtime) for p in STATIC.iterdir() if p.is_file())
        _version = format(hash(tuple(stamps)) & 0xFFFFFF, "x")
    return _version


WORKDAY_SPAN = 90                              # days either side of today in "workdays"


async def options(request: web.Request) -> web.Response:
    from datetime import timedelta
    identity(request)
    app_obj = request.app[APP]
    settings = app_obj.settings
    now = app_obj.clock.now()
    calendar = app_obj.calendar
    today = now.astimezone(calendar.tz).date()
    days = (today + timedelta(days=n) for n in range(-WORKDAY_SPAN, WORKDAY_SPAN + 1))
    panel = settings.panel
    names = {a.id: a.name for a in settings.agents}
    specs = app_obj.coverage.board.specs
    departments = []
    for d in settings.departments:
        agents = list(dict.fromkeys(x for p in settings.posts if p.department == d.id for x in (p.a, p.b)))
        departments.append({
            "id": d.id, "name": d.name, "queues": [q.name for q in d.queues], "items": list(d.items),
            "hotlines": [str(h) for h in d.hotlines],
            "head": d.head.name if d.head else None,
            "agents": [{"agent": a, "name": names.get(a, a)} for a in agents]})
    return json_response({
        "now": now.isoformat(), "today": today.isoformat(), "time_zone": str(calendar.tz),
        "workdays": [day.isoformat() for day in days if calendar.is_workday(day)],
        "pause_reasons": [r.model_dump() for r in panel.pause_reasons],
        "wrapup": panel.wrapup.model_dump(),
        "longest_wait_target_seconds": panel.longest_wait_target_seconds,
        "departments": departments,
        "agents": [{"agent": a.id, "name": a.name} for a in settings.agents],
        "pbxes": [p.id for p in settings.pbxes],        # with more than one, queues and posts name theirs
        "posts": [{"post": p.id, "department": p.department, "a": p.a, "b": p.b,
                   "pbx": specs[p.id].pbx if p.id in specs else None} for p in settings.posts],
    })
