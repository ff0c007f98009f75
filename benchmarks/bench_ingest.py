"""End-to-end AMI ingest benchmark: events per second from a PBX stream to committed call records.

Everything is measured on the same input: a real trace (``load.jsonl`` by default) repeated N
times back to back, every copy with its own Uniqueid/Linkedid values (and caller numbers) so that
every call is distinct, stamped with ``Timestamp`` headers exactly as ``AmiServer.from_trace``
does.

  panoramisk parse   panoramisk 1.4's ``AMIProtocol.data_received`` fed the stream's bytes in
                     64 KiB chunks, messages dispatched to a stub factory: the baseline
  Framer parse       our ``callcenter.ami.framing.Framer`` alone, same chunks
  domain             ``translate`` + ``CallTracker`` + ``PresenceTracker`` on parsed messages
  end to end         the real ``AmiServer`` streams over real TCP to the real ``Service``
                     (``AmiClient`` -> inbox -> consumer -> trackers -> ``Store``), timed from
                     ``client.start()`` until every event was received, every call was committed
                     and the service had settled. Two pipelines:
                       service  Store + Service + Endpoint: the ingest pipe itself
                       app      ``callcenter.bootstrap.build``: what ``serve`` and ``replay`` run,
                                the service plus everything wired to its commits (follow-up
                                tasks, ...); only when that module exists

The PBX side runs in a child process by default (a PBX is another machine in production); with
``--server inproc`` it shares the service's event loop, as ``callcenter replay`` does. On a
machine with two or more cores the benchmark pins itself (event loop and aiosqlite's worker
thread) to one core and the PBX process to another: the end-to-end figure is the service's
throughput on one core. Every rate is also given per CPU-second of this process, which stays
meaningful when other processes compete for the core.

    python benchmarks/bench_ingest.py                       # ~100k events, SQLite (+ PostgreSQL)
    python benchmarks/bench_ingest.py --events 30000 --no-check
    python benchmarks/bench_ingest.py --pipeline service --db sqlite --profile e2e

PostgreSQL runs when CALLCENTER_TEST_POSTGRES_URL is set (or --postgres URL is given): a
dedicated database (``bench_ingest`` by default) is created beside the one in the URL for each
run and dropped afterwards; no other database is touched.

Exit status: 0 when every target is met (or with --no-check), 1 when one is missed.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import importlib.util
import io
import json
import logging
import math
import multiprocessing
import os
import pstats
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:                   # benchmark the checkout this file lives in
    sys.path.insert(0, str(ROOT))

from callcenter.ami.client import Endpoint  # noqa: E402
from callcenter.ami.framing import Framer  # noqa: E402
from callcenter.ami.server import AmiServer, Trace, load_trace  # noqa: E402
from callcenter.ami.translate import translate  # noqa: E402
from callcenter.domain.calls import CallTracker  # noqa: E402
from callcenter.domain.presence import PresenceTracker  # noqa: E402
from callcenter.service import Service  # noqa: E402
from callcenter.settings import load_settings  # noqa: E402
from callcenter.storage.store import Store  # noqa: E402

TRACES = Path(os.environ.get("CALLCENTER_TRACES", ROOT / "tests" / "traces"))   # a copy of ../shared/ami-traces
DEFAULT_TRACE = TRACES / "load.jsonl"
AT = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))    # a Monday morning
PBX = "pbx1"
TARGET_EPS = 20_000            # events per second end to end, on one core
TARGET_RATIO = 0.30            # end to end / bare panoramisk parse

# Asterisk Uniqueid / Linkedid values: "<epoch>.<sequence>" (bridge ids are UUIDs: left alone)
_ID = re.compile(rb"(?<![\d.])(\d{9,10})\.(\d+)(?![\d.])")
# caller numbers (mainland mobile numbers in the traces)
_CALLER = re.compile(rb"(?<![\d.])1[3-9]\d{9}(?![\d.])")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import backends as common_backends, machine, pg_urls, pg_create, pg_drop  # noqa: E402



# --- the input ------------------------------------------------------------------------------------

@dataclass
class Stream:
    banner: str
    messages: list[bytes]          # stamped, byte for byte what AmiServer sends
    copies: int
    calls_per_copy: int = 0

    @property
    def events(self) -> int:
        return len(self.messages)

    @property
    def expected_calls(self) -> int:
        return self.copies * self.calls_per_copy

    @property
    def wire(self) -> bytes:
        """The bytes a client receives after connecting: the banner, then the stream."""
        return f"{self.banner}\r\n".encode() + b"".join(self.messages)


def build_stream(trace_path: Path, copies: int, same_callers: bool = False) -> Stream:
    """Repeat the trace ``copies`` times, each copy starting one second after the previous one
    ended. Every Uniqueid-like value gets a per-copy offset, so each copy's calls are distinct;
    caller numbers too unless ``same_callers`` (then every copy is the same 36 callers again)."""
    trace = load_trace(trace_path)
    span = (trace.messages[-1][0] if trace.messages else 0.0) + 1.0
    top = max((int(m.group(2)) for _, raw in trace.messages for m in _ID.finditer(raw)), default=0)
    stride = 10 ** len(str(top + 1))
    messages: list[tuple[float, bytes]] = []
    for copy in range(copies):
        def new_id(m: re.Match, offset=copy * stride) -> bytes:
            return b"%s.%d" % (m.group(1), int(m.group(2)) + offset)

        def new_caller(m: re.Match, offset=copy * 100) -> bytes:
            return b"%d" % (int(m.group(0)) + offset)

        for t, raw in trace.messages:
            if copy:
                raw = _ID.sub(new_id, raw)
                if not same_callers:
                    raw = _CALLER.sub(new_caller, raw)
            messages.append((t + copy * span, raw))
    server = AmiServer.from_trace(Trace(trace.banner, messages), AT)
    return Stream(trace.banner, server.messages, copies)


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


# --- parse baselines and the domain alone -------------------------------------------------------

def best_of(repeat: int, fn) -> tuple[float, float, object]:
    """(best wall seconds, best CPU seconds, result) over ``repeat`` runs."""
    best, best_cpu, result = math.inf, math.inf, None
    for _ in range(repeat):
        gc.collect()
        started, cpu = time.perf_counter(), time.process_time()
        result = fn()
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best, best_cpu, result


def panoramisk_parse(parts: list[bytes]) -> int:
    """Bare panoramisk: its protocol's data_received; every message goes to a stub factory."""
    from panoramisk.ami_protocol import AMIProtocol

    class Factory:
        count = 0
        save_stream = None

        def dispatch(self, message) -> None:
            self.count += 1

        def connection_lost(self, exc) -> None:
            pass

    class Transport:
        def write(self, data) -> None:
            pass

        def close(self) -> None:
            pass

    protocol = AMIProtocol()
    protocol.connection_made(Transport())
    protocol.factory = Factory()
    protocol.log.disabled = True            # panoramisk still calls log.debug once per message
    try:
        for part in parts:
            protocol.data_received(part)
    finally:
        protocol.log.disabled = False
    return protocol.factory.count


def framer_parse(parts: list[bytes]) -> int:
    """Our Framer alone. Messages are dropped as they come (the client hands them on), so that
    keeping 100k dicts alive does not bill the parser for the garbage collector's work."""
    framer = Framer()
    count = 0
    for part in parts:
        count += len(framer.feed(part))
    return count


def framer_messages(parts: list[bytes]) -> list[dict[str, str]]:
    framer = Framer()
    out: list[dict[str, str]] = []
    for part in parts:
        out += framer.feed(part)
    return out


def domain(settings, messages: list[dict[str, str]]) -> tuple[int, int]:
    """What the service's consumer does per message: translate, then both trackers."""
    directory = settings.directory()
    calls = CallTracker(directory, settings.hotline_contexts())
    presence = PresenceTracker(directory)
    records = sessions = 0
    for msg in messages:
        event = translate(PBX, msg, AT)
        if event is None:
            continue
        records += len(calls.feed(event))
        sessions += len(presence.feed(event))
    return records, sessions


# --- end to end -------------------------------------------------------------------------------------

@dataclass
class E2E:
    label: str
    seconds: float
    cpu: float                     # CPU seconds of this process: event loop + aiosqlite thread
    events: int
    committed: int
    stored: int
    reconciled: int
    notes: list[str] = field(default_factory=list)
    profile: str = ""
    runs: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_rate(self) -> float:
        return self.events / self.cpu


def _serve(stream: Stream, conn, cpu: int | None) -> None:
    """Child process: one AmiServer that streams the whole input to the client that logs in."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})

    async def main() -> None:
        server = AmiServer(messages=stream.messages, banner=stream.banner)
        conn.send(await server.start())
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)   # the parent says stop
        await server.close()

    asyncio.run(main())


async def ingest(stream: Stream, settings, url: str, label: str, port: int | None, pipeline: str,
                 profile: bool, timeout: float) -> E2E:
    """The real service against the real server over TCP; time until everything is committed."""
    app = None
    if pipeline == "app":
        from callcenter.bootstrap import build
        app = build(settings, url)
        store, service = app.store, app.service
    else:
        store = Store(url)
        service = Service(settings, store)
    all_committed = asyncio.Event()

    async def on_commit(_calls) -> None:         # runs after the listeners the app wired in
        if service.calls_committed >= stream.expected_calls:
            all_committed.set()

    service.on_calls_committed(on_commit)
    server = None
    if port is None:                             # in the same event loop, as `callcenter replay` does
        server = AmiServer(messages=stream.messages, banner=stream.banner)
        port = await server.start()
    await (app.start() if app is not None else service.start())     # migrations: not timed
    client = service.add_pbx(Endpoint(PBX, "127.0.0.1", port, "bench", "bench", connect_timeout=5,
                                      action_timeout=30, ping_interval=3600, reconnect_min=0.05,
                                      reconnect_max=1))
    profiler = cProfile.Profile() if profile else None
    gc.collect()
    try:
        if profiler:
            profiler.enable()
        started, cpu_started = time.perf_counter(), time.process_time()
        client.start()
        await asyncio.wait_for(all_committed.wait(), timeout)
        while client.events_received < stream.events:
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"{label}: {client.events_received} of {stream.events} events received")
            await asyncio.sleep(0.001)
        await service.settled(timeout=timeout)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        if profiler:
            profiler.disable()
        stored = await store.count_calls()
        reconciled = await count_reconciled(store)
    finally:
        await client.stop()
        service.clients.pop(PBX, None)
        if app is not None:
            await app.stop()
        else:
            await service.stop()
            await store.close()
        if server:
            await server.close()
    result = E2E(label, seconds, cpu, stream.events, service.calls_committed, stored, reconciled)
    if reconciled:
        result.notes.append(f"{reconciled} calls marked reconciled")
    if service.calls_committed != stored:
        result.notes.append(f"{service.calls_committed - stored} calls committed twice")
    if service.handler_errors:
        result.notes.append(f"{service.handler_errors} handler errors")
    if client.logins != 1:
        result.notes.append(f"{client.logins} logins")
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(30)
        result.profile = out.getvalue()
    return result


async def count_reconciled(store: Store) -> int:
    from sqlalchemy import func, select

    from callcenter.storage import tables as t
    async with store.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(t.calls)
                                   .where(t.calls.c.reconciled.is_(True)))).scalar_one()


def run_e2e(stream: Stream, settings, url: str, label: str, server_mode: str, pin: list[int] | None,
            pipeline: str, profile: bool, timeout: float) -> E2E:
    if server_mode == "inproc":
        return asyncio.run(ingest(stream, settings, url, label, None, pipeline, profile, timeout))
    return with_server(stream, pin, lambda port: asyncio.run(
        ingest(stream, settings, url, label, port, pipeline, profile, timeout)))


def with_server(stream: Stream, pin: list[int] | None, fn):
    """Run `fn(port)` with the AMI server in a pinned child process (it inherits the stream:
    nothing to copy)."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(stream, child, pin[1] if pin else None), daemon=True)
    proc.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the AMI server process did not start")
        return fn(parent.recv())
    finally:
        try:
            parent.send("stop")
        except OSError:
            pass
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
            proc.join()


# --- PostgreSQL: a dedicated database, dropped afterwards ---------------------------------------

# --- driver -----------------------------------------------------------------------------------------

def has_app() -> bool:
    return importlib.util.find_spec("callcenter.bootstrap") is not None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="See docs/performance.md for the figures and what they mean.")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--events", type=int, default=100_000,
                      help="approximate number of events; the trace is repeated to reach it (default 100000)")
    size.add_argument("--copies", type=int, help="copies of the trace (instead of --events)")
    p.add_argument("--trace", type=Path, default=DEFAULT_TRACE, help=f"trace to repeat (default {DEFAULT_TRACE})")
    p.add_argument("--same-callers", action="store_true",
                   help="keep caller numbers in every copy (repeat callers); default: distinct callers")
    p.add_argument("--db", default="sqlite,postgresql",
                   help="comma-separated backends (default sqlite,postgresql; postgresql only when a URL is known)")
    p.add_argument("--postgres", default=os.environ.get("CALLCENTER_TEST_POSTGRES_URL"),
                   help="PostgreSQL URL (default $CALLCENTER_TEST_POSTGRES_URL)")
    p.add_argument("--pg-database", default="bench_ingest",
                   help="database created for each run and dropped after it (default bench_ingest)")
    p.add_argument("--pipeline", default="auto",
                   help="comma-separated: service and/or app (default auto: both when callcenter.bootstrap exists)")
    p.add_argument("--server", choices=["process", "inproc"], default="process",
                   help="AmiServer in a child process (default) or in the service's event loop")
    p.add_argument("--no-pin", action="store_true", help="do not pin the service and the PBX to cores")
    p.add_argument("--chunk", type=int, default=65536, help="bytes per read for the parse baselines (default 65536)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each in-memory stage, best kept (default 3)")
    p.add_argument("--e2e-repeat", type=int, default=3,
                   help="end-to-end runs of the service pipeline per backend, best kept (default 3)")
    p.add_argument("--app-repeat", type=int, default=1,
                   help="end-to-end runs of the app pipeline per backend (default 1; it is slower)")
    p.add_argument("--timeout", type=float, default=600, help="seconds allowed per end-to-end run")
    p.add_argument("--profile", choices=["e2e", "domain", "framer"],
                   help="print a cProfile of that stage (e2e: the first end-to-end run, not counted)")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--no-check", action="store_true", help="only report: exit 0 even when a target is missed")
    return p.parse_args(argv)


def e2e_runs(args, stream: Stream, settings, pin) -> list[E2E]:
    """Every requested (pipeline, backend), each run on a fresh database; the best run is kept."""
    backends = common_backends(args.db, args.postgres, "bench_ingest")
    pipelines = ["service", "app"] if args.pipeline == "auto" else [
        p.strip() for p in args.pipeline.split(",") if p.strip()]
    if args.pipeline == "auto" and not has_app():
        pipelines = ["service"]
    results: list[E2E] = []
    profile_pending = args.profile == "e2e"
    for pipeline in pipelines:
        if pipeline not in ("service", "app"):
            raise SystemExit(f"bench_ingest: unknown pipeline {pipeline!r}")
        if pipeline == "app" and not has_app():
            raise SystemExit("bench_ingest: pipeline app needs callcenter.bootstrap")
        repeat = args.e2e_repeat if pipeline == "service" else args.app_repeat
        for backend in backends:
            label = backend if pipeline == "service" else f"{backend}, app"
            runs: list[E2E] = []
            profile_text = ""
            for n in range(repeat + (1 if profile_pending else 0)):
                profile = profile_pending
                print(f"end to end: {label} ({args.server} server), "
                      f"{'profiled run' if profile else f'run {len(runs) + 1} of {repeat}'} ...", flush=True)
                if backend == "sqlite":
                    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
                        result = run_e2e(stream, settings, f"sqlite:///{tmp}/callcenter.db", label,
                                         args.server, pin, pipeline, profile, args.timeout)
                else:
                    admin, url = pg_urls(args.postgres, args.pg_database)
                    pg_create(admin, args.pg_database)
                    try:
                        result = run_e2e(stream, settings, url, label, args.server, pin, pipeline,
                                         profile, args.timeout)
                    finally:
                        pg_drop(admin, args.pg_database)
                if profile:
                    profile_text, profile_pending = result.profile, False
                else:
                    runs.append(result)
            best = max(runs, key=lambda r: r.rate)
            best.runs = [r.rate for r in runs]
            best.profile = profile_text
            results.append(best)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("callcenter.bootstrap").setLevel(logging.ERROR)     # start-up notices
    settings = load_settings(ROOT / "config")
    per_copy = sum(1 for line in args.trace.open(encoding="utf-8") if '"raw"' in line)
    copies = args.copies or max(1, math.ceil(args.events / per_copy))

    pin = None
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) >= 2:
            pin = [cpus[0], cpus[1]]
            os.sched_setaffinity(0, {pin[0]})

    t = time.perf_counter()
    stream = build_stream(args.trace, copies, args.same_callers)
    wire = stream.wire
    parts = chunks(wire, args.chunk)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"input: {args.trace.name} x {copies} = {stream.events:,} events, {len(wire) / 1e6:.1f} MB "
          f"(built in {time.perf_counter() - t:.1f} s)")
    print(f"machine: {machine('SQLAlchemy', 'aiosqlite', 'asyncpg', 'panoramisk')}")
    print("pinning: " + (f"service on cpu {pin[0]}" + (f", AMI server on cpu {pin[1]}" if args.server == "process"
                                                         else " (AMI server in the same loop)")
                         if pin else "none"))
    if load > 0.5:
        print(f"note: load average {load:.2f}: other processes compete for the cores; "
              f"the events per CPU-second column is the steadier figure")
    print(flush=True)

    rows: list[tuple[str, float, float, str]] = []     # stage, events/s, events/CPU-s, note
    secs, cpu, count = best_of(args.repeat, lambda: panoramisk_parse(parts))
    assert count == stream.events, f"panoramisk dispatched {count} of {stream.events} messages"
    bare, bare_cpu = stream.events / secs, stream.events / cpu
    rows.append(("panoramisk parse (baseline)", bare, bare_cpu, f"{secs:.2f} s"))

    secs, cpu, count = best_of(args.repeat, lambda: framer_parse(parts))
    assert count == stream.events, f"Framer gave {count} of {stream.events} messages"
    rows.append(("Framer parse", stream.events / secs, stream.events / cpu,
                 f"{secs:.2f} s, {stream.events / secs / bare:.1f}x panoramisk"))

    messages = framer_messages(parts)
    secs, cpu, (records, sessions) = best_of(args.repeat, lambda: domain(settings, messages))
    stream.calls_per_copy = records // copies
    assert records == stream.expected_calls, "the copies do not yield the same calls"
    rows.append(("domain (translate + trackers)", stream.events / secs, stream.events / cpu,
                 f"{secs:.2f} s, {records:,} calls, {sessions:,} agent sessions"))

    stage_profile = ""
    if args.profile in ("framer", "domain"):
        profiler = cProfile.Profile()
        if args.profile == "framer":
            profiler.runcall(framer_parse, parts)
        else:
            profiler.runcall(domain, settings, messages)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        stage_profile = out.getvalue()
    del messages

    results = e2e_runs(args, stream, settings, pin)
    failures: list[str] = []
    for r in results:
        if r.stored != stream.expected_calls:
            failures.append(f"{r.label}: {r.stored} calls stored ({r.committed} committed), "
                            f"expected {stream.expected_calls}")
        runs = ", runs " + "/".join(f"{x / 1000:.0f}k" for x in r.runs) if len(r.runs) > 1 else ""
        rows.append((f"end to end, {r.label}", r.rate, r.cpu_rate,
                     f"{r.seconds:.2f} s, {r.stored:,} calls stored{runs}"
                     + "".join(f", {n}" for n in r.notes)))
        if r.rate < TARGET_EPS:
            failures.append(f"{r.label}: {r.rate:,.0f} events/s < {TARGET_EPS:,}")
        if r.rate / bare < TARGET_RATIO:
            failures.append(f"{r.label}: {r.rate / bare:.0%} of panoramisk's parse rate < {TARGET_RATIO:.0%}")

    width = max(len(row[0]) for row in rows)
    print()
    print(f"{'stage':<{width}}  {'events/s':>9}  {'ev/CPU-s':>9}  note")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 9}  {'-' * 30}")
    for stage, rate, cpu_rate, note in rows:
        print(f"{stage:<{width}}  {rate:>9,.0f}  {cpu_rate:>9,.0f}  {note}")
    print()
    print(f"targets: end to end >= {TARGET_EPS:,} events/s on one core, and >= {TARGET_RATIO:.0%} "
          f"of panoramisk's bare parse rate")
    for r in results:
        met = r.rate >= TARGET_EPS and r.rate / bare >= TARGET_RATIO
        cpu_met = r.cpu_rate >= TARGET_EPS and r.cpu_rate / bare_cpu >= TARGET_RATIO
        print(f"  {r.label:<16} {r.rate:>9,.0f} events/s = {r.rate / bare:>4.0%} of bare parse"
              f"   (per CPU-second: {r.cpu_rate:,.0f} = {r.cpu_rate / bare_cpu:.0%})"
              f"   {'met' if met else 'MISSED'}"
              + ("" if met or not cpu_met else " on the wall clock only: a busy machine?"))
    if stage_profile:
        print(f"\n--- cProfile: {args.profile} ---\n{stage_profile}")
    for r in results:
        if r.profile:
            print(f"\n--- cProfile: end to end, {r.label} (a separate run; profiling slows it) ---\n{r.profile}")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": machine('SQLAlchemy', 'aiosqlite', 'asyncpg', 'panoramisk'), "trace": args.trace.name, "copies": copies, "events": stream.events,
            "bytes": len(wire), "server": args.server, "pinned": bool(pin), "load_average": load,
            "stages": [{"stage": s, "events_per_s": r, "events_per_cpu_s": c} for s, r, c, _ in rows],
            "end_to_end": [{"label": r.label, "seconds": r.seconds, "cpu_seconds": r.cpu,
                            "events_per_s": r.rate, "events_per_cpu_s": r.cpu_rate,
                            "ratio_to_panoramisk": r.rate / bare, "runs": r.runs, "calls": r.stored,
                            "notes": r.notes} for r in results],
            "failures": failures,
        }, indent=2))
    if failures:
        print("\nmissed:\n" + "\n".join(f"  {f}" for f in failures), file=sys.stderr)
        return 0 if args.no_check else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
