"""FastAGI IVR benchmark (issue 12): service time per session and owner routing under load.

The acceptance: "a FastAGI session (connect, a three-level menu, the routing decision) costs under
20 ms of service time per call at 200 concurrent sessions; owner routing stays under its 50 ms p99."

The service is the real application (`callcenter.bootstrap.build` on `config/` plus an `ivr.yaml`
with a three-level menu for 区市场监管局) with the real `IvrServer` (ivr/fastagi.py,
ivr/agi_session.py) on a database of `--cases` cases (bench_route.py's generator and loaders: 10 %
open, at most one open per caller+department). It runs in this process; 200 fake-Asterisk clients
run in ANOTHER process (spawned), each sending the agi_ header and answering every command as
Asterisk does (GET DATA with the digits that walk 1 -> 1 -> 1, i.e. three levels, to 食品经营许可).

Phase A, saturated (the cost): `--concurrency` clients in a closed loop, no think time, callers
without an open case (the owner lookup runs and finds nothing), every session walks the three
levels to the queue. Service time per call = `time.process_time()` of the service process over
the phase (all its threads: event loop and aiosqlite's) / sessions. Also wall time per session and
sessions/s. With PostgreSQL the database server's own CPU is not in that figure (another process).

Phase B, owner routing at 200 concurrent sessions: the same clients, each session with a caller
taken from a shuffled mix (half repeat callers whose open case's owner is available, half menu
walkers), answers delayed as a phone line delays them (`--prompt-delay` per STREAM FILE / GET DATA
prompt, `--key-delay` before a key press) and the clients' starts spread over `--ramp` seconds, so
200 sessions are in the IVR at once, arriving as callers do, without the service being saturated. Per owner session the client measures the routing decision: from the
header sent to the `SET VARIABLE` of the route received, minus the time the client itself spent
playing prompts; p50/p99 (target p99 < 50 ms); every answer is checked (IVRROUTE owner, the case
owner's interface as TARGET). In both phases the service's "owner routing failed" warnings
(the lookup past ivr.agi_session.LOOKUP_SECONDS; the caller then gets the menu) are counted.

    python benchmarks/bench_ivr.py                      # SQLite (+ PostgreSQL when configured), ~1 min
    python benchmarks/bench_ivr.py --sessions 1000 --seconds 8 --no-check
    python benchmarks/bench_ivr.py --db postgresql      # needs CALLCENTER_TEST_POSTGRES_URL

Exit status 1 when a target is missed or an answer was wrong (unless --no-check).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET_CPU_MS = 20.0
TARGET_P99_MS = 50.0
HOTLINE = "62000001"                  # 区市场监管局
DIGITS = ("1", "1", "1")              # 许可类 -> 食品类 -> 食品经营许可
IVR_YAML = """\
ivr:
  menus:
    - department: market
      entries:
        - digit: "1"
          label: 许可类事项
          menu:
            - digit: "1"
              label: 食品类许可
              menu:
                - {digit: "1", item: 食品经营许可}
                - {digit: "2", item: 《酒类商品零售许可证》审批}
            - {digit: "2", item: 各类企业及其分支机构营业的许可}
            - {digit: "3", item: 特种设备安全管理人员、作业人员资格认定}
        - {digit: "2", item: 企业登记档案查阅}
"""


# --- the fake Asterisk (the client process) ----------------------------------------------------------

def header(caller: str, hotline: str, n: int) -> bytes:
    script = f"ivr?hotline={hotline}"
    env = {"network": "yes", "network_script": script, "request": f"agi://127.0.0.1/{script}",
           "channel": f"Local/{hotline}@ivr-agi-{n:08x};2", "language": "en", "type": "Local",
           "uniqueid": f"1795347732.{n}", "version": "20.5.0", "callerid": caller, "calleridname": "Caller",
           "context": "ivr-agi", "extension": hotline, "priority": "2", "accountcode": "", "threadid": "1"}
    return "".join(f"agi_{k}: {v}\n" for k, v in env.items()).encode() + b"\n"


async def one_session(port: int, plan: tuple, n: int, prompt_delay: float, key_delay: float) -> dict:
    caller, hotline, kind, case_id = plan
    keys = list(DIGITS)
    slept = 0.0
    variables: dict[str, str] = {}
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(header(caller, hotline, n))
    t_sent = time.perf_counter()
    t_first = t_route = None
    slept_at_route = 0.0
    commands = 0
    try:
        while True:
            raw = await reader.readline()
            if not raw:
                break
            now = time.perf_counter()
            commands += 1
            if t_first is None:
                t_first = now
            command = raw.decode()
            if command.startswith("SET VARIABLE"):
                if t_route is None:
                    t_route, slept_at_route = now, slept
                parts = command.split('"')
                variables[parts[1]] = parts[3]
                reply = "200 result=1"
            elif command.startswith("GET DATA"):
                delay = prompt_delay + key_delay
                reply = f"200 result={keys.pop(0)}" if keys else "200 result= (timeout)"
            elif command.startswith("STREAM FILE"):
                delay = prompt_delay
                reply = "200 result=0 endpos=8000"
            else:
                reply = "200 result=1" if command.startswith(("ANSWER", "HANGUP", "VERBOSE")) else "200 result=0"
            if command.startswith(("GET DATA", "STREAM FILE")) and delay:
                await asyncio.sleep(delay)
                slept += delay
            writer.write(reply.encode() + b"\n")
    finally:
        writer.close()
    t_end = time.perf_counter()
    return {"kind": kind, "caller": caller, "case_id": case_id, "wall": t_end - t0, "busy": t_end - t0 - slept,
            "first": None if t_first is None else t_first - t_sent,
            "route": None if t_route is None else t_route - t_sent - slept_at_route,
            "variables": variables, "commands": commands}


async def run_clients(port: int, plans: list, concurrency: int, seconds: float | None,
                      prompt_delay: float, key_delay: float, ramp: float = 0.0) -> dict:
    """`concurrency` workers take plans in turn until they are used up (or `seconds` pass); worker
    i starts after `ramp * i / concurrency` s, so arrivals are spread as callers' are."""
    results: list[dict] = []
    errors: list[str] = []
    nxt = iter(enumerate(plans))
    start = time.perf_counter()

    async def worker(i: int) -> None:
        await asyncio.sleep(ramp * i / concurrency)
        for n, plan in nxt:
            if seconds is not None and time.perf_counter() - start > seconds:
                return
            try:
                results.append(await asyncio.wait_for(one_session(port, plan, n, prompt_delay, key_delay), 60))
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return {"results": results, "errors": errors, "elapsed": time.perf_counter() - start}


def client_process(port, plans, concurrency, seconds, prompt_delay, key_delay, ramp, conn) -> None:
    try:
        out = asyncio.run(run_clients(port, plans, concurrency, seconds, prompt_delay, key_delay, ramp))
    except BaseException as exc:              # report, never hang the service side
        out = {"results": [], "errors": [f"client process: {type(exc).__name__}: {exc}"], "elapsed": 0.0}
    conn.send(out)
    conn.close()


# --- the service (this process) ----------------------------------------------------------------------

lookup_failures: list[str] = []


class _Count(logging.Handler):
    """Counts the service's "owner routing ... failed" warnings (the lookup past LOOKUP_SECONDS)
    instead of printing one line each."""

    def emit(self, record: logging.LogRecord) -> None:
        if "owner routing" in record.getMessage():
            lookup_failures.append(record.getMessage())


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


async def phase(label: str, port: int, plans: list, args, seconds: float | None, prompt_delay: float,
                key_delay: float, ramp: float = 0.0) -> dict:
    spawn = multiprocessing.get_context("spawn")
    mine, theirs = spawn.Pipe()
    proc = spawn.Process(target=client_process, daemon=True,
                         args=(port, plans, args.concurrency, seconds, prompt_delay, key_delay, ramp, theirs))
    proc.start()
    await asyncio.sleep(0)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    # wait for the client process on a thread: the event loop keeps serving
    while not await asyncio.to_thread(mine.poll, 0.5):
        if not proc.is_alive() and not mine.poll():
            raise SystemExit(f"{label}: the client process died (exit {proc.exitcode})")
    out = mine.recv()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await asyncio.to_thread(proc.join, 10)
    res = out["results"]
    n = len(res)
    fig = {"phase": label, "sessions": n, "errors": len(out["errors"]), "error_sample": out["errors"][:3],
           "client_elapsed_s": round(out["elapsed"], 2), "service_cpu_s": round(cpu, 3), "service_wall_s": round(wall, 2),
           "cpu_ms_per_session": round(cpu / n * 1000, 3) if n else None,
           "sessions_per_s": round(n / out["elapsed"], 1) if out["elapsed"] else None,
           "wall_ms_p50": round(pct([r["wall"] * 1000 for r in res], 50), 2),
           "wall_ms_p99": round(pct([r["wall"] * 1000 for r in res], 99), 2),
           "busy_ms_p50": round(pct([r["busy"] * 1000 for r in res], 50), 2),
           "commands_per_session": round(sum(r["commands"] for r in res) / n, 2) if n else None}
    return fig, res


def check_menu(res: list[dict]) -> int:
    """Menu walkers: IVRROUTE queue, q-market, LEVEL 3, CHOICE 111 (the digits of the three levels)."""
    bad = [r for r in res if r["kind"] == "menu" and not (
        r["variables"].get("IVRROUTE") == "queue" and r["variables"].get("QNAME") == "q-market"
        and r["variables"].get("LEVEL") == "3" and r["variables"].get("CHOICE") == "111")]
    if bad:
        print("wrong menu answer, e.g.:", bad[0]["variables"], flush=True)
    return len(bad)


async def run_backend(backend: str, url: str, settings, data, args) -> dict:
    from bench_route import AT
    from callcenter.bootstrap import build
    from callcenter.clock import FixedClock
    from callcenter.domain.cases import Presence
    from ivr import server as ivr_server
    from bench_route import phone
    at = AT + timedelta(hours=1)                         # Monday 10:00 Shanghai: open
    app = build(settings, url, FixedClock(at))
    agents = [a.id for a in settings.agents]
    presence = {a: Presence(a, True, (f"PJSIP/{a}",)) for a in agents}
    app.cases.presence = lambda: presence
    server = ivr_server.attach(app, port=0)
    await server.start()
    outcomes: dict[str, int] = {}
    server.ivr.on_finished = lambda rec: outcomes.__setitem__(rec["outcome"], outcomes.get(rec["outcome"], 0) + 1)
    try:
        rng = random.Random(args.seed)
        market = settings.directory().hotline_department
        hotline_of = {dept: number for number, dept in market.items()}
        # callers never seen (the owner lookup runs and finds nothing)
        unknown = [(phone(data.callers + 1 + rng.randrange(10 * data.callers)), HOTLINE, "menu", None)
                   for _ in range(args.sessions + 20 * args.concurrency)]
        # repeat callers with an open case (any department; its hotline), whose owner is available
        open_plans = []
        for case_id in rng.sample(data.open_ids, min(len(data.open_ids), 20_000)):
            dept = data.departments[data.dept_of[case_id - 1]]
            caller = phone(data.caller_of[case_id - 1])
            open_plans.append((caller, hotline_of[dept], "owner", case_id))
        # warm-up: pool, caches, first queries
        lookup_failures.clear()
        warm, _ = await phase("warmup", server.port, unknown[:args.concurrency * 2] + open_plans[:200], args, None, 0, 0)
        a, res_a = await phase("saturated", server.port, unknown[-args.sessions:], args, None, 0, 0)
        a["wrong"] = check_menu(res_a)
        a["owner_lookup_failures"] = len(lookup_failures)
        lookup_failures.clear()
        mix = [p for pair in zip(open_plans, unknown) for p in pair]
        b, res_b = await phase("owner", server.port, mix, args, args.seconds, args.prompt_delay, args.key_delay,
                               args.ramp)
        owner_res = [r for r in res_b if r["kind"] == "owner"]
        owner_of = dict(await _owners(app, sorted({r["case_id"] for r in owner_res})))
        wrong = check_menu(res_b)
        for r in owner_res:
            v = r["variables"]
            owner = owner_of.get(r["case_id"])
            if not (v.get("IVRROUTE") == "owner" and v.get("CASE") == str(r["case_id"]) and v.get("AGENT") == owner
                    and v.get("TARGET") == f"PJSIP/{owner}"):
                wrong += 1
        routes = [r["route"] * 1000 for r in owner_res if r["route"] is not None]
        firsts = [r["first"] * 1000 for r in owner_res if r["first"] is not None]
        if wrong:
            print("wrong owner answer, e.g.:", next((r for r in owner_res if r["variables"].get("IVRROUTE") != "owner"), None), flush=True)
        b.update(wrong=wrong, owner_sessions=len(owner_res), owner_lookup_failures=len(lookup_failures),
                 route_ms_p50=round(pct(routes, 50), 2), route_ms_p95=round(pct(routes, 95), 2),
                 route_ms_p99=round(pct(routes, 99), 2), route_ms_max=round(max(routes, default=float("nan")), 2),
                 lookup_to_answer_ms_p99=round(pct(firsts, 99), 2),
                 in_flight=args.concurrency)
        return {"backend": backend, "cases": data.cases, "saturated": a, "owner": b, "warmup_sessions": warm["sessions"],
                "service_outcomes": outcomes, "agi_counts": dict(server.agi.counts)}
    finally:
        await server.stop()
        await app.store.close()


async def _owners(app, ids: list[int]) -> list[tuple]:
    from sqlalchemy import select
    from callcenter.storage import tables as t
    out = []
    async with app.store.engine.connect() as conn:
        for i in range(0, len(ids), 500):
            rows = await conn.execute(select(t.cases.c.id, t.cases.c.owner).where(t.cases.c.id.in_(ids[i:i + 500])))
            out.extend(tuple(r) for r in rows)
    return out


def settings_with_menu(tmp: Path):
    from callcenter.settings import load_settings
    target = tmp / "config"
    shutil.copytree(ROOT / "config", target)
    (target / "ivr.yaml").write_text(IVR_YAML)
    return load_settings(target)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--callers", type=int, default=30_000)
    ap.add_argument("--sessions", type=int, default=4000, help="saturated phase: sessions")
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20.0, help="owner phase: how long")
    ap.add_argument("--prompt-delay", type=float, default=1.0, help="owner phase: seconds per prompt played")
    ap.add_argument("--key-delay", type=float, default=0.5, help="owner phase: seconds before a key press")
    ap.add_argument("--ramp", type=float, default=4.0, help="owner phase: clients start over this many seconds")
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--postgres", default=os.environ.get("CALLCENTER_TEST_POSTGRES_URL"))
    ap.add_argument("--pg-database", default="bench_ivr")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--json", help="write the figures here too")
    ap.add_argument("--no-check", action="store_true")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    quiet = logging.getLogger("ivr.agi_session")
    quiet.addHandler(_Count())
    quiet.propagate = False
    from common import backends, machine, pg_create, pg_drop, pg_urls
    from bench_route import Dataset, load_postgres, load_sqlite, migrate
    from ivr.agi_session import LOOKUP_SECONDS
    print(machine("aiohttp", "SQLAlchemy"), f"load average {os.getloadavg()[0]:.2f}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_ivr_"))
    runs, missed = [], []
    try:
        settings = settings_with_menu(tmp)
        data = Dataset(settings, args.cases, args.callers, 0.10, args.seed)
        data.generate()
        for backend in backends(args.db, args.postgres, "bench_ivr"):
            t0 = time.perf_counter()
            if backend == "sqlite":
                path = tmp / "ivr.db"
                url = f"sqlite:///{path}"
                asyncio.run(migrate(url))
                load_sqlite(str(path), data, 20_000)
                admin = None
            else:
                admin, url = pg_urls(args.postgres, args.pg_database)
                pg_create(admin, args.pg_database)
                asyncio.run(migrate(url))
                asyncio.run(load_postgres(url, data, 20_000))
            print(f"{backend}: {args.cases} cases loaded in {time.perf_counter() - t0:.1f} s", flush=True)
            try:
                run = asyncio.run(run_backend(backend, url, settings, data, args))
            finally:
                if admin:
                    pg_drop(admin, args.pg_database)
            runs.append(run)
            a, b = run["saturated"], run["owner"]
            print(f"{backend} saturated ({args.concurrency} concurrent, 3-level menu): {a['sessions']} sessions, "
                  f"service CPU {a['cpu_ms_per_session']} ms/session, {a['sessions_per_s']} sessions/s, "
                  f"wall/session p50 {a['wall_ms_p50']} ms p99 {a['wall_ms_p99']} ms, errors {a['errors']}, wrong {a['wrong']}, "
                  f"owner lookups past {LOOKUP_SECONDS:.0f} s {a['owner_lookup_failures']}")
            print(f"{backend} owner routing ({args.concurrency} in the IVR at once): {b['owner_sessions']} owner sessions of "
                  f"{b['sessions']}, decision p50 {b['route_ms_p50']} ms p95 {b['route_ms_p95']} ms p99 {b['route_ms_p99']} ms "
                  f"max {b['route_ms_max']} ms; service CPU {b['cpu_ms_per_session']} ms/session at {b['sessions_per_s']} "
                  f"sessions/s; errors {b['errors']}, wrong {b['wrong']}, owner lookups past {LOOKUP_SECONDS:.0f} s "
                  f"{b['owner_lookup_failures']}", flush=True)
            if a["cpu_ms_per_session"] is None or a["cpu_ms_per_session"] >= TARGET_CPU_MS:
                missed.append(f"{backend}: service time {a['cpu_ms_per_session']} ms/session >= {TARGET_CPU_MS}")
            if not b["route_ms_p99"] < TARGET_P99_MS:
                missed.append(f"{backend}: owner routing p99 {b['route_ms_p99']} ms >= {TARGET_P99_MS}")
            for phase_fig in (a, b):
                if phase_fig["errors"] or phase_fig["wrong"]:
                    missed.append(f"{backend} {phase_fig['phase']}: {phase_fig['errors']} errors, "
                                  f"{phase_fig['wrong']} wrong answers {phase_fig['error_sample']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = {"machine": machine("aiohttp", "SQLAlchemy"), "load_average": os.getloadavg(), "args": vars(args),
           "targets": {"cpu_ms_per_session": TARGET_CPU_MS, "route_p99_ms": TARGET_P99_MS}, "runs": runs,
           "missed": missed}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, ensure_ascii=False, default=str))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for m in missed:
        print("MISSED:", m, file=sys.stderr)
    return 1 if missed and not args.no_check else 0


if __name__ == "__main__":
    sys.exit(main())
