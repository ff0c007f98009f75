"""The panel's WebSocket, ``GET /api/live``: who may listen to what, the hello, the pushes.

The `guard` middleware authenticates the upgrade like any GET (session cookie or bearer; an
anonymous one is 401, a role without the WORK policy 403). GETs carry no CSRF check, so this
view checks the ``Origin`` of the upgrade itself: a browser always sends one, and it must be the
request's own scheme and host or one of ``web.allowed_origins`` (403 ``bad_origin``), so no page
elsewhere can open a socket with the user's cookie (cross-site WebSocket hijacking).

Subscriptions by role: an agent (or anyone bound to an agent) ``agent:<id>``; a head each
``dept:<id>`` of theirs; the office ``office`` (every department, callers' numbers masked); and
everyone ``user:<user>``. On connect: one ``hello`` (identity, the snapshot and the unacknowledged
notifications), then the hub's messages as they come. The client may send ``{"type": "shown" |
"ack", "id": N}`` for a notification (passed to ``app.panel.shown/ack(id, user)``). The session is
checked again every ``hub.recheck_seconds`` (30 s): signed out, expired or disabled ends the socket (close
code 4401). Heartbeat pings keep proxies from cutting an idle socket; at shutdown every socket is
closed with 1001 (going away).
"""
from __future__ import annotations

import asyncio
import json
import logging
import weakref

from aiohttp import WSCloseCode, WSMsgType, web

from callcenter.domain.access import Role
from callcenter.web.app import APP
from callcenter.web.errors import ApiError
from callcenter.web.security import authenticate, check_origin, identity
from .hub import dumps, iso

log = logging.getLogger(__name__)
SOCKETS: web.AppKey[weakref.WeakSet] = web.AppKey("live_sockets", weakref.WeakSet)
HEARTBEAT = 25.0
SESSION_ENDED = 4401


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/live", live_socket)
    app[SOCKETS] = weakref.WeakSet()
    app.on_shutdown.append(close_sockets)


def topics_for(who) -> list[str]:
    topics = [f"user:{who.user}"]
    if who.agent:
        topics.append(f"agent:{who.agent}")
    if who.role is Role.HEAD:
        topics += [f"dept:{d}" for d in sorted(who.departments)]
    elif who.role is Role.OFFICE:
        topics.append("office")
    return topics


def dashboards_for(app_obj, who) -> list[tuple[str, bool]]:
    """(department, masked) the identity watches."""
    if who.role is Role.HEAD:
        return [(d, False) for d in sorted(who.departments)]
    if who.role is Role.OFFICE:
        return [(d.id, True) for d in app_obj.settings.departments]
    return []


async def hello(app_obj, who) -> dict:
    live = app_obj.live
    out = {"type": "hello", "identity": who.to_dict(), "agent": None, "dashboards": [],
           "notifications": [], "event_at": None}
    if who.agent:
        out["agent"] = live.agent_snapshot(who.agent)
    out["dashboards"] = [live.dashboard_snapshot(d, masked) for d, masked in dashboards_for(app_obj, who)]
    listed = getattr(app_obj.panel, "list", None)          # the panel channel's store (notify/panel.py)
    if listed is not None and getattr(app_obj.panel, "inbox", None) is not None:
        try:
            out["notifications"] = await listed(who, unacked=True)
        except Exception as exc:                  # the database away: the socket still comes up
            log.warning("live socket: notifications of %s not listed: %s", who.user, exc)
    return out


async def live_socket(request: web.Request) -> web.StreamResponse:
    app_obj = request.app[APP]
    who = identity(request)
    check_origin(request)
    hub = app_obj.hub
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT, compress=False, max_msg_size=4096)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "not_websocket", "GET /api/live is a WebSocket: send the upgrade headers")
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    sub = hub.subscribe(topics_for(who))          # before the hello: nothing in between is lost
    tasks: list[asyncio.Task] = []
    try:
        message = await hello(app_obj, who)
        message["sent_at"] = iso(app_obj.clock.now())
        await ws.send_frame(dumps(message), WSMsgType.TEXT)
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(_writer(ws, sub)), loop.create_task(_recheck(request, ws))]
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await _client_message(app_obj, who, ws, msg.data)
            elif msg.type == WSMsgType.ERROR:
                break
    except ConnectionError:
        pass
    finally:
        sub.close()
        for task in tasks:
            task.cancel()
        if not ws.closed:
            await ws.close()
    return ws


async def _writer(ws: web.WebSocketResponse, sub) -> None:
    """The hub's messages to this socket, newest snapshot per key; a hopelessly slow client is cut."""
    try:
        while not ws.closed:
            items = await sub.next()
            if sub.overflowed:
                await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow")
                return
            if not items:                         # the hub closed (the service stops)
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
                return
            for data in items:
                await ws.send_frame(data, WSMsgType.TEXT)
    except (ConnectionError, RuntimeError):
        pass


async def _recheck(request: web.Request, ws: web.WebSocketResponse) -> None:
    """The session (or token) is read again now and then; its end ends the socket."""
    every = request.app[APP].hub.recheck_seconds
    while not ws.closed:
        await asyncio.sleep(every)
        try:
            await authenticate(request)
        except ApiError as exc:
            await ws.close(code=SESSION_ENDED, message=exc.code.encode()[:100])
            return
        except Exception as exc:                      # the database away: keep the socket, try later
            log.debug("live socket: session re-check failed: %s", exc)


async def _client_message(app_obj, who, ws, data: str) -> None:
    """``shown`` / ``ack`` of a notification; anything else is answered with an error message."""
    try:
        msg = json.loads(data)
        kind, ident = msg.get("type"), msg.get("id")
        if kind not in ("shown", "ack") or not isinstance(ident, int) or isinstance(ident, bool) or ident < 1:
            raise ValueError
    except (ValueError, AttributeError):
        await ws.send_frame(dumps({"type": "error", "error": "bad_message",
                                   "message": 'expected {"type": "shown" | "ack", "id": N}'}), WSMsgType.TEXT)
        return
    handler = getattr(app_obj.panel, kind, None)        # PanelChannel.shown / .ack(id, user): notify/panel.py
    if handler is None:
        log.warning("live socket: %s of notification %d dropped: the panel channel has no %s()", kind, ident, kind)
        return
    try:
        result = handler(ident, who)
        if asyncio.iscoroutine(result):
            await result
    except Exception as exc:
        await ws.send_frame(dumps({"type": "error", "error": getattr(exc, "code", "rejected"), "id": ident,
                                   "message": str(exc)[:200]}), WSMsgType.TEXT)


async def close_sockets(app: web.Application) -> None:
    for ws in list(app[SOCKETS]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
