"""The aiohttp application and the server that runs it inside the service.

`init_app(app_obj)` builds the web application around the composition root's `App` (kept under
the typed key `APP`); it starts nothing itself. `WebServer` listens on ``settings.web`` and is
meant for `App.extras`, so the API comes up after the service and goes down before it.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from .errors import json_errors, json_response

if TYPE_CHECKING:                                 # runtime import would cycle once bootstrap wires us
    from ..bootstrap import App

log = logging.getLogger(__name__)

APP: web.AppKey[App] = web.AppKey("app")


async def init_app(app_obj: App) -> web.Application:
    from ..auth import Authenticator
    from .security import AUTH, ORIGINS, guard
    app = web.Application(middlewares=[json_errors, guard], client_max_size=256 * 1024)
    app[APP] = app_obj
    app[AUTH] = Authenticator(app_obj.store, app_obj.settings.web, app_obj.clock)
    app[ORIGINS] = frozenset(app_obj.settings.web.allowed_origins)
    setup_routes(app)
    return app


def setup_routes(app: web.Application) -> None:
    from . import auth_api, cases_api, tasks_api  # they read APP from this module
    app.router.add_get("/api/health", health)    # anonymous (callcenter/web/security.py): nothing personal
    auth_api.setup_routes(app)
    tasks_api.setup_routes(app)
    cases_api.setup_routes(app)
    from . import coverage_api; coverage_api.setup_routes(app)   # noqa: E702  /api/coverage/*, agents' pause/logout
    from . import notifications_api, lost_api, reports_api   # the panel's notifications, lost calls, caller history, report
    notifications_api.setup_routes(app)
    lost_api.setup_routes(app)
    reports_api.setup_routes(app)
    from . import period_api; period_api.setup_routes(app)   # noqa: E702  /api/reports/period (issue 13)
    from . import archive_api; archive_api.setup_routes(app)   # noqa: E702  the report archive (issue 13)
    from agents import pages; pages.setup_routes(app)   # noqa: E702  the panel's pages and static files
    from agents.live import api as live_api, ws as live_ws   # the panel's WebSocket /api/live and its REST twins
    live_ws.setup_routes(app)
    live_api.setup_routes(app)


async def health(request: web.Request) -> web.Response:
    """Anonymous and free of personal data: states and counts only. ``status`` is ``degraded``
    while the database is unavailable (``database``: since when, the error in one line, and the
    backlog of writes held for it: calls, sessions, incidents, notifications, callback results)."""
    app_obj = request.app[APP]
    service = app_obj.service
    database = app_obj.store.health.snapshot()
    return json_response({
        "status": database["status"],
        "database": database,
        "pbx": {pbx: client.connected.is_set() for pbx, client in sorted(service.clients.items())},
        "open_calls": service.calls.open_calls,
        "parked_calls": app_obj.after_commit.parked,     # poison calls (callcenter/aftercommit.py)
        # more than one instance: whether this one sends AMI actions and runs the scheduler
        "active": app_obj.leadership.active if app_obj.leadership is not None else True,
        # panel notifications queued over 30 minutes that no panel has shown (callcenter/notify/panel.py)
        "panel_unseen": getattr(getattr(app_obj.panel, "watch", None), "count", None),
    })


class WebServer:
    """The HTTP API as one of `App.extras`: ``start()`` binds, ``stop()`` closes."""

    def __init__(self, app_obj: App, host: str | None = None, port: int | None = None):
        self.app_obj = app_obj
        self.host = host if host is not None else app_obj.settings.web.host
        self.port = port if port is not None else app_obj.settings.web.port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        from pathlib import Path
        from ..settings_checks import tls_context
        tls = self.app_obj.settings.web.tls        # HTTPS when configured (checked at load, loaded again here)
        context = tls_context(Path(tls.cert), Path(tls.key)) if tls is not None else None
        runner = web.AppRunner(await init_app(self.app_obj))
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, ssl_context=context).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        scheme = "https" if context else "http"
        log.info("HTTP API listening on %s", ", ".join(f"{scheme}://{a[0]}:{a[1]}" for a in self.addresses))

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def addresses(self) -> list[tuple]:
        """The bound (host, port, ...) socket names; useful when port 0 picked a free one."""
        return self._runner.addresses if self._runner else []
