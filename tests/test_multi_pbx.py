"""Several PBXes at once (issue 14), with recorded traces over real TCP: two AMI servers
(callcenter/ami/server.py) feed one service configured by tests/multi_pbx/. pbxA plays the `basic`
trace; pbxB plays the same trace with its agents renamed (2001/2002): the same hotline number
62000001, the same queue q-market and the very same Uniqueids, for another department (market_b).
Then pbxB plays `abandon` (q-edu, a queue on every PBX). Checked: calls, stints, cases, tasks
(assigned on the post's own PBX), the coverage board, the report, and that every AMI action
reaches only the PBX of its post. Also `config check`'s refusals of ambiguous mappings."""
from __future__ import annotations

import asyncio
import inspect
import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from callcenter.ami.client import Endpoint
from callcenter.ami.server import AmiServer, Trace, load_trace, stamp
from callcenter.bootstrap import build
from callcenter.clock import FixedClock
from callcenter.domain.presence import AgentSession
from callcenter.domain.records import StintEnd
from callcenter.settings import ConfigError, load_settings
from reports import coverage, daily
from tests.conftest import MONDAY_10, ROOT, trace_path

CONFIG = ROOT / "tests" / "multi_pbx"
DAY = MONDAY_10.date()
_RENAMES = [(b"Local/1001@", b"Local/2001@"), (b"Local/1002@", b"Local/2002@"), (b"Custom:1001", b"Custom:2001"),
            (b"Custom:1002", b"Custom:2002"), (b"Agent A 1001", b"Agent A 2001"), (b"Agent B 1002", b"Agent B 2002")]


def on_pbx_b(trace: Trace, drop_members: bool = False) -> Trace:
    """The trace as pbxB would send it: its own agents (2001/2002) on the same queues and numbers."""
    out = []
    for t, raw in trace.messages:
        if drop_members and raw.startswith((b"Event: QueueMember", b"Event: DeviceStateChange")):
            continue                                   # presence on pbxB is set by the test
        for old, new in _RENAMES:
            raw = raw.replace(old, new)
        out.append((t, raw))
    return Trace(trace.banner, out)


def write_config(tmp_path: Path, ports: dict[str, int]) -> Path:
    data = yaml.safe_load((CONFIG / "callcenter.yaml").read_text(encoding="utf-8"))
    for pbx in data["pbxes"]:
        pbx["port"] = ports[pbx["id"]]
    out = tmp_path / "config"
    out.mkdir()
    (out / "callcenter.yaml").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return out


def member(queue: str, agent: str, at, paused: bool = False) -> dict:
    return {"Event": "QueueMemberAdded", "Privilege": "agent,all", "Queue": queue, "MemberName": f"Agent {agent}",
            "Interface": f"Local/{agent}@agents/n", "StateInterface": f"Custom:{agent}", "Membership": "dynamic",
            "Penalty": 0, "CallsTaken": 0, "LastCall": 0, "LastPause": 0, "LoginTime": 0, "InCall": 0, "Status": 1,
            "Paused": int(paused), "PausedReason": "", "Ringinuse": 0, "Wrapuptime": 0,
            "Timestamp": f"{at.timestamp():.6f}"}


async def until(check, timeout: float = 10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result or loop.time() > deadline:
            return result
        await asyncio.sleep(0.05)


@pytest.fixture
async def two_pbxes(tmp_path, sqlite_url):
    basic = load_trace(trace_path("basic"))
    server_a = AmiServer.from_trace(basic, MONDAY_10)
    server_b = AmiServer.from_trace(on_pbx_b(basic), MONDAY_10)
    ports = {"pbxA": await server_a.start(), "pbxB": await server_b.start()}
    settings = load_settings(write_config(tmp_path, ports))
    app = build(settings, sqlite_url, FixedClock(MONDAY_10))
    clients = [app.service.add_pbx(Endpoint(p.id, "127.0.0.1", p.port, "callcenter", "ccsecret", connect_timeout=2,
                                            action_timeout=2, ping_interval=30, reconnect_min=0.05,
                                            reconnect_max=0.2)) for p in settings.pbxes]
    await app.start()
    try:
        for client in clients:
            await asyncio.wait_for(client.connected.wait(), 5)
        yield app, server_a, server_b
    finally:
        await app.stop()
        await server_a.close()
        await server_b.close()


async def stored_calls(app) -> list:
    return await app.store.calls_between(*daily.day_bounds(DAY, MONDAY_10.tzinfo))


def interfaces(server) -> set[str]:
    return {a["Interface"].split("@")[0] for a in server.actions if "Interface" in a}


async def test_two_pbxes_with_the_same_numbers_queues_and_uniqueids(two_pbxes):
    app, server_a, server_b = two_pbxes
    assert await until(lambda: _count(app, 8)), "the 4 + 4 calls of basic were not stored"
    calls = await stored_calls(app)
    by_pbx = {pbx: {c.id: c for c in calls if c.pbx == pbx} for pbx in ("pbxA", "pbxB")}
    assert len(by_pbx["pbxA"]) == len(by_pbx["pbxB"]) == 4 and set(by_pbx["pbxA"]) == set(by_pbx["pbxB"])
    # hotline 62000001 and q-market: market on pbxA, market_b on pbxB; the agents of each PBX
    for pbx, department, agents in (("pbxA", "market", {"1001", "1002"}), ("pbxB", "market_b", {"2001", "2002"})):
        for record in by_pbx[pbx].values():
            assert record.hotline == "62000001" and record.department == department, record
            [stint] = record.stints
            assert stint.queue == "q-market" and stint.department == department and stint.end is StintEnd.ANSWERED
            assert stint.agent in agents
    await app.after_commit.settled(10)
    cases = await app.cases.list()
    assert {(c["department"], c["pbx"]) for c in cases} == {("market", "pbxA"), ("market_b", "pbxB")}
    assert len(cases) == 8
    assert all(c["owner"] in ({"1001", "1002"} if c["pbx"] == "pbxA" else {"2001", "2002"}) for c in cases)

    # pbxB: 3001 (an agent of no PBX in particular, A of edu-a on pbxA) and 2002 (A of edu-b) log in
    # to q-edu there; then two callers abandon q-edu on pbxB
    later = MONDAY_10 + timedelta(minutes=5)
    for agent in ("3001", "2002"):
        server_b.emit(member("q-edu", agent, later))
    assert await until(lambda: {("pbxB", "q-edu", "3001"), ("pbxB", "q-edu", "2002")}
                       <= set(app.service.presence.seats))
    abandon = on_pbx_b(load_trace(trace_path("abandon")), drop_members=True)
    start = MONDAY_10 + timedelta(minutes=6)
    for t, raw in abandon.messages:
        server_b.emit(stamp(raw, start + timedelta(seconds=t)))
    assert await until(lambda: _count(app, 10)), "the 2 abandoned calls on pbxB were not stored"
    await app.after_commit.settled(10)
    tasks = await app.followup.list(department="edu")
    assert len(tasks) == 2 and {t["pbx"] for t in tasks} == {"pbxB"}
    # the first post (edu-a) is on pbxA, where its A (3001) is not logged in: on pbxB does not count
    assert {(t["assignee"], t["assigned_via"]) for t in tasks} == {("2002", "post_a")}
    assert await app.followup.list(department="market_b") == [] and await app.followup.list(department="market") == []

    # the board: each post on its own PBX; the live picture says which
    live = {p["post"]: p for p in app.coverage.live()}
    assert {post: p["pbx"] for post, p in live.items()} == {"market-1": "pbxA", "market_b-1": "pbxB",
                                                             "edu-a": "pbxA", "edu-b": "pbxB"}
    assert live["edu-b"]["a"]["available"] and not live["edu-a"]["a"]["available"]     # 3001: on pbxB only
    # ... and so do the panel's views: the head's dashboard posts and an agent's "my posts"
    from agents.live.views import department_posts, posts_of
    assert {p["post"]: p["pbx"] for p in department_posts(app, "edu")} == {"edu-a": "pbxA", "edu-b": "pbxB"}
    assert {p["post"]: p["pbx"] for p in posts_of(app, "2002", later)} == {"market_b-1": "pbxB", "edu-b": "pbxB"}

    # a request reaches only the PBX of the agent's post
    for agent in ("2001", "2002"):
        server_b.emit(member("q-market", agent, later))
    assert await until(lambda: ("pbxB", "q-market", "2001") in app.service.presence.seats)
    answer = await app.coverage.request("2001", "pause", "小休")
    assert [(s["post"], s["queue"]) for s in answer["sent"]] == [("market_b-1", "q-market")]
    pauses = [a for a in server_b.actions if a.get("Action") == "QueuePause" and a["Interface"].startswith("Local/2001")]
    assert len(pauses) == 1 and pauses[0]["Queue"] == "q-market"
    await app.coverage.settled()
    # every action the service sent (the coverage's too) names an agent of that PBX's posts
    assert interfaces(server_a) <= {"Local/1001", "Local/1002", "Local/3001", "Local/3002"}
    assert interfaces(server_b) and interfaces(server_b) <= {"Local/2001", "Local/2002"}

    # the report: q-market twice, once per PBX and department; q-edu on pbxB for edu
    records = await stored_calls(app)
    report = daily.build(DAY, records, app.settings)
    queues = {(q["pbx"], q["queue"]): q for q in report["queues"]}
    assert set(queues) == {("pbxA", "q-market"), ("pbxB", "q-market"), ("pbxB", "q-edu")}
    assert (queues["pbxA", "q-market"]["department"], queues["pbxA", "q-market"]["answered"]) == ("market", 4)
    assert (queues["pbxB", "q-market"]["department"], queues["pbxB", "q-market"]["answered"]) == ("market_b", 4)
    assert (queues["pbxB", "q-edu"]["department"], queues["pbxB", "q-edu"]["abandoned"]) == ("edu", 2)
    assert {d["department"]: d["offered"] for d in report["departments"]} == {"market": 4, "market_b": 4, "edu": 2}
    table = daily.render_table(report)
    assert "q-market（分中心市场监管） @pbxB" in table and "q-market（区市场监管局） @pbxA" in table


async def _count(app, n: int) -> bool:
    return len(await stored_calls(app)) >= n


def test_coverage_report_counts_a_post_on_its_own_pbx():
    """3001 works on pbxB all day; edu-a (pbxA, A = 3001) is not covered by that, edu-b (pbxB) is."""
    settings = load_settings(CONFIG)

    def login(pbx, agent, queue):
        return AgentSession(pbx, agent, f"Local/{agent}@agents/n", f"Agent {agent}", queue, "login", "",
                            MONDAY_10.replace(hour=9), MONDAY_10.replace(hour=16, minute=30))
    sessions = [login("pbxB", "3001", "q-edu"), login("pbxB", "2002", "q-edu"), login("pbxA", "2001", "q-market")]
    posts = {p["post"]: p for p in coverage.posts(DAY, settings, sessions)}
    assert {k: (p["pbx"], p["queue"]) for k, p in posts.items()} == {
        "market-1": ("pbxA", "q-market"), "market_b-1": ("pbxB", "q-market"),
        "edu-a": ("pbxA", "q-edu"), "edu-b": ("pbxB", "q-edu")}
    assert posts["edu-a"]["covered_minutes"] == 0 and posts["edu-b"]["coverage_pct"] == 100.0
    assert posts["market_b-1"]["covered_minutes"] == 0       # 2001's session is on pbxA, not its post's PBX
    lines = coverage.table_lines({"posts": list(posts.values())})
    assert any("edu-a（区教育局） @pbxA" in line for line in lines)


def test_directory_resolves_per_pbx():
    d = load_settings(CONFIG).directory()
    assert (d.department_of_hotline("62000001", "pbxA"), d.department_of_hotline("62000001", "pbxB")) == \
        ("market", "market_b")
    assert d.department_of_hotline("62000001") is None            # ambiguous without the PBX
    assert d.department_of_hotline("62000002", "pbxB") == "edu" == d.department_of_hotline("62000002")
    assert (d.department_of_queue("pbxA", "q-market"), d.department_of_queue("pbxB", "q-market")) == \
        ("market", "market_b")
    assert d.agent_of("Local/2001@agents/n", pbx="pbxB") == "2001" and d.agent_of("Local/2001@agents/n", pbx="pbxA") is None
    assert d.agent_of("Local/3001@agents/n", pbx="pbxA") == "3001" == d.agent_of("Local/3001@agents/n", pbx="pbxB")
    assert d.agent_of_channel("Local/2001@agents-0000001;1", "pbxB") == "2001"
    assert d.agent_of_channel("Local/2001@agents-0000001;1", "pbxA") is None
    assert d.main_queue("market_b", "pbxB") == "q-market"


def _config(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load((CONFIG / "callcenter.yaml").read_text(encoding="utf-8"))
    edit(data)
    out = tmp_path / "config"
    out.mkdir(exist_ok=True)
    (out / "callcenter.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return out


def _post(data, post_id) -> dict:
    return next(p for p in data["posts"] if p["id"] == post_id)


def _dept(data, dept_id) -> dict:
    return next(d for d in data["departments"] if d["id"] == dept_id)


def _agent(data, agent_id) -> dict:
    return next(a for a in data["agents"] if a["id"] == agent_id)


@pytest.mark.parametrize("edit, message", [
    # a post on a queue of every PBX that names no PBX: which one?
    (lambda d: _post(d, "edu-a").pop("pbx"),
     r"callcenter.yaml: posts\[2\].pbx: queue 'q-edu' is on every PBX \(pbxA, pbxB\); a post is on one PBX"),
    (lambda d: _post(d, "edu-a").update(pbx="*"), r"posts\[2\].pbx: unknown PBX '\*'; a post is on one PBX"),
    (lambda d: _post(d, "market-1").update(pbx="pbxB"),
     r"posts\[0\].pbx: department 'market' has no queue on PBX 'pbxB'"),
    (lambda d: _post(d, "market-1").update(pbx="pbxC"), r"posts\[0\].pbx: unknown PBX 'pbxC'"),
    (lambda d: _post(d, "edu-a").update(a="2001", b="3002"),
     r"posts\[2\].a: agent '2001' is on PBX 'pbxB', the post on PBX 'pbxA'"),
    # the same number twice on one PBX (a number without a PBX is on every PBX)
    (lambda d: _dept(d, "edu")["hotlines"].append("62000001"),
     r"departments\[2\].hotlines\[1\]: hotline '62000001' already belongs to department 'market' on PBX pbxA"),
    (lambda d: _dept(d, "market_b").update(pbx="pbxA"),          # its queue (and hotline) move to pbxA
     r"departments\[1\].queues\[0\]: queue 'q-market' on PBX pbxA already belongs to department 'market'"),
    (lambda d: _dept(d, "market_b").update(queues=[{"name": "q-market-b"}], pbx="pbxA"),
     r"departments\[1\].hotlines\[0\]: hotline '62000001' already belongs to department 'market' on PBX pbxA"),
    (lambda d: _dept(d, "edu")["hotlines"].append({"number": "62000001", "pbx": "pbxB"}),
     r"departments\[2\].hotlines\[1\]: hotline '62000001' already belongs to department 'market_b' on PBX pbxB"),
    (lambda d: _dept(d, "edu")["hotlines"].append({"number": "62000009", "pbx": "pbxC"}),
     r"departments\[2\].hotlines\[1\].pbx: unknown PBX 'pbxC'"),
    (lambda d: _dept(d, "edu")["hotlines"].append({"number": "62000009", "line": "x"}),
     r"departments\[2\].hotlines\[1\]: expected a quoted number or"),
    # one interface for two agents on one PBX
    (lambda d: _agent(d, "1002")["interfaces"].append("Local/1001@agents/n"),
     r"agents\[1\].interfaces\[1\]: 'Local/1001@agents/n' already belongs to agent '1001' .* \(both on PBX pbxA\)"),
    (lambda d: _agent(d, "3001")["interfaces"].append("Local/2001@agents/n"),
     r"agents\[4\].interfaces\[1\]: 'Local/2001@agents/n' already belongs to agent '2001' .* \(both on PBX pbxB\)"),
    (lambda d: _agent(d, "3001").update(pbx="pbxZ"), r"agents\[4\].pbx: unknown PBX 'pbxZ'"),
])
def test_config_check_refuses_ambiguous_mappings(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(_config(tmp_path, edit))


def test_the_same_interface_on_two_pbxes_may_be_two_agents(tmp_path):
    def edit(d):
        _agent(d, "2001")["interfaces"] = ["Local/1001@agents/n"]           # pbxB's 1001 is another phone
    d = load_settings(_config(tmp_path, edit)).directory()
    assert d.agent_of("Local/1001@agents/n", pbx="pbxA") == "1001" and d.agent_of("Local/1001@agents/n", pbx="pbxB") == "2001"
    assert d.agent_of("Local/1001@agents/n") is None                      # ambiguous without the PBX
    # presence places each membership on its own PBX's agent
    from callcenter.domain import events as ev
    from callcenter.domain.presence import PresenceTracker
    presence = PresenceTracker(d)
    for pbx in ("pbxA", "pbxB"):
        presence.feed(ev.MemberAdded(pbx, MONDAY_10, "q-market", "Local/1001@agents/n", "", "Custom:1001", 0,
                                     False, "", 1, False))
    assert {(m.pbx, m.agent) for m in presence.members.values()} == {("pbxA", "1001"), ("pbxB", "2001")}


def test_a_single_pbx_configuration_keeps_its_meaning():
    """The example configuration (one PBX, no pbx anywhere): every post on that PBX, numbers on it."""
    settings = load_settings(ROOT / "config")
    assert {settings.post_pbx(p)[0] for p in settings.posts} == {"pbx1"}
    d = settings.directory()
    assert d.department_of_hotline("62000001") == d.department_of_hotline("62000001", "pbx1") == "market"
    assert d.agent_of("PJSIP/1001") == d.agent_of("PJSIP/1001", pbx="pbx1") == "1001"


def test_list_tables_show_the_pbx_with_several_pbxes():
    from callcenter.cli_commands import _with_pbx
    from reports import tasks as task_report
    several, one = load_settings(CONFIG), load_settings(ROOT / "config")
    rows = [{"pbx": "pbxB", "department": "market_b", "department_name": "分中心市场监管", "hotline": "62000001"}]
    assert _with_pbx(rows, "department_name", several, "department")[0]["department_name"] == "分中心市场监管@pbxB"
    assert _with_pbx(rows, "hotline", several)[0]["hotline"] == "62000001@pbxB"
    assert _with_pbx(rows, "hotline", one) == rows                      # one PBX: as before
    assert task_report.HEADER[2] == "部门"                               # the column that carries it
