"""Owner routing benchmark: latency of ``Cases.route`` with a million cases in the database.

The issue's acceptance: "A route lookup answers within 50 ms at the 99th percentile with
1 million cases in the database". For each backend the benchmark

  1. creates a fresh database (SQLite: a temporary file; PostgreSQL: a dedicated database) and
     runs the real Alembic migrations (``Store(url).migrate()``), so the indexes are exactly the
     ones production has;
  2. bulk-loads the cases (SQLite: ``executemany`` in one transaction; PostgreSQL: ``COPY`` via
     asyncpg): by default 1,000,000 cases of ~300k distinct mainland mobile numbers over the 8
     configured departments. A caller mostly calls one department (70 %) and 2 % of the callers
     (the frequent ones) place 20 % of the cases, so some caller+department pairs have dozens of
     closed cases. Exactly 10 % of the cases are open (at most one per caller+department, as the
     partial unique index ``ux_cases_one_open`` demands: only the latest case of a pair can be
     open, and open cases are recent); the rest are resolved (80 %), escalated to 12345 (12 %) or
     out of scope (8 %). Not timed as lookups; the load time is reported. PostgreSQL is then
     ``ANALYZE``d, as autovacuum would do after such a load;
  3. builds the real application (``callcenter.bootstrap.build(settings, url)`` on
     ``config/``) and times ``app.cases.route(caller, hotline=...)`` -- the directory lookup of the
     hotline, the one indexed query and the pure decision -- over a shuffled mix of lookups:
     callers with an open case in the hotline's department (40 %), callers whose cases there are
     all closed (40 %) and unknown callers (20 %). Every answer is checked (the open case found,
     or none). One lookup at a time, and with several lookups in flight at once (``--concurrency``);
     a warm-up (``--warmup`` lookups, not counted) opens the connection pool first;
  4. the same over HTTP, ``GET /api/route?caller=..&hotline=..`` through the real aiohttp
     application (``callcenter.web.app.WebServer``) with a keep-alive client in the same event
     loop, when ``callcenter.web`` has that endpoint; skipped otherwise.

Latencies are wall-clock per lookup, in milliseconds: p50, p95, p99, max, and lookups per second.

    python benchmarks/bench_route.py                          # 1M cases, SQLite (+ PostgreSQL)
    python benchmarks/bench_route.py --cases 100000 --lookups 2000 --no-check
    python benchmarks/bench_route.py --db postgresql --concurrency 1

PostgreSQL runs when CALLCENTER_TEST_POSTGRES_URL is set (or --postgres URL is given): a
dedicated database (``bench_route`` by default) is created beside the one in the URL for each run
and dropped afterwards; no other database is touched.

Exit status: 0 when every p99 is under the target and every answer was right (or with
--no-check), 1 otherwise.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import math
import os
import random
import sqlite3
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:                   # benchmark the checkout this file lives in
    sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from callcenter.bootstrap import build  # noqa: E402
from callcenter.settings import load_settings  # noqa: E402
from callcenter.storage import tables as t  # noqa: E402
from callcenter.storage.store import Store  # noqa: E402

AT = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))    # a Monday morning: "now"
HISTORY = timedelta(days=730)           # closed cases were opened over the two years before AT
OPEN_WITHIN = timedelta(days=20)        # open cases were opened in the last 20 days
TARGET_P99_MS = 50.0
PBX = "pbx1"

COLUMNS = ("id", "caller_num", "department", "pbx", "queue", "owner", "status", "item", "disposition",
           "opened_at", "deadline", "deadline_provisional", "closed_at", "resolved_first_contact",
           "knowledge_gap", "work_order", "directed_to")
CLOSED = (("resolved", "resolved", 0.80), ("escalated", "escalated_12345", 0.12),
          ("out_of_scope", "out_of_scope", 0.08))
OPEN_DISPOSITIONS = (None, "follow_up_simple", "follow_up_complex", "knowledge_gap")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import backends, machine, pg_urls, pg_create, pg_drop  # noqa: E402



# --- the data ---------------------------------------------------------------------------------------

def phone(index: int) -> str:
    """A distinct 11-digit mainland mobile number (13x..19x) for each index (2917 is prime)."""
    return str(13_000_000_000 + index * 2917 % 6_900_000_000)


@dataclass
class Lookup:
    caller: str
    department: str
    hotline: str
    kind: str                      # open, closed, unknown
    case_id: int | None            # the open case route() must find


@dataclass
class Dataset:
    """Who called which department: two compact arrays (a million Python tuples would cost more
    memory than the database); rows are made batch by batch while loading."""
    settings: object
    cases: int
    callers: int
    open_fraction: float
    seed: int
    caller_of: array = field(default_factory=lambda: array("i"))
    dept_of: array = field(default_factory=lambda: array("b"))
    open_ids: list[int] = field(default_factory=list)          # case ids (1-based), sorted
    departments: list[str] = field(default_factory=list)
    distinct_callers: int = 0
    pairs: int = 0

    def generate(self) -> None:
        rng = random.Random(self.seed)
        self.departments = [d.id for d in self.settings.departments]
        n_dept = len(self.departments)
        frequent = max(1, self.callers // 50)                  # 2 % of callers ...
        last: dict[int, int] = {}                              # caller*n_dept+dept -> latest case index
        for k in range(self.cases):
            caller = rng.randrange(frequent) if rng.random() < 0.20 else rng.randrange(self.callers)
            dept = caller % n_dept if rng.random() < 0.70 else rng.randrange(n_dept)   # a home department
            self.caller_of.append(caller)
            self.dept_of.append(dept)
            last[caller * n_dept + dept] = k
        wanted = min(len(last), round(self.cases * self.open_fraction))
        self.open_ids = sorted(k + 1 for k in rng.sample(sorted(last.values()), wanted))
        self.distinct_callers = len(set(self.caller_of))
        self.pairs = len(last)

    def rows(self, batch: int, sqlite_times: bool):
        """Batches of row tuples in COLUMNS order, ids 1..cases, chronological except for the open
        cases (recent). Times are naive UTC: datetimes for asyncpg, or the text SQLAlchemy's
        SQLite DateTime stores."""
        rng = random.Random(self.seed + 1)
        posts: dict[str, list[str]] = {}
        for post in self.settings.posts:
            posts.setdefault(post.department, []).extend((post.a, post.b))
        agents = [a.id for a in self.settings.agents]
        owners = [posts.get(d) or agents for d in self.departments]
        queues = [self.settings.directory().main_queue(d, PBX) for d in self.departments]
        now = AT.astimezone(timezone.utc).replace(tzinfo=None)
        start = now - HISTORY
        step = (HISTORY - OPEN_WITHIN).total_seconds() / max(1, self.cases)
        is_open = set(self.open_ids)
        closed_kinds = [c[:2] for c in CLOSED]
        closed_weights = [c[2] for c in CLOSED]

        def ts(value: datetime | None):
            if value is None or not sqlite_times:
                return value
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")

        out = []
        for k in range(self.cases):
            case_id = k + 1
            dept = self.dept_of[k]
            caller = self.caller_of[k]
            owner = rng.choice(owners[dept])
            if case_id in is_open:
                opened = now - timedelta(seconds=rng.uniform(0, OPEN_WITHIN.total_seconds()))
                disposition = rng.choice(OPEN_DISPOSITIONS)
                days = {"follow_up_simple": 7, "follow_up_complex": 21, "knowledge_gap": 7}.get(disposition)
                deadline = opened + timedelta(days=days) if days else None
                row = (case_id, phone(caller), self.departments[dept], PBX, queues[dept], owner, "open", "",
                       disposition, ts(opened), ts(deadline), False, None, False,
                       disposition == "knowledge_gap", "", "")
            else:
                opened = (start + timedelta(seconds=k * step)).replace(microsecond=0)
                status, disposition = rng.choices(closed_kinds, closed_weights)[0]
                closed = opened + timedelta(seconds=rng.uniform(300, 15 * 86400))
                row = (case_id, phone(caller), self.departments[dept], PBX, queues[dept], owner, status, "",
                       disposition, ts(opened), None, False, ts(closed),
                       status == "resolved" and rng.random() < 0.7, False,
                       f"12345-{case_id:08d}" if status == "escalated" else "",
                       "法院" if status == "out_of_scope" else "")
            out.append(row)
            if len(out) >= batch:
                yield out
                out = []
        if out:
            yield out

    def lookups(self, count: int, mix: tuple[float, float, float], seed: int) -> list[Lookup]:
        """A shuffled mix: open cases, callers whose cases in that department are all closed, and
        numbers that never called."""
        rng = random.Random(seed)
        hotline_of = {dept: number for number, dept in self.settings.directory().hotline_department.items()}
        n_dept = len(self.departments)
        n_open = round(count * mix[0])
        n_closed = round(count * mix[1])
        n_unknown = count - n_open - n_closed
        out: list[Lookup] = []
        for case_id in rng.sample(self.open_ids, min(n_open, len(self.open_ids))):
            dept = self.departments[self.dept_of[case_id - 1]]
            out.append(Lookup(phone(self.caller_of[case_id - 1]), dept, hotline_of[dept], "open", case_id))
        open_pairs = {self.caller_of[i - 1] * n_dept + self.dept_of[i - 1] for i in self.open_ids}
        closed = 0
        while closed < n_closed:
            k = rng.randrange(self.cases)
            if self.caller_of[k] * n_dept + self.dept_of[k] in open_pairs:
                continue
            dept = self.departments[self.dept_of[k]]
            out.append(Lookup(phone(self.caller_of[k]), dept, hotline_of[dept], "closed", None))
            closed += 1
        for _ in range(n_unknown):
            dept = rng.choice(self.departments)
            out.append(Lookup(phone(self.callers + rng.randrange(10 * self.callers)), dept, hotline_of[dept],
                              "unknown", None))
        rng.shuffle(out)
        return out


# --- loading ----------------------------------------------------------------------------------------

async def migrate(url: str) -> None:
    store = Store(url)
    try:
        await store.migrate()
    finally:
        await store.close()


def load_sqlite(path: str, data: Dataset, batch: int) -> None:
    """One transaction of executemany batches on the migrated file (indexes in place)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-524288")          # 512 MiB for this loading connection only
        conn.execute("BEGIN")
        sql = f"INSERT INTO cases ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        for rows in data.rows(batch, sqlite_times=True):
            conn.executemany(sql, rows)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def load_postgres(url: str, data: Dataset, batch: int) -> None:
    """COPY in batches, the id sequence moved past the loaded ids, then ANALYZE."""
    import asyncpg
    conn = await asyncpg.connect(url)
    try:
        for rows in data.rows(batch, sqlite_times=False):
            await conn.copy_records_to_table("cases", records=rows, columns=list(COLUMNS))
        await conn.execute("SELECT setval(pg_get_serial_sequence('cases', 'id'), (SELECT max(id) FROM cases))")
        await conn.execute("ANALYZE cases")
    finally:
        await conn.close()


# --- PostgreSQL: a dedicated database, dropped afterwards ---------------------------------------

# --- measuring --------------------------------------------------------------------------------------

@dataclass
class Timing:
    label: str                     # "sqlite, Cases.route, 1 at a time"
    latencies: list[float]         # ms
    seconds: float                 # wall time of the whole run
    wrong: int = 0
    unchecked: int = 0             # answers without a case_id to compare
    by_kind: dict[str, float] = field(default_factory=dict)    # p99 per lookup kind

    def pct(self, p: float) -> float:
        s = sorted(self.latencies)
        return s[max(0, math.ceil(p / 100 * len(s)) - 1)]

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


def route_call(app):
    async def call(lookup: Lookup) -> int | None:
        return (await app.cases.route(lookup.caller, hotline=lookup.hotline)).case_id
    return call


def http_call(session, base: str):
    async def call(lookup: Lookup) -> int | None:
        async with session.get(f"{base}/api/route", params={"caller": lookup.caller,
                                                              "hotline": lookup.hotline}) as response:
            if response.status != 200:
                raise RuntimeError(f"GET /api/route answered {response.status}: {await response.text()}")
            body = await response.json()
        return case_id_in(body)
    return call


UNCHECKED = object()               # the answer names no case_id: the lookup is timed, not checked


def case_id_in(body):
    """The ``case_id`` of the answer, at the top or one level down (``{"route": {...}}``)."""
    if isinstance(body, dict):
        if "case_id" in body:
            return body["case_id"]
        for value in body.values():
            if isinstance(value, dict) and "case_id" in value:
                return value["case_id"]
    return UNCHECKED


async def measure(label: str, call, lookups: list[Lookup], concurrency: int, warmup: list[Lookup]) -> Timing:
    """Time each call; ``concurrency`` workers keep that many lookups in flight."""
    for lookup in warmup:
        await call(lookup)
    latencies = [0.0] * len(lookups)
    wrong = unchecked = 0
    position = 0

    async def worker() -> None:
        nonlocal wrong, unchecked, position
        while position < len(lookups):
            i = position
            position += 1
            lookup = lookups[i]
            started = time.perf_counter()
            case_id = await call(lookup)
            latencies[i] = (time.perf_counter() - started) * 1000
            if case_id is UNCHECKED:
                unchecked += 1
            elif case_id != lookup.case_id:
                wrong += 1

    gc.collect()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    timing = Timing(label, latencies, time.perf_counter() - started, wrong, unchecked)
    for kind in ("open", "closed", "unknown"):
        mine = [x for x, lookup in zip(latencies, lookups) if lookup.kind == kind]
        if mine:
            timing.by_kind[kind] = sorted(mine)[max(0, math.ceil(0.99 * len(mine)) - 1)]
    return timing


def http_route_exists(web_app) -> bool:
    return any(route.method == "GET" and getattr(route.resource, "canonical", None) == "/api/route"
               for route in web_app.router.routes())


async def query_plan(app) -> str:
    """The database's plan for the route query (the statement Cases.route runs)."""
    c = t.cases.c
    stmt = select(c.id, c.owner).where(c.caller_num == "13800000000", c.department == "market",
                                       c.status == "open").limit(1)
    async with app.store.engine.connect() as conn:
        if app.store.dialect == "sqlite":
            sql = str(stmt.compile(dialect=app.store.engine.dialect, compile_kwargs={"literal_binds": True}))
            rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)).all()
            return "; ".join(str(r[-1]) for r in rows)
        # asyncpg prepares the statement, and after a few runs PostgreSQL may keep a generic plan
        # (parameters unknown: the partial index on status = 'open' cannot be proven usable)
        sql = ("SELECT id, owner FROM cases WHERE caller_num = $1 AND department = $2 AND status = $3 "
               "LIMIT $4")
        await conn.exec_driver_sql(f"PREPARE bench_route_plan (varchar, varchar, varchar, int) AS {sql}")
        plans = []
        for mode in ("force_custom_plan", "force_generic_plan"):
            await conn.exec_driver_sql(f"SET plan_cache_mode = {mode}")
            rows = (await conn.exec_driver_sql(
                "EXPLAIN EXECUTE bench_route_plan ('13800000000', 'market', 'open', 1)")).all()
            plans.append(mode.split("_")[1] + ": " + "; ".join(r[0].strip() for r in rows))
        await conn.exec_driver_sql("RESET plan_cache_mode")
        await conn.exec_driver_sql("DEALLOCATE bench_route_plan")
        return " | ".join(plans)


async def run_lookups(settings, url: str, backend: str, data: Dataset, lookups: list[Lookup],
                      warmup: list[Lookup], concurrencies: list[int], http: str) -> tuple[list[Timing], str, list[str]]:
    app = build(settings, url)
    timings: list[Timing] = []
    notes: list[str] = []
    try:
        sample = await app.cases.get(data.open_ids[0])       # the loaded rows read back through the app
        assert sample["status"] == "open" and sample["caller_num"] == phone(data.caller_of[data.open_ids[0] - 1])
        plan = await query_plan(app)
        call = route_call(app)
        for n in concurrencies:
            print(f"  Cases.route, {n} in flight ...", flush=True)
            timings.append(await measure(f"{backend}, Cases.route, {n} in flight", call, lookups, n, warmup))
        if http != "off":
            from callcenter.web.app import WebServer, init_app
            if not http_route_exists(await init_app(app)):
                notes.append("HTTP skipped: callcenter.web has no GET /api/route yet")
                print(f"  {notes[-1]}", flush=True)
            else:
                import aiohttp
                server = WebServer(app, "127.0.0.1", 0)
                await server.start()
                try:
                    host, port = server.addresses[0][:2]
                    connector = aiohttp.TCPConnector(limit=max(concurrencies))
                    async with aiohttp.ClientSession(connector=connector) as session:
                        call = http_call(session, f"http://{host}:{port}")
                        for n in concurrencies:
                            print(f"  GET /api/route, {n} in flight ...", flush=True)
                            timings.append(await measure(f"{backend}, GET /api/route, {n} in flight", call,
                                                         lookups, n, warmup))
                finally:
                    await server.stop()
    finally:
        await app.store.close()
    return timings, plan, notes


@dataclass
class Run:
    backend: str
    load_seconds: float
    total_seconds: float
    timings: list[Timing]
    plan: str
    notes: list[str]
    size_mb: float | None = None


def run_backend(backend: str, args, settings, data: Dataset, lookups, warmup, concurrencies) -> Run:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_route_") as tmp:
        if backend == "sqlite":
            path = f"{tmp}/callcenter.db"
            url = f"sqlite:///{path}"
            admin = None
        else:
            admin, url = pg_urls(args.postgres, args.pg_database)
            pg_create(admin, args.pg_database)
        try:
            asyncio.run(migrate(url))
            print(f"{backend}: loading {data.cases:,} cases ...", flush=True)
            t0 = time.perf_counter()
            if backend == "sqlite":
                load_sqlite(path, data, args.batch)
                size = os.path.getsize(path) / 1e6
            else:
                asyncio.run(load_postgres(url, data, args.batch))
                size = None
            load_seconds = time.perf_counter() - t0
            print(f"{backend}: loaded in {load_seconds:.1f} s; {len(lookups):,} lookups per run", flush=True)
            timings, plan, notes = asyncio.run(run_lookups(settings, url, backend, data, lookups, warmup,
                                                           concurrencies, args.http))
        finally:
            if admin is not None:
                pg_drop(admin, args.pg_database)
    return Run(backend, load_seconds, time.perf_counter() - started, timings, plan, notes, size)


# --- driver -----------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="See docs/performance.md for the figures and what they mean.")
    p.add_argument("--cases", type=int, default=1_000_000, help="cases in the database (default 1000000)")
    p.add_argument("--callers", type=int, default=330_000,
                   help="caller numbers the cases are drawn from (default 330000: ~300k of them appear)")
    p.add_argument("--open", type=float, default=0.10, help="fraction of open cases (default 0.10)")
    p.add_argument("--lookups", type=int, default=5000, help="timed lookups per run (default 5000)")
    p.add_argument("--warmup", type=int, default=200, help="lookups before each run, not counted (default 200)")
    p.add_argument("--mix", default="40,40,20",
                   help="percent of lookups: open case, only closed cases, unknown caller (default 40,40,20)")
    p.add_argument("--concurrency", default="1,4",
                   help="comma-separated lookups kept in flight, one run each (default 1,4)")
    p.add_argument("--http", choices=["auto", "off"], default="auto",
                   help="also time GET /api/route when the web app has it (default auto)")
    p.add_argument("--db", default="sqlite,postgresql",
                   help="comma-separated backends (default sqlite,postgresql; postgresql only when a URL is known)")
    p.add_argument("--postgres", default=os.environ.get("CALLCENTER_TEST_POSTGRES_URL"),
                   help="PostgreSQL URL (default $CALLCENTER_TEST_POSTGRES_URL)")
    p.add_argument("--pg-database", default="bench_route",
                   help="database created for each run and dropped after it (default bench_route)")
    p.add_argument("--batch", type=int, default=50_000, help="rows per executemany / COPY batch (default 50000)")
    p.add_argument("--seed", type=int, default=20261123, help="random seed of the data and the lookups")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--no-check", action="store_true", help="only report: exit 0 even when the target is missed")
    return p.parse_args(argv)


def backends_of(args) -> list[str]:
    return backends(args.db, args.postgres, "bench_route")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = load_settings(ROOT / "config")
    mix = tuple(float(x) / 100 for x in args.mix.split(","))
    if len(mix) != 3 or abs(sum(mix) - 1) > 1e-6:
        raise SystemExit("bench_route: --mix takes three percentages adding up to 100")
    concurrencies = [int(x) for x in args.concurrency.split(",") if x.strip()]
    backends = backends_of(args)
    begun = time.perf_counter()

    t0 = time.perf_counter()
    data = Dataset(settings, args.cases, args.callers, args.open, args.seed)
    data.generate()
    lookups = data.lookups(args.lookups, mix, args.seed + 2)
    warmup = data.lookups(args.warmup, mix, args.seed + 3)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"data: {data.cases:,} cases, {len(data.open_ids):,} open, {data.distinct_callers:,} callers, "
          f"{data.pairs:,} caller+department pairs, {len(data.departments)} departments "
          f"(generated in {time.perf_counter() - t0:.1f} s)")
    print(f"lookups: {len(lookups):,} per run (mix {args.mix}: open / closed only / unknown), "
          f"{args.warmup} warm-up; in flight: {', '.join(map(str, concurrencies))}")
    print(f"machine: {machine('SQLAlchemy', 'aiosqlite', 'asyncpg', 'aiohttp')}")
    if load > 0.5:
        print(f"note: load average {load:.2f} at the start: other processes compete for the cores")
    print(flush=True)

    runs = [run_backend(b, args, settings, data, lookups, warmup, concurrencies) for b in backends]

    failures: list[str] = []
    notes: list[str] = []
    rows = []
    for run in runs:
        for tm in run.timings:
            rows.append((tm.label, tm.pct(50), tm.pct(95), tm.pct(99), max(tm.latencies), tm.rate,
                         " / ".join(f"{tm.by_kind.get(k, float('nan')):.2f}" for k in ("open", "closed", "unknown"))))
            if tm.pct(99) >= TARGET_P99_MS:
                failures.append(f"{tm.label}: p99 {tm.pct(99):.1f} ms >= {TARGET_P99_MS:.0f} ms")
            if tm.wrong:
                failures.append(f"{tm.label}: {tm.wrong} lookups answered the wrong case")
            if tm.unchecked:
                notes.append(f"{tm.label}: {tm.unchecked} answers had no case_id; timed, not checked")
    width = max([len(r[0]) for r in rows] + [10])
    print()
    print(f"{'lookup':<{width}}  {'p50 ms':>7}  {'p95 ms':>7}  {'p99 ms':>7}  {'max ms':>7}  {'lookups/s':>9}  "
          f"p99 open / closed / unknown")
    print(f"{'-' * width}  {'-' * 7}  {'-' * 7}  {'-' * 7}  {'-' * 7}  {'-' * 9}  {'-' * 27}")
    for label, p50, p95, p99, top, rate, kinds in rows:
        print(f"{label:<{width}}  {p50:>7.2f}  {p95:>7.2f}  {p99:>7.2f}  {top:>7.2f}  {rate:>9,.0f}  {kinds}")
    print()
    for run in runs:
        size = f", database file {run.size_mb:,.0f} MB" if run.size_mb else ""
        print(f"{run.backend}: load {run.load_seconds:.1f} s{size}, whole run {run.total_seconds:.1f} s")
        print(f"  plan: {run.plan}")
        for note in run.notes:
            print(f"  {note}")
    for note in notes:
        print(f"note: {note}")
    total = time.perf_counter() - begun
    print(f"\ntarget: p99 < {TARGET_P99_MS:.0f} ms with {data.cases:,} cases: "
          + ("met" if not failures else "MISSED") + f"   (total {total:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": machine('SQLAlchemy', 'aiosqlite', 'asyncpg', 'aiohttp'), "load_average": load, "cases": data.cases, "open": len(data.open_ids),
            "callers": data.distinct_callers, "lookups": len(lookups), "mix": args.mix,
            "runs": [{"backend": r.backend, "load_seconds": r.load_seconds, "total_seconds": r.total_seconds,
                      "plan": r.plan, "notes": r.notes, "database_mb": r.size_mb,
                      "timings": [{"label": tm.label, "p50_ms": tm.pct(50), "p95_ms": tm.pct(95),
                                   "p99_ms": tm.pct(99), "max_ms": max(tm.latencies), "lookups_per_s": tm.rate,
                                   "p99_by_kind_ms": tm.by_kind, "wrong": tm.wrong,
                                   "unchecked": tm.unchecked} for tm in r.timings]}
                     for r in runs],
            "total_seconds": total, "failures": failures,
        }, indent=2))
    if failures:
        print("\nmissed:\n" + "\n".join(f"  {f}" for f in failures), file=sys.stderr)
        return 0 if args.no_check else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
