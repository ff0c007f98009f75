"""/api/notifications: the signed-in user's panel notifications, and marking them shown and
acknowledged (callcenter/notify/panel.py).

A panel that connects lists what is not yet acknowledged (``GET /api/notifications``), shows it,
reports it shown (``POST /api/notifications/{id}/shown``: the row becomes ``sent``, delivered)
and acknowledged (``POST /api/notifications/{id}/ack``). An agent's are those addressed to their
agent id; a head's also those of ``head:<dept>`` for each of their departments. Only the
recipient marks a notification (403 otherwise); the WebSocket's ``{"type": "shown"|"ack"}``
messages do the same through `PanelChannel.shown`/`ack`.
"""
from __future__ import annotations

from typing import Literal

from aiohttp import web

from . import models
from .app import APP
from .errors import ApiError, json_response
from .parsing import read_json
from .security import identity


class NotificationList(models.Model):
    status: Literal["unacked", "all"] = "unacked"
    limit: models.Limit = None


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/notifications", list_notifications)
    app.router.add_post(r"/api/notifications/{id:\d+}/shown", mark_shown)
    app.router.add_post(r"/api/notifications/{id:\d+}/ack", acknowledge)


async def list_notifications(request: web.Request) -> web.Response:
    who = identity(request)
    q = models.query(NotificationList, request.query)
    items = await request.app[APP].panel.list(who, unacked=q.status == "unacked", limit=q.limit or 100)
    return json_response({"notifications": items})


async def mark_shown(request: web.Request) -> web.Response:
    who = identity(request)
    models.body(models.Empty, await read_json(request))
    return json_response(await request.app[APP].panel.shown(notification_id(request), who))


async def acknowledge(request: web.Request) -> web.Response:
    who = identity(request)
    models.body(models.Empty, await read_json(request))
    return json_response(await request.app[APP].panel.ack(notification_id(request), who))


def notification_id(request: web.Request) -> int:
    raw = request.match_info["id"]               # digits, by the route
    if len(raw) > 18:                            # beyond a database integer: cannot exist
        raise ApiError(404, "not_found", f"no panel notification {raw}")
    return int(raw)
