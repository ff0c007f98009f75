"""The report archive over HTTP (reports/archive.py): ``GET /api/reports/archive?date=D`` lists
the archived reports of a day the user may read, ``GET /api/reports/archive/{id}`` downloads one
(the panel's report notifications link here).

A head reads the reports of their own departments; the service office reads every one,
including the whole hotline's (scope ``all``). Anyone else, and a head asking for another
department's report, gets 404: the report's existence is not disclosed.
"""
from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from ..domain.access import Identity, Role
from . import models
from .app import APP
from .errors import ApiError, json_response
from .security import identity


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/reports/archive", list_archive)
    app.router.add_get(r"/api/reports/archive/{id:\d+}", download)


def may_read(who: Identity, scope: str) -> bool:
    if who.role is Role.OFFICE:
        return True
    return who.role is Role.HEAD and scope in who.departments


def _archive(request: web.Request):
    from reports.archive import Archive
    app_obj = request.app[APP]
    return Archive(app_obj.store, app_obj.settings, app_obj.clock)


async def list_archive(request: web.Request) -> web.Response:
    who = identity(request)
    q = models.query(models.DayQuery, request.query)
    rows = await _archive(request).list(q.date)
    return json_response({"date": q.date.isoformat() if q.date else None,
                          "reports": [r.summary() for r in rows if may_read(who, r.scope)]})


async def download(request: web.Request) -> web.Response:
    who = identity(request)
    raw = request.match_info["id"]
    report = await _archive(request).get(int(raw)) if len(raw) <= 10 else None
    if report is None or not may_read(who, report.scope):
        raise ApiError(404, "not_found", f"no archived report {raw[:20]}")
    name = report.filename()
    ascii_name = f"report-{report.day.isoformat()}-{report.scope}.{report.format}"
    headers = {"Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}",
               "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "ETag": f"\"{report.sha256}\"",
               "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:"}
    charset = "utf-8" if report.format in ("html", "csv", "json") else None
    return web.Response(body=report.content, content_type=report.media_type, charset=charset, headers=headers)
