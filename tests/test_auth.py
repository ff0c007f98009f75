"""Signing in, over real HTTP: bearer tokens, panel sessions (cookie flags, CSRF, Origin, JSON
bodies only), the log-in rate limit, session expiry, revoked tokens, disabled users; and the
`callcenter users|tokens` commands (docs/api.md "Authentication", docs/operations.md "Users and tokens")."""
from __future__ import annotations

import io
import sys
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcenter.auth import UserAdmin
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.web.app import init_app
from callcenter.web.security import COOKIE
from tests.auth_helpers import bearer
from tests.conftest import MONDAY_10, ROOT

PASSWORD = "长城-correct-horse"
ORIGIN = "https://panel.example.gov.cn"


@pytest.fixture
async def rig(settings, sqlite_url):
    settings.web = settings.web.model_copy(update={"allowed_origins": [ORIGIN], "login_max_failures": 3,
                                                   "login_max_failures_per_address": 5})
    clock = FixedClock(MONDAY_10)
    app_obj = build(settings, sqlite_url, clock)
    await app_obj.start()
    admin = UserAdmin(app_obj.store, settings, clock)
    await admin.add("1001", "agent")
    await admin.passwd("1001", PASSWORD)
    client = TestClient(TestServer(await init_app(app_obj)))
    await client.start_server()
    yield app_obj, client, admin, clock
    await client.close()
    await app_obj.stop()


async def login(client, user="1001", password=PASSWORD, **kwargs) -> tuple[int, dict, object]:
    async with client.post("/api/login", json={"user": user, "password": password}, **kwargs) as r:
        return r.status, await r.json(), r


async def unpause(client, headers=None, **kwargs) -> tuple[int, dict]:
    """A state change the agent may make (503: no PBX here, but it passed the guard)."""
    async with client.post("/api/agents/1001/unpause", headers=headers, **kwargs) as r:
        return r.status, await r.json()


async def test_log_in_sets_a_strict_http_only_cookie_and_answers_the_csrf_token(rig):
    app_obj, client, admin, clock = rig
    status, body, response = await login(client)
    assert status == 200
    assert body["user"] == {"user": "1001", "role": "agent", "departments": [], "agent": "1001", "via": "session"}
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/api"
    assert not cookie["secure"]                                # plain HTTP on loopback in this test
    header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Strict" in header
    async with client.get("/api/me") as r:                     # the cookie jar sends it back
        assert (r.status, (await r.json())["user"]) == (200, "1001")
    csrf = {"X-CSRF-Token": body["csrf_token"]}
    assert (await unpause(client, csrf, json={}))[1]["error"] == "pbx_not_connected"


async def test_a_session_behind_a_proxy_gets_a_secure_cookie(rig):
    app_obj, client, admin, clock = rig
    if "behind_proxy" not in type(app_obj.settings.web).model_fields:
        pytest.skip("web.behind_proxy is not a setting yet")
    app_obj.settings.web = app_obj.settings.web.model_copy(update={"behind_proxy": True})
    secure_client = TestClient(TestServer(await init_app(app_obj)))
    await secure_client.start_server()
    try:
        status, _, response = await login(secure_client)
        assert status == 200 and response.cookies[COOKIE]["secure"]
    finally:
        await secure_client.close()


async def test_state_changes_with_the_cookie_need_the_csrf_token(rig):
    app_obj, client, admin, clock = rig
    _, body, _ = await login(client)
    for headers in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": ""}):
        status, answer = await unpause(client, headers, json={})
        assert (status, answer["error"]) == (403, "csrf"), headers
    # reading needs none
    async with client.get("/api/tasks") as r:
        assert r.status == 200


async def test_origin_is_checked_on_state_changes(rig):
    app_obj, client, admin, clock = rig
    _, body, _ = await login(client)
    csrf = body["csrf_token"]
    status, answer = await unpause(client, {"X-CSRF-Token": csrf, "Origin": "https://evil.example"}, json={})
    assert (status, answer["error"]) == (403, "bad_origin")
    for origin in (ORIGIN, str(client.make_url("")).rstrip("/")):   # listed, and our own
        status, answer = await unpause(client, {"X-CSRF-Token": csrf, "Origin": origin}, json={})
        assert answer["error"] == "pbx_not_connected", origin
    status, answer, _ = await login(client, headers={"Origin": "https://evil.example"})
    assert (status, answer["error"]) == (403, "bad_origin")            # no log-in from elsewhere either


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
async def test_a_state_change_is_json_or_415(rig, content_type):
    app_obj, client, admin, clock = rig
    _, body, _ = await login(client)
    status, answer = await unpause(client, {"X-CSRF-Token": body["csrf_token"], "Content-Type": content_type},
                                   data=b'{"reason": "x"}')
    assert (status, answer["error"]) == (415, "unsupported_media_type")
    token = await admin.create_token("1001")
    status, answer = await unpause(client, {**bearer(token), "Content-Type": content_type}, data=b"{}")
    assert (status, answer["error"]) == (415, "unsupported_media_type")
    async with client.post("/api/login", data=f'{{"user": "1001", "password": "{PASSWORD}"}}'.encode(),
                           headers={"Content-Type": content_type}) as r:
        assert r.status == 415


async def test_anonymous_is_401_with_a_challenge(rig):
    app_obj, client, admin, clock = rig
    for method, path in (("GET", "/api/tasks"), ("GET", "/api/me"), ("POST", "/api/agents/1001/pause"),
                         ("GET", "/api/nothing"), ("GET", "/api/route.txt")):
        async with client.request(method, path, json={} if method == "POST" else None) as r:
            assert (r.status, (await r.json())["error"]) == (401, "unauthenticated"), path
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
    for header in ("Bearer", "Bearer nonsense", "Basic MTAwMTpwYXNz", "cc_abc"):
        async with client.get("/api/me", headers={"Authorization": header}) as r:
            assert r.status == 401, header


async def test_health_is_anonymous_and_shows_nothing_personal(rig):
    app_obj, client, admin, clock = rig
    async with client.get("/api/health") as r:
        assert r.status == 200
        text = await r.text()
    for personal in ("1001", "caller", "13", "agent", "user"):
        assert personal not in text, personal


async def test_wrong_passwords_then_the_rate_limit(rig):
    app_obj, client, admin, clock = rig
    for password in ("wrong-1", "wrong-2", "wrong-3"):
        status, answer, _ = await login(client, password=password)
        assert (status, answer["error"]) == (401, "login_failed")
    status, answer, _ = await login(client)                       # even the right password now
    assert (status, answer["error"]) == (429, "too_many_attempts")
    clock.advance(16 * 60)                                        # the window passes
    assert (await login(client))[0] == 200
    # per address: many user names from one address
    for n in range(5):
        assert (await login(client, user=f"nobody{n}", password="x"))[0] == 401
    assert (await login(client))[0] == 429
    status, answer, _ = await login(client, user="nobody", password="x")
    assert (status, answer["error"]) == (429, "too_many_attempts")


async def test_an_admin_enable_clears_a_users_failures(rig):
    app_obj, client, admin, clock = rig
    for _ in range(3):
        await login(client, password="wrong-password")
    assert (await login(client))[0] == 429
    await admin.enable("1001")
    assert (await login(client))[0] == 200


async def test_behind_a_proxy_the_limit_counts_the_forwarded_address(rig):
    app_obj, client, admin, clock = rig
    for n in range(5):                                   # without behind_proxy the header is not believed
        await login(client, user=f"x{n}", password="x", headers={"X-Forwarded-For": f"203.0.113.{n}"})
    assert (await login(client, user="y", password="x", headers={"X-Forwarded-For": "203.0.113.9"}))[0] == 429
    clock.advance(16 * 60)
    app_obj.settings.web = app_obj.settings.web.model_copy(update={"behind_proxy": True})
    proxied = TestClient(TestServer(await init_app(app_obj)))
    await proxied.start_server()
    try:
        for n in range(5):
            await login(proxied, user=f"x{n}", password="x", headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.1"})
        status, answer, _ = await login(proxied, user="y", password="x", headers={"X-Forwarded-For": "203.0.113.1"})
        assert (status, answer["error"]) == (429, "too_many_attempts")
        assert (await login(proxied, headers={"X-Forwarded-For": "203.0.113.2"}))[0] == 200   # another client
    finally:
        await proxied.close()


async def test_unknown_users_and_the_pbx_cannot_log_in(rig):
    app_obj, client, admin, clock = rig
    await admin.add("dialplan", "pbx")
    await admin.passwd("dialplan", PASSWORD)
    for user in ("nobody", "dialplan"):
        status, answer, _ = await login(client, user=user)
        assert (status, answer["error"]) == (401, "login_failed") and "wrong user or password" in answer["message"]
    for body, field in (({"user": "1001"}, "password"), ({"user": "a\r\nb", "password": "x"}, "user"),
                        ({"user": "1001", "password": ["x"]}, "password")):
        async with client.post("/api/login", json=body) as r:
            assert (r.status, (await r.json())["field"]) == (400, field)


async def test_sessions_expire_when_idle_and_in_any_case(rig):
    app_obj, client, admin, clock = rig
    await login(client)
    clock.advance(29 * 60)
    async with client.get("/api/me") as r:
        assert r.status == 200
    clock.advance(31 * 60)                                        # 31 minutes idle: over 30
    async with client.get("/api/me") as r:
        assert (r.status, (await r.json())["error"]) == (401, "session_expired")
    await login(client)
    signed_in = clock.now()
    for _ in range(13 * 4):                                       # busy all day, every 15 minutes
        clock.advance(15 * 60)
        async with client.get("/api/me") as r:
            status, body = r.status, await r.json()
        if status != 200:
            break
    assert (status, body["error"]) == (401, "session_expired")
    assert timedelta(hours=12) < clock.now() - signed_in <= timedelta(hours=12, minutes=15)


async def test_log_out_ends_the_session(rig):
    app_obj, client, admin, clock = rig
    _, body, _ = await login(client)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/api/me"))[COOKIE].value
    async with client.post("/api/logout", json={}, headers={"X-CSRF-Token": body["csrf_token"]}) as r:
        assert r.status == 200
    async with client.get("/api/me", cookies={COOKIE: cookie}) as r:     # the old cookie, sent anyway
        assert r.status == 401


async def test_revoked_tokens_and_disabled_users_are_refused_at_once(rig):
    app_obj, client, admin, clock = rig
    token, other = await admin.create_token("1001"), await admin.create_token("1001")
    async with client.get("/api/me", headers=bearer(token)) as r:
        assert (r.status, (await r.json())["via"]) == (200, "token")
    [revoked] = await admin.revoke(token[:11])
    assert revoked["prefix"] == token[:11]
    async with client.get("/api/me", headers=bearer(token)) as r:
        assert r.status == 401
    async with client.get("/api/me", headers=bearer(other)) as r:
        assert r.status == 200
    _, body, _ = await login(client)
    await admin.disable("1001")
    async with client.get("/api/me", headers=bearer(other)) as r:
        assert r.status == 401
    async with client.get("/api/me") as r:                               # the session too
        assert r.status == 401
    assert (await login(client))[0] == 401


async def test_a_new_password_ends_the_old_sessions(rig):
    app_obj, client, admin, clock = rig
    await login(client)
    await admin.passwd("1001", "another-password")
    async with client.get("/api/me") as r:
        assert r.status == 401


async def test_tokens_are_stored_only_as_hashes(rig):
    app_obj, client, admin, clock = rig
    token = await admin.create_token("1001")
    from sqlalchemy import select

    from callcenter.storage import tables as t
    async with app_obj.store.engine.connect() as conn:
        rows = (await conn.execute(select(t.api_tokens))).mappings().all()
        users = (await conn.execute(select(t.users))).mappings().all()
    assert token not in str([dict(r) for r in rows]) and len(rows[0]["token_hash"]) == 64
    assert PASSWORD not in str([dict(u) for u in users]) and users[0]["password_hash"].startswith("$argon2id$")


# --- the commands (in-process: callcenter.cli.main) ----------------------------------------

def cli(capsys, monkeypatch, db: str, *args: str, stdin: str = "") -> tuple[int, str, str]:
    from callcenter.cli import main
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        code = main([*args, "--db", db, "--config", str(ROOT / "config")])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_user_and_token_commands(tmp_path, capsys, monkeypatch):
    db = f"sqlite:///{tmp_path / 'cc.db'}"
    run = lambda *args, stdin="": cli(capsys, monkeypatch, db, *args, stdin=stdin)   # noqa: E731
    assert run("users", "add", "1001", "--role", "agent")[0] == 0
    code, out, _ = run("users", "add", "lead", "--role", "head", "--department", "market", "--department", "edu")
    assert code == 0 and "market、edu" in out
    assert run("users", "passwd", "lead", stdin=PASSWORD + "\n")[0] == 0
    code, token, err = run("tokens", "create", "lead")
    token = token.strip()
    assert code == 0 and token.startswith("cc_") and len(token) == 46 and "只显示这一次" in err
    listed = run("tokens", "list")[1]
    assert token[:11] in listed and token not in listed
    users = run("users", "list")[1].splitlines()
    assert users[0].split() == ["用户", "角色", "部门", "坐席", "密码", "有效令牌", "状态"]
    assert users[2].split() == ["1001", "坐席", "—", "1001", "无", "0", "正常"]
    assert users[3].split() == ["lead", "负责人", "market,edu", "—", "有", "1", "正常"]
    assert run("tokens", "revoke", token[:11])[0] == 0
    assert "已吊销" in run("tokens", "list", "lead")[1]
    assert run("users", "disable", "lead")[0] == 0
    assert "已停用" in run("users", "list")[1]


REFUSALS = [
    (("users", "add", "x", "--role", "head"), "", "a head needs at least one --department"),
    (("users", "add", "x", "--role", "head", "--department", "nowhere"), "", "unknown department 'nowhere'"),
    (("users", "add", "x", "--role", "agent", "--agent", "9999"), "", "unknown agent '9999'"),
    (("users", "add", "x", "--role", "agent"), "", "needs --agent"),
    (("users", "add", "a b", "--role", "admin"), "", "user id 'a b'"),
    (("users", "add", "1001", "--role", "agent"), "", "exists already"),
    (("users", "add", "x", "--role", "office", "--department", "edu"), "", "--department is for heads"),
    (("users", "passwd", "1001"), "short\n", "8 to 1024 characters"),
    (("users", "passwd", "1001"), "", "no password on stdin"),
    (("users", "passwd", "nobody"), PASSWORD, "no user 'nobody'"),
    (("users", "disable", "nobody"), "", "no user 'nobody'"),
    (("tokens", "create", "nobody"), "", "no user 'nobody'"),
    (("tokens", "revoke", "cc_zzzzzzzz"), "", "no live token"),
    (("tokens", "revoke", "cc_"), "", "too short"),
]


def test_command_refusals_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    db = f"sqlite:///{tmp_path / 'cc.db'}"
    code, out, err = cli(capsys, monkeypatch, db, "users", "add", "1001", "--role", "agent")
    assert code == 0, err
    for args, stdin, message in REFUSALS:
        code, out, err = cli(capsys, monkeypatch, db, *args, stdin=stdin)
        assert code == 2, (args, err)
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)


async def test_the_demo_prints_credentials_that_sign_in(rig):
    from callcenter.auth.demo import demo_users
    app_obj, client, admin, clock = rig
    made = {user: (password, what) for user, password, what in await demo_users(app_obj)}
    assert made["demo-agent"][1] == "坐席 1001" and made["demo-head"][1] == "区市场监管局负责人"
    for user, role, departments in (("demo-agent", "agent", []), ("demo-head", "head", ["market"])):
        status, body, _ = await login(client, user=user, password=made[user][0])
        assert (status, body["user"]["role"], body["user"]["departments"]) == (200, role, departments)
    again = {user: password for user, password, _ in await demo_users(app_obj)}    # a new run: new passwords
    assert (await login(client, user="demo-head", password=made["demo-head"][0]))[0] == 401
    assert (await login(client, user="demo-head", password=again["demo-head"]))[0] == 200


async def test_the_demo_serves_the_panel_and_its_printed_log_in_works(settings, sqlite_url):
    """`callcenter demo`'s line: the panel's address and two accounts that sign in there."""
    import re

    import aiohttp

    from callcenter.auth.demo import demo_access
    from tests.fakepbx import free_port
    settings.web = settings.web.model_copy(update={"port": free_port()})
    app_obj = build(settings, sqlite_url, FixedClock(MONDAY_10))
    await app_obj.start()
    try:
        line = await demo_access(app_obj)
        base = f"http://127.0.0.1:{settings.web.port}"
        assert f"面板：{base}/login" in line, line
        accounts = dict(re.findall(r"用户 (\S+) 密码 ([^；。]+)", line))
        assert set(accounts) == {"demo-agent", "demo-head"}
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:   # an IP host
            for page in ("/login", "/agent", "/head"):
                async with http.get(base + page) as r:
                    assert r.status == 200 and "zh-CN" in await r.text()
            for user, page in (("demo-agent", "/api/panel/agent"), ("demo-head", "/api/panel/dashboard")):
                http.cookie_jar.clear()
                async with http.post(base + "/api/login", json={"user": user, "password": accounts[user]}) as r:
                    assert r.status == 200
                async with http.get(base + page) as r:
                    assert r.status == 200, await r.text()
    finally:
        await app_obj.stop()


async def test_users_tokens_and_sessions_on_every_backend(settings, db_url):
    """The same rows and answers on SQLite and PostgreSQL (migration 0005), without HTTP."""
    from callcenter.auth import AuthError, Authenticator
    clock = FixedClock(MONDAY_10)
    app_obj = build(settings, db_url, clock)
    await app_obj.store.migrate()
    try:
        admin = UserAdmin(app_obj.store, settings, clock)
        await admin.add("head-market", "head", ["market", "edu"])
        await admin.passwd("head-market", PASSWORD)
        auth = Authenticator(app_obj.store, settings.web, clock)
        token = await admin.create_token("head-market")
        who = await auth.bearer(token)
        assert (who.user, who.role.value, who.departments) == ("head-market", "head", frozenset({"market", "edu"}))
        done = await auth.login("head-market", PASSWORD, "127.0.0.1")
        assert (await auth.session(done.session)).identity.user == "head-market"
        with pytest.raises(AuthError):
            await auth.login("head-market", "wrong", "127.0.0.1")
        assert [u["id"] for u in await admin.list()] == ["head-market"]
        await admin.revoke("head-market")
        with pytest.raises(AuthError):
            await auth.bearer(token)
        await admin.disable("head-market")
        with pytest.raises(AuthError):
            await auth.session(done.session)
    finally:
        await app_obj.store.close()
