"""The demo's sign-in: a demo agent (the first post's A agent) and a demo head (of that post's
department), with fresh passwords each run, and the HTTP API on ``web.host:web.port`` when the
port is free. `demo_access` answers the zh-CN lines the demo prints at start."""
from __future__ import annotations

import logging
import secrets

from .service import AuthError
from .users import UserAdmin

log = logging.getLogger(__name__)

DEMO_AGENT, DEMO_HEAD = "demo-agent", "demo-head"


async def demo_users(app) -> list[tuple[str, str, str]]:
    """(user, password, what) of the two demo users, created or given new passwords."""
    settings = app.settings
    if not settings.posts:
        return []
    post = settings.posts[0]
    admin = UserAdmin(app.store, settings, app.clock)
    made = []
    for user, role, departments, agent in ((DEMO_AGENT, "agent", [], post.a),
                                           (DEMO_HEAD, "head", [post.department], None)):
        try:
            existing = await admin.get(user)
        except AuthError:
            existing = None
        if existing is not None and (existing["role"], existing["agent"], existing["departments"]) != \
                (role, agent, departments):
            await admin.disable(user)                 # a changed configuration: start the user afresh
            await _forget(app, user)
            existing = None
        if existing is None:
            await admin.add(user, role, departments, agent)
        await admin.enable(user)
        password = secrets.token_urlsafe(9)
        await admin.passwd(user, password)
        names = {d.id: d.name for d in settings.departments}
        made.append((user, password, f"坐席 {agent}" if agent else f"{names.get(post.department, post.department)}负责人"))
    return made


async def _forget(app, user: str) -> None:
    from sqlalchemy import delete

    from ..storage import tables as t
    async with app.store.begin() as conn:
        await conn.execute(delete(t.users).where(t.users.c.id == user))


async def demo_access(app) -> str:
    """Start the API if its port is free, make the demo users, and say how to sign in."""
    from ..web.app import WebServer
    web = WebServer(app)
    try:
        await web.start()
    except OSError as exc:
        log.info("demo: HTTP API not started: %s", exc)
        served = f"面板与 HTTP API 未启动（{app.settings.web.host}:{app.settings.web.port} 不可用）"
    else:
        app.extras.append(web)                        # stopped with the app
        host, port = web.addresses[0][:2]
        served = (f"面板：http://{host}:{port}/login（坐席面板 /agent，负责人看板 /head）；"
                  f"HTTP API：http://{host}:{port}/api")
    users = await demo_users(app)
    accounts = "；".join(f"{what} 用户 {user} 密码 {password}" for user, password, what in users)
    return f"{served}。演示账号：{accounts or '无（未配置岗位）'}。"
