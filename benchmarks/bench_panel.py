"""Panel push benchmark: 300 WebSocket panels, 200 AMI events per second, delay per push.

The issue's acceptance: "With 300 panels connected and 200 AMI events per second, 99 % of pushes
reach the clients within 100 ms of the event's arrival (benchmark with real WebSocket or SSE
clients on loopback)". Three processes on one machine:

  AMI server   (forked child) the real `AmiServer` over TCP. After the service logs in it sends
               every agent's QueueMemberAdded, then, on "go", a paced stream of ``--rate`` events
               per second for ``--seconds``: calls (Newchannel, QueueCallerJoin, AgentCalled,
               AgentConnect, QueueCallerLeave, AgentComplete, Hangup; up to ``--concurrent`` calls
               at once, an idle agent of the call's department answers) mixed with pauses and
               unpauses of idle agents (``--pause-share``). Each message carries
               ``Timestamp: <wall clock at emission>``, as Asterisk does with timestampevents.
  service      (this process) `callcenter.bootstrap.build` (SystemClock, SQLite in a temporary
               directory), what `serve` runs: the AmiClient, the service, the desk if wired, the
               hub and its pushes, and the aiohttp web application on 127.0.0.1 (``/api/live``).
               Configuration: ``--departments`` departments with one queue each and
               ``--posts`` posts per department (A and B each: 2 x posts x departments agents).
  clients      (spawned child) one asyncio process with ``--agents`` agent panels (each signed in
               as its agent, bearer token) and ``--heads`` head dashboards (one department each,
               round robin), all real aiohttp WebSocket clients. For each push it reads the
               message's ``type``, ``event_at`` and ``sent_at`` (the tail of the text frame; no
               full JSON parse on the hot path) and records ``receipt - event_at`` (wall clock,
               same host) and ``receipt - sent_at``.

``event_at`` is when the earliest event a push answers arrived at the service's event stream
(agents/live/push.py). The service process also records, per event, the delay from its
PBX emission (the Timestamp header) to that moment (``ingest lag``: TCP, framing, the inbox).

Exit status 1 when fewer than 99 % of pushes arrive within 100 ms of ``event_at`` (unless
``--no-check``).

    python benchmarks/bench_panel.py                     # 280 agents + 20 heads, 200 ev/s, 25 s
    python benchmarks/bench_panel.py --seconds 5 --no-check
    python benchmarks/bench_panel.py --json /tmp/panel.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:                   # benchmark the checkout this file lives in
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET_MS = 100.0
TARGET_SHARE = 0.99
PBX = "pbx1"


# --- the world ------------------------------------------------------------------------------------

def world(departments: int, posts: int) -> dict:
    """Departments d00.., queue dNN-q, agents (A and B of each post) with PJSIP interfaces."""
    depts, agents, post_list = [], [], []
    n = 0
    for d in range(departments):
        dept = f"d{d:02d}"
        depts.append({"id": dept, "name": f"部门{d:02d}", "queues": [{"name": f"{dept}-q", "pbx": PBX}],
                      "hotlines": [f"6300{d:04d}"], "head": {"id": f"head-{dept}", "name": f"科长{d:02d}"}})
        for p in range(posts):
            ids = []
            for _ in ("a", "b"):
                n += 1
                ids.append(f"{20000 + n}")
                agents.append({"id": f"{20000 + n}", "name": f"坐席{n:03d}", "interfaces": [f"PJSIP/{20000 + n}"],
                               "member_names": [f"Agent {20000 + n}"]})
            post_list.append({"id": f"{dept}-p{p}", "department": dept, "a": ids[0], "b": ids[1],
                              "queue": f"{dept}-q"})
    return {"pbxes": [{"id": PBX, "username": "bench", "secret": "bench"}], "departments": depts,
            "agents": agents, "posts": post_list}


def fmt(fields: dict) -> bytes:
    fields = {**fields, "Timestamp": "%.6f" % time.time()}
    return ("".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n").encode()


def member(agent: dict, queue: str, event: str, paused: bool = False, reason: str = "") -> dict:
    return {"Event": event, "Privilege": "agent,all", "Queue": queue, "MemberName": agent["member_names"][0],
            "Interface": agent["interfaces"][0], "StateInterface": agent["interfaces"][0], "Membership": "dynamic",
            "Penalty": 0, "CallsTaken": 0, "LastCall": 0, "LastPause": 0, "LoginTime": 0, "InCall": 0,
            "Status": 1, "Paused": int(paused), "PausedReason": reason, "Ringinuse": 0}


class Traffic:
    """The paced stream: calls through their life and pauses of idle agents, consistent state."""

    def __init__(self, spec: dict, concurrent: int, pause_share: float, seed: int = 7):
        self.rng = random.Random(seed)
        self.pause_share = pause_share
        self.concurrent = concurrent
        self.queue_of = {p["a"]: p["queue"] for p in spec["posts"]} | {p["b"]: p["queue"] for p in spec["posts"]}
        self.agents = {a["id"]: a for a in spec["agents"]}
        self.by_queue: dict[str, list[str]] = {}
        for agent, queue in self.queue_of.items():
            self.by_queue.setdefault(queue, []).append(agent)
        self.queues = sorted(self.by_queue)
        self.busy: set[str] = set()
        self.paused: set[str] = set()
        self.calls: list[dict] = []
        self.n = 0

    def logins(self) -> list[bytes]:
        return [fmt(member(self.agents[a], q, "QueueMemberAdded")) for a, q in self.queue_of.items()]

    def next(self) -> bytes:
        if self.rng.random() < self.pause_share:
            idle = [a for a in self.agents if a not in self.busy]
            agent = self.rng.choice(idle)
            paused = agent not in self.paused
            (self.paused.add if paused else self.paused.discard)(agent)
            return fmt(member(self.agents[agent], self.queue_of[agent], "QueueMemberPause", paused,
                              "小休" if paused else ""))
        if len(self.calls) < self.concurrent:
            self.n += 1
            uid = f"1764000000.{self.n:06d}"
            self.calls.append({"uid": uid, "queue": self.rng.choice(self.queues), "step": 0,
                               "caller": f"139{self.n:08d}", "agent": None})
        call = self.rng.choice(self.calls)
        return self._step(call)

    def _step(self, c: dict) -> bytes:
        base = {"Uniqueid": c["uid"], "Linkedid": c["uid"], "Channel": f"PJSIP/trunk-{c['uid'][-6:]}",
                "CallerIDNum": c["caller"], "CallerIDName": f"Caller {c['caller']}", "Queue": c["queue"]}
        step = c["step"]
        c["step"] += 1
        if step == 0:
            return fmt({"Event": "Newchannel", **base, "Context": "hotline", "Exten": "63000000", "ChannelState": "0"})
        if step == 1:
            return fmt({"Event": "QueueCallerJoin", **base, "Position": 1, "Count": 1})
        if step == 2:
            free = [a for a in self.by_queue[c["queue"]] if a not in self.busy and a not in self.paused]
            if not free:                                  # nobody free: the caller keeps waiting
                c["step"] = 2
                return fmt({"Event": "QueueCallerJoin", **base, "Position": 1, "Count": 1})
            c["agent"] = self.rng.choice(free)
            self.busy.add(c["agent"])
        agent = self.agents[c["agent"]] if c["agent"] else None
        who = {"Interface": agent["interfaces"][0], "MemberName": agent["member_names"][0]} if agent else {}
        if step == 2:
            return fmt({"Event": "AgentCalled", **base, **who})
        if step == 3:
            return fmt({"Event": "AgentConnect", **base, **who, "HoldTime": 3, "RingTime": 1})
        if step == 4:
            return fmt({"Event": "QueueCallerLeave", **base, "Position": 1, "Count": 0})
        if step == 5:
            return fmt({"Event": "AgentComplete", **base, **who, "TalkTime": 20, "Reason": "caller"})
        self.calls.remove(c)
        self.busy.discard(c["agent"])
        return fmt({"Event": "Hangup", **base, "Cause": 16})


# --- the AMI server process -----------------------------------------------------------------------

def ami_process(spec: dict, args, conn) -> None:
    from callcenter.ami.server import AmiServer

    async def main() -> None:
        server = AmiServer()
        conn.send(await server.start())
        traffic = Traffic(spec, args.concurrent, args.pause_share)
        # the service's resync after its login (QueueStatus, CoreShowChannels) first: then the logins
        while not any(a.get("Action", "").lower() == "coreshowchannels" for a in server.actions):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        for raw in traffic.logins():
            server.emit(raw)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)            # "go"
        sent, start = 0, time.perf_counter()
        total = int(args.rate * args.seconds)
        while sent < total:
            due = int((time.perf_counter() - start) * args.rate) + 1
            while sent < min(due, total):
                server.emit(traffic.next())
                sent += 1
            await asyncio.sleep(max(0.0, (sent / args.rate) - (time.perf_counter() - start)))
        conn.send(sent)
        await loop.run_in_executor(None, conn.recv)            # "stop"
        await server.close()

    asyncio.run(main())


# --- the clients process --------------------------------------------------------------------------

TAIL = re.compile(rb'"event_at":(null|"([^"]+)"),"sent_at":"([^"]+)"\}$')
TYPE = re.compile(rb'^\{"type":"(\w+)"')


def clients_process(port: int, tokens: list[str], conn) -> None:
    import aiohttp
    from datetime import datetime

    def epoch(text: bytes) -> float:
        return datetime.fromisoformat(text.decode()).timestamp()

    async def client(session, token, record, ready) -> None:
        async with session.ws_connect(f"http://127.0.0.1:{port}/api/live",
                                      headers={"Authorization": f"Bearer {token}"}, heartbeat=None) as ws:
            hello = await ws.receive()
            assert hello.type == aiohttp.WSMsgType.TEXT and '"hello"' in hello.data[:20], hello
            ready()
            async for msg in ws:
                now = time.time()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                data = msg.data.encode()
                m, t = TAIL.search(data[-200:]), TYPE.match(data)
                if m is None or t is None:
                    continue
                kind = t.group(1).decode()
                event = epoch(m.group(2)) if m.group(2) else None
                record.append((kind, None if event is None else now - event, now - epoch(m.group(3)), len(data)))

    async def main() -> None:
        record: list = []
        connected = 0
        all_ready = asyncio.Event()

        def ready() -> None:
            nonlocal connected
            connected += 1
            if connected == len(tokens):
                all_ready.set()
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            tasks = [asyncio.create_task(client(session, tok, record, ready)) for tok in tokens]
            await asyncio.wait_for(all_ready.wait(), 60)
            conn.send("ready")
            loop = asyncio.get_running_loop()
            record.clear()                                      # pushes before "go" are not counted
            await loop.run_in_executor(None, conn.recv)         # "stop"
            failed = [t for t in tasks if t.done() and t.exception()]
            for t in tasks:
                t.cancel()
            conn.send({"record": record, "failed": len(failed)})

    asyncio.run(main())


# --- the service ----------------------------------------------------------------------------------

async def receive(conn, process, what: str, timeout: float = 120.0):
    """The child's next message; an error (not a hang) when it died or stays silent."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await loop.run_in_executor(None, conn.poll, 0.2):
        if not process.is_alive():
            raise RuntimeError(f"the {what} process died (exit code {process.exitcode})")
        if loop.time() > deadline:
            raise RuntimeError(f"the {what} process did not answer within {timeout:g} s")
    return conn.recv()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def run(args) -> dict:
    from aiohttp import web

    from callcenter.ami.client import Endpoint
    from callcenter.auth import UserAdmin
    from callcenter.bootstrap import build
    from callcenter.settings import Settings
    from callcenter.web.app import init_app

    spec = world(args.departments, args.posts)
    settings = Settings.model_validate(spec)
    ctx = multiprocessing.get_context("fork")
    ami_parent, ami_child = ctx.Pipe()
    ami = ctx.Process(target=ami_process, args=(spec, args, ami_child), daemon=True)
    ami.start()
    port = ami_parent.recv()
    tmp = tempfile.mkdtemp(prefix="bench_panel_")
    url = f"sqlite:///{tmp}/callcenter.db"
    if args.db == "postgresql":
        from common import pg_create, pg_urls
        admin_url, url = pg_urls(args.postgres, "bench_panel")
        await asyncio.get_running_loop().run_in_executor(None, pg_create, admin_url, "bench_panel")
    app = build(settings, url)
    client = app.service.add_pbx(Endpoint(PBX, "127.0.0.1", port, "bench", "bench", action_timeout=10,
                                          ping_interval=3600, reconnect_min=0.05))
    lags: list[float] = []                                     # PBX emission -> the consumer takes it
    waits: list[float] = []                                    # arrival (event_at's stamp) -> the consumer

    def observe(e) -> None:
        now = time.time()
        lags.append(now - e.at.timestamp())
        if app.live._stamp is not None:
            waits.append(now - app.live._stamp.timestamp())
    app.service.subscribe(observe)
    flushes: list[float] = []                                  # the consumer awaits each commit
    flush = app.service._flush

    async def timed_flush(force: bool = False) -> None:
        t0 = time.perf_counter()
        try:
            await flush(force)
        finally:
            flushes.append(time.perf_counter() - t0)
    app.service._flush = timed_flush
    await app.start()
    runner = None
    clients = None
    try:
        await asyncio.wait_for(client.connected.wait(), 10)
        deadline = time.monotonic() + 30
        while len(app.service.presence.members) < len(spec["agents"]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(app.service.presence.members)} of {len(spec['agents'])} agents "
                                   "logged in after 30 s")
            await asyncio.sleep(0.05)
        print(f"bench_panel: {len(spec['agents'])} agents logged in; signing in {args.agents + args.heads} panels",
              file=sys.stderr, flush=True)
        admin = UserAdmin(app.store, settings, app.clock)
        agent_ids = [a["id"] for a in spec["agents"]][:args.agents]
        tokens = []
        for agent in agent_ids:
            await admin.add(agent, "agent", [], agent)
            tokens.append(await admin.create_token(agent))
        for h in range(args.heads):
            dept = spec["departments"][h % len(spec["departments"])]["id"]
            await admin.add(f"head{h:02d}", "head", [dept])
            tokens.append(await admin.create_token(f"head{h:02d}"))
        runner = web.AppRunner(await init_app(app))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        web_port = runner.addresses[0][1]
        spawn = multiprocessing.get_context("spawn")
        cl_parent, cl_child = spawn.Pipe()
        clients = spawn.Process(target=clients_process, args=(web_port, tokens, cl_child), daemon=True)
        clients.start()
        assert await receive(cl_parent, clients, "clients") == "ready"
        print(f"bench_panel: {len(tokens)} panels connected; streaming {args.rate:g} events/s for {args.seconds:g} s",
              file=sys.stderr, flush=True)
        await asyncio.sleep(args.settle)                       # the hellos settle
        lags.clear()
        waits.clear()
        flushes.clear()
        if args.gc_freeze:                                     # what a service could do after start-up
            import gc
            gc.collect()
            gc.freeze()
        import gc
        pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        started: list[float] = [0.0]

        def gc_timer(phase, info) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                pauses[info["generation"]].append(time.perf_counter() - started[0])
        gc.callbacks.append(gc_timer)
        hub = app.hub
        base = (hub.published, hub.deliveries, sum(s.superseded for s in hub.subscribers))
        profiler = None
        if args.profile:
            import cProfile
            profiler = cProfile.Profile()
            profiler.enable()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        ami_parent.send("go")
        sent = await receive(ami_parent, ami, "AMI server", args.seconds + 60)
        await asyncio.sleep(args.settle)                       # the last pushes arrive
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        gc.callbacks.remove(gc_timer)
        if profiler is not None:
            import pstats
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats(args.profile).print_stats(45)
        stats = (hub.published - base[0], hub.deliveries - base[1],
                 sum(s.superseded for s in hub.subscribers) - base[2])
        cl_parent.send("stop")
        result = await receive(cl_parent, clients, "clients")
    finally:
        if runner is not None:
            await runner.cleanup()
        await app.stop()
        ami_parent.send("stop")
        ami.join(5)
        if clients is not None:
            clients.join(5)
            if clients.is_alive():
                clients.terminate()
        if ami.is_alive():
            ami.terminate()
        if args.db == "postgresql":
            from common import pg_drop
            await asyncio.get_running_loop().run_in_executor(None, pg_drop, admin_url, "bench_panel")
        shutil.rmtree(tmp, ignore_errors=True)                  # the SQLite file: this run's own
    record = result["record"]
    delays = [r[1] * 1000 for r in record if r[1] is not None]
    by_type: dict[str, list[float]] = {}
    for kind, delay, _, _ in record:
        if delay is not None:
            by_type.setdefault(kind, []).append(delay * 1000)
    hub_delays = [r[2] * 1000 for r in record]
    within = sum(1 for d in delays if d <= TARGET_MS) / len(delays) if delays else 0.0
    return {
        "clients": len(tokens), "agents": args.agents, "heads": args.heads, "events": sent,
        "seconds": round(wall, 1), "rate": round(sent / args.seconds, 1), "service_cpu_share": round(cpu / wall, 2),
        "pushes_received": len(record), "pushes_with_event_at": len(delays), "client_failures": result["failed"],
        "messages_serialised": stats[0], "deliveries": stats[1], "snapshots_superseded": stats[2],
        "bytes_received": sum(r[3] for r in record),
        "delay_ms": {"p50": round(percentile(delays, 50), 1), "p99": round(percentile(delays, 99), 1),
                     "max": round(max(delays, default=float("nan")), 1)},
        "within_100ms": round(within, 4),
        "by_type": {k: {"count": len(v), "p50": round(percentile(v, 50), 1), "p99": round(percentile(v, 99), 1),
                        "max": round(max(v), 1)} for k, v in sorted(by_type.items())},
        "hub_to_client_ms": {"p50": round(percentile(hub_delays, 50), 1), "p99": round(percentile(hub_delays, 99), 1)},
        "ingest_lag_ms": {"p50": round(percentile([x * 1000 for x in lags], 50), 1),
                          "p99": round(percentile([x * 1000 for x in lags], 99), 1)},
        "inbox_wait_ms": {"p50": round(percentile([x * 1000 for x in waits], 50), 1),
                          "p99": round(percentile([x * 1000 for x in waits], 99), 1),
                          "max": round(max(waits, default=0) * 1000, 1)},
        "consumer_commit_ms": {"count": len(flushes), "p50": round(percentile([x * 1000 for x in flushes], 50), 1),
                               "p99": round(percentile([x * 1000 for x in flushes], 99), 1),
                               "max": round(max(flushes, default=0) * 1000, 1)},
        "database": url.split(":", 1)[0],
        "gc_pauses": {f"gen{g}": {"count": len(v), "max_ms": round(max(v, default=0) * 1000, 1),
                                  "total_ms": round(sum(v) * 1000, 1)} for g, v in pauses.items()},
        "gc_frozen": args.gc_freeze,
        "desk": getattr(app, "desk", None) is not None,
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, default=280, help="agent panels (signed in as agents)")
    p.add_argument("--heads", type=int, default=20, help="head dashboards (one department each)")
    p.add_argument("--departments", type=int, default=20)
    p.add_argument("--posts", type=int, default=7, help="posts per department (2 agents each)")
    p.add_argument("--rate", type=float, default=200, help="AMI events per second")
    p.add_argument("--seconds", type=float, default=25)
    p.add_argument("--concurrent", type=int, default=40, help="calls in progress at once")
    p.add_argument("--pause-share", type=float, default=0.05, help="share of events that are pauses/unpauses")
    p.add_argument("--gc-freeze", action="store_true", help="gc.freeze() in the service once set up")
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite",
                   help="postgresql: a database bench_panel next to CALLCENTER_TEST_POSTGRES_URL (or --postgres)")
    p.add_argument("--postgres", default=os.environ.get("CALLCENTER_TEST_POSTGRES_URL"))
    p.add_argument("--settle", type=float, default=1.0, help="seconds before and after the stream")
    p.add_argument("--json", help="write the figures to this file too")
    p.add_argument("--profile", choices=("tottime", "cumtime"), help="print a cProfile of the service during the run, sorted so")
    p.add_argument("--no-check", action="store_true", help="exit 0 even when the target is missed")
    return p.parse_args(argv)


def main(argv=None) -> int:
    from common import machine
    args = parse_args(argv)
    if args.db == "postgresql" and not args.postgres:
        raise SystemExit("bench_panel: --db postgresql needs CALLCENTER_TEST_POSTGRES_URL or --postgres URL")
    if args.agents > 2 * args.departments * args.posts:
        raise SystemExit("bench_panel: more agent panels than agents; raise --departments or --posts")
    figures = asyncio.run(run(args))
    figures["machine"] = machine("aiohttp")
    print(json.dumps(figures, ensure_ascii=False, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, ensure_ascii=False, indent=2))
    ok = figures["within_100ms"] >= TARGET_SHARE and figures["client_failures"] == 0
    if not ok:
        print(f"target missed: {figures['within_100ms']:.2%} of pushes within {TARGET_MS:g} ms "
              f"(target {TARGET_SHARE:.0%}), {figures['client_failures']} client failures", file=sys.stderr)
    return 0 if ok or args.no_check else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
