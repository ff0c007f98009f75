"""`callcenter users ...` and `callcenter tokens ...`: the argument parsers and what each does.

callcenter/cli.py only wires them in (`add_parsers`, `run`). A refusal (unknown department or
agent, wrong role combination, duplicate user, unknown token) is one line and exit code 2.
"""
from __future__ import annotations

import getpass
import json
import sys
from zoneinfo import ZoneInfo

from ..domain.access import ROLES
from ..storage.store import Store
from .service import AuthError
from .users import UserAdmin

ROLE_NAMES = {"agent": "坐席", "head": "负责人", "office": "政务服务办", "admin": "管理员", "pbx": "PBX"}


def add_parsers(sub, common) -> None:
    users = sub.add_parser("users", help="users of the API and the panel").add_subparsers(dest="action", required=True)
    ua = users.add_parser("add", parents=[common], help="add a user")
    ua.add_argument("user", metavar="ID")
    ua.add_argument("--role", required=True, choices=ROLES)
    ua.add_argument("--department", action="append", default=[], metavar="DEPT",
                    help="a department the head answers for (repeat for several)")
    ua.add_argument("--agent", metavar="AGENT_ID",
                    help="the configured agent the user is (role agent; default: the user id if it is an agent id)")
    up = users.add_parser("passwd", parents=[common], help="set a user's panel password (prompt, or stdin)")
    up.add_argument("user", metavar="ID")
    ul = users.add_parser("list", parents=[common], help="list users")
    ul.add_argument("--format", choices=["json", "table"], default="table")
    ud = users.add_parser("disable", parents=[common], help="refuse a user at once (sessions end, tokens refused)")
    ud.add_argument("user", metavar="ID")
    ue = users.add_parser("enable", parents=[common], help="allow a disabled user again")
    ue.add_argument("user", metavar="ID")

    tokens = sub.add_parser("tokens", help="API tokens").add_subparsers(dest="action", required=True)
    tc = tokens.add_parser("create", parents=[common], help="create an API token; printed once on stdout")
    tc.add_argument("user", metavar="ID")
    tl = tokens.add_parser("list", parents=[common], help="list tokens (prefix, user, state); never the token")
    tl.add_argument("user", metavar="ID", nargs="?")
    tl.add_argument("--format", choices=["json", "table"], default="table")
    tr = tokens.add_parser("revoke", parents=[common],
                           help="revoke one token by its prefix (cc_XXXXXXXX, as listed) or all of a user's")
    tr.add_argument("what", metavar="ID|TOKEN-PREFIX")


async def run(settings, args) -> str:
    store = Store(args.db)
    try:
        await store.migrate()
        admin = UserAdmin(store, settings)
        return await _run(admin, settings, args)
    except AuthError as exc:                           # one line, exit 2 (like the CLI's usage errors)
        print(f"callcenter: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        await store.close()


async def _run(admin: UserAdmin, settings, args) -> str:
    tz = ZoneInfo(settings.timezone)
    if args.command == "users":
        if args.action == "add":
            user = await admin.add(args.user, args.role, args.department, args.agent)
            return f"已添加用户 {user['id']}（{_describe(user)}）"
        if args.action == "passwd":
            await admin.get(args.user)
            await admin.passwd(args.user, read_password())
            return f"已设置用户 {args.user} 的密码（该用户已登录的会话均已结束）"
        if args.action == "list":
            users = await admin.list()
            return json.dumps(users, ensure_ascii=False, indent=2) if args.format == "json" else _users_table(users)
        if args.action == "disable":
            await admin.disable(args.user)
            return f"已停用用户 {args.user}（会话已结束，令牌一律拒绝）"
        await admin.enable(args.user)
        return f"已启用用户 {args.user}"
    if args.action == "create":
        token = await admin.create_token(args.user)
        print(f"用户 {args.user} 的 API 令牌（只显示这一次，请妥善保存）：", file=sys.stderr)
        return token
    if args.action == "list":
        tokens = await admin.tokens(args.user)
        return json.dumps(tokens, ensure_ascii=False, indent=2) if args.format == "json" else _tokens_table(tokens, tz)
    revoked = await admin.revoke(args.what)
    return "\n".join(f"已吊销令牌 {t['prefix']}…（用户 {t['user']}）" for t in revoked)


def read_password() -> str:
    """From a prompt (twice) on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass("新密码：")
        if getpass.getpass("再输入一次：") != first:
            raise AuthError("the two passwords differ")
        return first
    line = sys.stdin.readline()
    if not line:
        raise AuthError("no password on stdin")
    return line.rstrip("\r\n")


def _describe(user: dict) -> str:
    parts = [f"角色 {ROLE_NAMES.get(user['role'], user['role'])}"]
    if user["departments"]:
        parts.append("部门 " + "、".join(user["departments"]))
    if user["agent"]:
        parts.append(f"坐席 {user['agent']}")
    return "，".join(parts)


def _users_table(users: list[dict]) -> str:
    from reports.text import grid
    if not users:
        return "没有用户。添加：callcenter users add ID --role agent|head|office|admin|pbx"
    rows = [[u["id"], ROLE_NAMES.get(u["role"], u["role"]), ",".join(u["departments"]) or "—", u["agent"] or "—",
             "有" if u["has_password"] else "无", str(u["tokens"]), "已停用" if u["disabled"] else "正常"] for u in users]
    return "\n".join(grid(["用户", "角色", "部门", "坐席", "密码", "有效令牌", "状态"], rows))


def _tokens_table(tokens: list[dict], tz: ZoneInfo) -> str:
    from datetime import datetime

    from reports.text import grid
    if not tokens:
        return "没有令牌。创建：callcenter tokens create ID"
    rows = [[str(t["id"]), t["prefix"], t["user"],
             f"{datetime.fromisoformat(t['created_at']).astimezone(tz):%Y-%m-%d %H:%M}",
             "有效" if t["revoked_at"] is None else "已吊销"] for t in tokens]
    return "\n".join(grid(["编号", "前缀", "用户", "创建时间", "状态"], rows))
