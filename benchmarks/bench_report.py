"""Daily report benchmark at city scale (issue 13): the whole day's report over a database of
1,000,000 calls, for a day of 50,000 calls and a day of 5,000, in the process and as a command.

Target: the 50,000-call day's report builds in under 0.5 s inside the process and under 1 s as
`callcenter report daily` (a fresh interpreter), on SQLite and on PostgreSQL.

For each backend the benchmark
  1. creates a fresh database (SQLite: a temporary file; PostgreSQL: a database of its own,
     `bench_report`, beside the one CALLCENTER_TEST_POSTGRES_URL names, dropped afterwards) and
     runs the real migrations, so the indexes are the production ones;
  2. bulk-loads (not timed as the report) the calls and their stints: the big day (50,000), the
     small day (5,000, the day after) and the rest spread over the days before it, about 3,000 a
     day; 8 % without a stint (IVR hang-ups), 8 % transferred (two stints), a fifth of each day
     outside business hours; a follow-up task (and its "miss" event) for every missed call, a case and its case call
     for 40 % of the answered calls, agent sessions (1,000 a day). PostgreSQL is then VACUUM ANALYZEd,
     as autovacuum would after such a load (so index-only scans apply);
  3. times `report_queries.daily_report_inputs` + `reports.daily.build` + JSON on a read-only
     Store opened and closed each time (in the process; best and median of --repeat), then the
     command (`python -m callcenter.cli report daily --format json`; best of --cmd-repeat), and
     the report as it was built before issue 13 (every call loaded as a record), once, whose
     output must equal the new one (leaving out the build time and what only the new path
     reads: agents' login, pause and wrap-ups, lost calls' callback status).

    python benchmarks/bench_report.py                       # 1M calls, SQLite (+ PostgreSQL)
    python benchmarks/bench_report.py --calls 200000 --no-check --db sqlite
    python benchmarks/bench_report.py --keep /tmp/bench_report   # build once, keep, reuse next time

With --keep DIR the SQLite database is DIR/report.db and the PostgreSQL database is not dropped;
a later run with the same --keep (and the same --calls/--big-day/--small-day) migrates them to
the current schema (new indexes are built then) and reuses them instead of generating and
loading the data again.

Exit status 1 when a target is missed or the two ways of building the report disagree.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import backends, machine, pg_create, pg_drop, pg_urls  # noqa: E402

TARGET_INPROC, TARGET_CMD = 0.5, 1.0
BIG_DAY, SMALL_DAY = date(2026, 11, 23), date(2026, 11, 24)      # a Monday and a Tuesday


def _ts(dt: datetime) -> str:
    return f"{dt.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S.%f}"


def generate(total: int, big: int, small: int, settings, seed: int = 13):
    """Rows of calls, stints, tasks, cases, case_calls and agent sessions (UTC naive datetimes)."""
    rng = random.Random(seed)
    tz = ZoneInfo(settings.timezone)
    directory = settings.directory()
    departments = [d.id for d in settings.departments]
    queue_of = {d: directory.main_queue(d, "pbx1") for d in departments}
    rest = total - big - small
    per_day = 3000
    days = [(BIG_DAY, big), (SMALL_DAY, small)]
    back = 1
    while rest > 0:
        n = min(per_day, rest)
        days.append((BIG_DAY - timedelta(days=back), n))
        rest -= n
        back += 1
    calls, stints, tasks, cases, case_calls, sessions, task_events = [], [], [], [], [], [], []
    utc = timezone.utc
    serial = 0
    for day, n in days:
        midnight = datetime.combine(day, datetime.min.time(), tz)
        for _ in range(n):
            serial += 1
            if rng.random() < 0.8:
                offset = rng.choice([9 * 3600, 13.5 * 3600]) + rng.uniform(0, 2.5 * 3600)
            else:
                offset = rng.uniform(0, 86400)
            started = (midnight + timedelta(seconds=offset)).astimezone(utc).replace(tzinfo=None)
            dept = rng.choice(departments)
            cid = f"{1700000000 + serial}.{serial % 97}"
            caller = f"13{rng.randrange(10**9):09d}"
            kind = rng.random()
            outcome, at, n_stints = "answered", started + timedelta(seconds=rng.uniform(5, 30)), 1
            if kind < 0.08:
                n_stints, outcome = 0, "abandoned_ivr"
            elif kind < 0.16:
                n_stints, outcome = 2, "transferred"
            call_stints = []
            for seq in range(n_stints):
                d = dept if seq == 0 else rng.choice(departments)
                wait = rng.expovariate(1 / 20)
                r = rng.random()
                end = "answered" if r < 0.8 else "abandoned" if r < 0.95 else "timed_out" if r < 0.98 else "no_agent"
                answered_at = at + timedelta(seconds=wait) if end == "answered" else None
                talk = round(rng.uniform(30, 600), 3) if end == "answered" else None
                left = (answered_at + timedelta(seconds=talk)) if answered_at else at + timedelta(seconds=wait)
                call_stints.append((seq, queue_of[d], d, at, left, answered_at, end, talk))
                at = left + timedelta(seconds=1)
            if n_stints and outcome == "answered":
                outcome = call_stints[-1][6]
            ended = at + timedelta(seconds=3)
            calls.append(("pbx1", cid, cid, caller, "", "12345", dept, started, ended, outcome, "", "", False, False, ended))
            recent = (BIG_DAY - day).days < 10
            for seq, queue, d, entered, left, answered_at, end, talk in call_stints:
                stints.append(("pbx1", cid, seq, queue, d, entered, left, answered_at, end,
                               f"a{rng.randrange(300)}" if answered_at else None, "", "", talk, "", seq == 0 and n_stints == 2,
                               1, ""))
                if end in ("abandoned", "timed_out", "no_agent") and rng.random() < 0.9:
                    recent = (BIG_DAY - day).days < 10            # only recent tasks and cases are still open
                    contacted = started + timedelta(hours=rng.uniform(0.5, 40)) if rng.random() < 0.8 or not recent else None
                    closed = contacted + timedelta(minutes=5) if contacted else None
                    tasks.append((caller, d, "pbx1", queue, "closed" if closed else "open", end, started, started,
                                  started, 1, False, started + timedelta(days=1), False, None, "pool", False, 1, None,
                                  contacted, closed, "reached" if closed else None, None, ""))
                    task_events.append((len(tasks), started, "miss", "pbx1", cid, ""))
                if answered_at and rng.random() < 0.4:
                    status = rng.choices(["resolved", "open", "escalated", "out_of_scope"], [80, 8 if recent else 0, 7, 5])[0]
                    closed = answered_at + timedelta(hours=rng.uniform(0, 100)) if status != "open" else None
                    cases.append((caller, d, "pbx1", queue, "a1", status, "", "resolved", answered_at,
                                  answered_at + timedelta(days=5), False, closed, status == "resolved" and rng.random() < 0.6,
                                  rng.random() < 0.05, "", ""))
                    case_calls.append(("pbx1", cid, seq, len(cases), "a1", answered_at,
                                       None if recent and rng.random() < 0.02 else "resolved", answered_at))
        for k in range(1000 if n >= 1000 else n // 3):
            s = (midnight + timedelta(seconds=rng.uniform(8 * 3600, 17 * 3600))).astimezone(utc).replace(tzinfo=None)
            kind = rng.choice(["login", "login", "pause"])
            sessions.append(("pbx1", f"a{k % 300}", f"PJSIP/{k % 300}", "", queue_of[departments[k % 8]], kind,
                             "lunch" if kind == "pause" else "", s, s + timedelta(minutes=rng.uniform(5, 240)), False))
    # open tasks/cases: one per caller and department (the partial unique indexes)
    seen = set()
    for rows, status_at, closed_status in ((tasks, 4, "closed"), (cases, 5, "resolved")):
        for i, row in enumerate(rows):
            if row[status_at] == "open":
                key = (row[0], row[1])
                if key in seen:
                    rows[i] = row[:status_at] + (closed_status,) + row[status_at + 1:]
                seen.add(key)
    calls, stints = _with_facts(calls, stints)
    return {"calls": calls, "stints": stints, "tasks": tasks, "task_events": task_events, "cases": cases,
            "case_calls": case_calls, "agent_sessions": sessions}


def _with_facts(calls: list, stints: list) -> tuple[list, list]:
    """The rows with the facts `Store.save_calls` stores beside them (migration 0016): per call its
    number of stints, per stint its call's start and after-hours flag, wait and talk in
    microseconds (the domain's own functions) and whether it is the call's last."""
    from callcenter.domain.metrics import talk_micros, wait_micros
    from callcenter.domain.records import Stint
    count: dict[tuple, int] = {}
    for s in stints:
        count[(s[0], s[1])] = count.get((s[0], s[1]), 0) + 1
    call_of = {(c[0], c[1]): c for c in calls}
    out = []
    for s in stints:
        call = call_of[(s[0], s[1])]
        wait = wait_micros(Stint(queue=s[3], department=s[4], entered_at=s[5], left_at=s[6], answered_at=s[7]))
        out.append(s + (call[7], call[12], wait, talk_micros(s[12]), s[2] == count[(s[0], s[1])] - 1))
    return [c + (count.get((c[0], c[1]), 0),) for c in calls], out


COLUMNS = {
    "calls": ("pbx", "id", "linkedid", "caller_num", "caller_name", "hotline", "department", "started_at", "ended_at",
              "outcome", "ivr_choice", "ivr_queue", "after_hours", "reconciled", "recorded_at", "stint_count"),
    "stints": ("pbx", "call_id", "seq", "queue", "department", "entered_at", "left_at", "answered_at", "end", "agent",
               "member_name", "interface", "talk_seconds", "completed_by", "transferred", "rings", "no_answers",
               "call_started_at", "call_after_hours", "wait_us", "talk_us", "is_last"),
    "tasks": ("caller_num", "department", "pbx", "queue", "status", "reason", "created_at", "first_missed_at",
              "last_missed_at", "misses", "short_abandon", "deadline", "deadline_provisional", "assignee",
              "assigned_via", "pooled_from_unmapped", "attempts", "next_attempt_at", "contacted_at", "closed_at",
              "closure", "closed_by", "note"),
    "task_events": ("task_id", "at", "kind", "pbx", "call_id", "detail"),
    "cases": ("caller_num", "department", "pbx", "queue", "owner", "status", "item", "disposition", "opened_at",
              "deadline", "deadline_provisional", "closed_at", "resolved_first_contact", "knowledge_gap",
              "work_order", "directed_to"),
    "case_calls": ("pbx", "call_id", "seq", "case_id", "agent", "answered_at", "disposition", "disposed_at"),
    "agent_sessions": ("pbx", "agent", "interface", "member_name", "queue", "kind", "reason", "started_at",
                       "ended_at", "reconciled"),
}


def load_sqlite(path: str, data: dict) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    with con:
        for table, rows in data.items():
            cols = COLUMNS[table]
            quoted = ", ".join(f'"{c}"' for c in cols)
            conv = [tuple(_ts(v.replace(tzinfo=timezone.utc)) if isinstance(v, datetime) else v for v in row)
                    for row in rows]
            con.executemany(f"INSERT INTO {table} ({quoted}) VALUES ({', '.join('?' * len(cols))})", conv)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


async def load_postgres(url: str, data: dict) -> None:
    import asyncpg
    conn = await asyncpg.connect(url)
    try:
        for table, rows in data.items():
            await conn.copy_records_to_table(table, records=rows, columns=list(COLUMNS[table]))
        await conn.execute("VACUUM ANALYZE")            # as autovacuum would after inserts (visibility map)
    finally:
        await conn.close()


async def report_new(url: str, settings, day: date) -> str:
    from callcenter.storage.report_queries import daily_report_inputs
    from callcenter.storage.store import Store
    from reports import daily
    store = Store(url, read_only=True)
    try:
        current, head = await store.schema_status()
        assert current == head
        inputs = await daily_report_inputs(store, settings, day, store.clock.now())
    finally:
        await store.close()
    return json.dumps(daily.build(day, [], settings, **inputs), ensure_ascii=False, indent=2)


async def report_old(url: str, settings, day: date, now: datetime) -> str:
    """The report as `callcenter report daily` built it before issue 13 (records in Python)."""
    from callcenter.checkpointer import stale_after
    from callcenter.storage.checkpoints import coverage_facts
    from callcenter.storage.store import Store
    from reports import coverage, daily
    tz = ZoneInfo(settings.timezone)
    store = Store(url)
    try:
        bounds = daily.day_bounds(day, tz)
        records = await store.calls_between(*bounds)
        tasks = await store.task_facts(*bounds)
        cases = await store.case_facts(*bounds)
        wrapups = await store.pending_wrapups(min(now, bounds[1]) - timedelta(minutes=settings.cases.wrapup_minutes))
        sessions, observed = await coverage_facts(store, *bounds, now, stale_after(settings.instance.checkpoint_seconds))
    finally:
        await store.close()
    posts = coverage.posts(day, settings, sessions, now, observed=observed)
    return json.dumps(daily.build(day, records, settings, tasks, now, cases, wrapups, posts=posts),
                      ensure_ascii=False, indent=2)


def _time_inproc(url, settings, day, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = asyncio.run(report_new(url, settings, day))
        times.append(time.perf_counter() - t0)
    return times, out


def _time_cmd(url, day, repeat):
    """Best-of `repeat` wall times of the command in a fresh interpreter, with its bytecode cached
    as an installed package has it (PYTHONDONTWRITEBYTECODE, set on this lab's machines, would
    compile every module from source on each run: 40-75 ms more); one untimed run first."""
    times = []
    cmd = [sys.executable, "-m", "callcenter.cli", "report", "daily", "--date", day.isoformat(), "--format", "json",
           "--db", url]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "bench_report_pycache")
    subprocess.run(cmd, cwd=ROOT, capture_output=True, env=env)
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t0)
        if done.returncode:
            raise SystemExit(f"command failed: {done.stderr.strip()[:500]}")
    return times, done.stdout


def _kept(backend: str, args) -> bool:
    """Whether a database kept by an earlier run with --keep holds this run's calls."""
    if not args.keep:
        return False
    stamp = Path(args.keep) / f"{backend}.loaded"
    return stamp.exists() and stamp.read_text() == f"{args.calls} {args.big_day} {args.small_day}"


def run_backend(backend: str, args, settings, data) -> list[dict]:
    from callcenter.storage.store import Store
    tmp = None
    reuse = _kept(backend, args)
    if backend == "sqlite":
        tmp = args.keep or tempfile.mkdtemp(prefix="bench_report_")
        Path(tmp).mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{tmp}/report.db"
        if not reuse and Path(f"{tmp}/report.db").exists():
            for f in Path(tmp).glob("report.db*"):
                f.unlink()
    else:
        admin, url = pg_urls(args.postgres, args.pg_database)
        if not reuse:
            pg_create(admin, args.pg_database)
    results = []
    try:
        async def migrate():
            store = Store(url)
            await store.migrate()
            await store.close()
        t0 = time.perf_counter()
        asyncio.run(migrate())
        if reuse:
            if backend == "postgresql":
                asyncio.run(_analyze(url))
            print(f"{backend}: reusing the database kept in {args.keep} (migrated in {time.perf_counter() - t0:.1f} s)",
                  flush=True)
        else:
            t0 = time.perf_counter()
            if backend == "sqlite":
                load_sqlite(url[len("sqlite:///"):], data())
            else:
                asyncio.run(load_postgres(url, data()))
            print(f"{backend}: loaded {len(data()['calls']):,} calls, {len(data()['stints']):,} stints, "
                  f"{len(data()['tasks']):,} tasks, {len(data()['cases']):,} cases, "
                  f"{len(data()['agent_sessions']):,} sessions in {time.perf_counter() - t0:.1f} s", flush=True)
            if args.keep:
                (Path(args.keep) / f"{backend}.loaded").write_text(f"{args.calls} {args.big_day} {args.small_day}")
        for day, calls in ((BIG_DAY, args.big_day), (SMALL_DAY, args.small_day)):
            asyncio.run(report_new(url, settings, day))                      # warm the caches once
            inproc, new = _time_inproc(url, settings, day, args.repeat)
            cmd, cmd_out = _time_cmd(url, day, args.cmd_repeat)
            row = {"backend": backend, "day": day.isoformat(), "calls": calls, "inproc_best": min(inproc),
                   "inproc_median": statistics.median(inproc), "cmd_best": min(cmd), "cmd_median": statistics.median(cmd)}
            if not args.no_before:
                t0 = time.perf_counter()
                old = asyncio.run(report_old(url, settings, day, datetime.now(timezone.utc)))
                row["before"] = time.perf_counter() - t0
                row["same"] = _comparable(old) == _comparable(new) == _comparable(cmd_out)
            results.append(row)
            print(_line(row), flush=True)
    finally:
        if args.keep:
            pass
        elif tmp:
            for f in Path(tmp).glob("*"):
                f.unlink()
            os.rmdir(tmp)
        else:
            pg_drop(admin, args.pg_database)
    return results


async def _analyze(url: str) -> None:
    import asyncpg
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def _comparable(text: str) -> dict:
    """The report without what differs by construction: the time it was made, what only the
    new path reads (agents' login, pause and wrap-ups; lost calls' callback status), and the
    sections the command adds from other reads (reports/assemble.py: IVR, probes, trend)."""
    report = json.loads(text)
    for key in ("generated_at", "as_of", "in_progress", "ivr", "probes", "trend"):
        report.pop(key, None)
    report["agents"] = [{k: a[k] for k in ("agent", "answered", "talk_seconds")} for a in report.get("agents", [])]
    report["lost_calls"] = [{k: v for k, v in c.items() if k not in ("task_status", "callback_status")}
                            for c in report.get("lost_calls", [])]
    return report


def _line(r: dict) -> str:
    before = f", before {r['before']:.2f} s, same figures: {'yes' if r['same'] else 'NO'}" if "before" in r else ""
    return (f"  {r['backend']:<10} {r['day']} {r['calls']:>7,} calls: in process {r['inproc_best']:.3f} s "
            f"(median {r['inproc_median']:.3f}), command {r['cmd_best']:.3f} s (median {r['cmd_median']:.3f}){before}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=1_000_000)
    p.add_argument("--big-day", type=int, default=50_000)
    p.add_argument("--small-day", type=int, default=5_000)
    p.add_argument("--db", default="sqlite,postgresql")
    p.add_argument("--postgres", default=os.environ.get("CALLCENTER_TEST_POSTGRES_URL"))
    p.add_argument("--pg-database", default="bench_report")
    p.add_argument("--repeat", type=int, default=5, help="in-process runs per day (best and median)")
    p.add_argument("--cmd-repeat", type=int, default=3, help="command runs per day")
    p.add_argument("--no-before", action="store_true", help="skip the pre-issue-13 report (and the comparison)")
    p.add_argument("--json", help="write the figures to this file")
    p.add_argument("--keep", metavar="DIR", help="keep the databases (SQLite in DIR) and reuse them next time")
    p.add_argument("--no-check", action="store_true", help="only report: exit 0 even when a target is missed")
    args = p.parse_args()
    from callcenter.settings import load_settings
    settings = load_settings(ROOT / "config")
    print("machine:", machine("SQLAlchemy", "aiosqlite", "asyncpg"), flush=True)
    generated: dict = {}

    def data() -> dict:              # generated when a backend has to be loaded
        if not generated:
            t0 = time.perf_counter()
            generated.update(generate(args.calls, args.big_day, args.small_day, settings))
            print(f"generated {len(generated['calls']):,} calls in {time.perf_counter() - t0:.1f} s", flush=True)
        return generated
    results = []
    for backend in backends(args.db, args.postgres, "bench_report"):
        results += run_backend(backend, args, settings, data)
    missed = []
    for r in results:
        if r["calls"] == args.big_day and r["inproc_best"] >= TARGET_INPROC:
            missed.append(f"{r['backend']} {r['day']}: in process {r['inproc_best']:.3f} s >= {TARGET_INPROC} s")
        if r["calls"] == args.big_day and r["cmd_best"] >= TARGET_CMD:
            missed.append(f"{r['backend']} {r['day']}: command {r['cmd_best']:.3f} s >= {TARGET_CMD} s")
        if r.get("same") is False:
            missed.append(f"{r['backend']} {r['day']}: the report differs from the one built from records")
    print(f"targets: the {args.big_day:,}-call day under {TARGET_INPROC} s in process and {TARGET_CMD} s as a command:",
          "MISSED\n  " + "\n  ".join(missed) if missed else "met", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 1 if missed and not args.no_check else 0


if __name__ == "__main__":
    sys.exit(main())
