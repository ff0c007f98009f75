"""Whole-pipeline benchmark: from the bytes a PBX sends to call records, follow-up tasks and
first-ask cases committed; and how fast `callcenter serve` stops under a backlog.

The input is bench_ingest's (a real trace repeated N times, every copy with its own ids and
callers, stamped as ``AmiServer.from_trace`` does); the AMI server runs in a child process pinned
to another core, the service on one core.

  panoramisk parse   panoramisk 1.4's ``AMIProtocol.data_received`` on the same bytes: the
                     baseline, measured in this process, in this run
  ingest             Store + Service (bench_ingest's "service" pipeline): until every call
                     record is committed
  pipeline           ``callcenter.bootstrap.build`` with a replay's stream clock, as ``callcenter
                     replay`` runs it: until every event was received, every call committed,
                     and every call's case and follow-up step done (``after_commit.catch_up``);
                     the stored calls, tasks and cases are then counted and checked
  SIGTERM            a real ``callcenter serve`` subprocess on a copy of config/ whose PBX is the
                     child AMI server; SIGTERM is sent once the given share of the calls is
                     committed (a backlog in the after-commit pipeline, and the rest of the
                     stream still arriving); timed until the process has exited. A second
                     ``serve`` on the same database then catches up (timed until no call is left
                     unprocessed) and is stopped the same way.

    python benchmarks/bench_pipeline.py                      # ~100k events, SQLite (+ PostgreSQL)
    python benchmarks/bench_pipeline.py --events 30000 --no-sigterm --no-check

PostgreSQL runs when CALLCENTER_TEST_POSTGRES_URL is set (or --postgres URL): a dedicated
database (``bench_pipeline``) is created for each run and dropped afterwards.

Targets (exit 1 when one is missed): pipeline >= 0.5x panoramisk's parse rate; ingest >= 1.0x;
SIGTERM exits in under 10 s.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_ingest as bi  # noqa: E402  (puts the checkout on sys.path)
from common import backends, machine, pg_create, pg_drop, pg_urls  # noqa: E402

from sqlalchemy import false, func, select  # noqa: E402

from callcenter.ami.client import Endpoint  # noqa: E402
from callcenter.settings import load_settings  # noqa: E402
from callcenter.storage import tables as t  # noqa: E402
from callcenter.storage.store import Store  # noqa: E402

ROOT = HERE.parent
TARGET_PIPELINE = 0.5
TARGET_INGEST = 1.0
TARGET_SIGTERM = 10.0


@dataclass
class Run:
    label: str
    seconds: float
    cpu: float
    events: int
    calls: int
    tasks: int
    cases: int
    left: int                 # calls whose case or follow-up step was not done (must be 0)
    parked: int

    @property
    def rate(self) -> float:
        return self.events / self.seconds


async def counts(store: Store) -> tuple[int, int, int, int]:
    async with store.engine.connect() as conn:
        calls = (await conn.execute(select(func.count()).select_from(t.calls))).scalar_one()
        left = (await conn.execute(select(func.count()).select_from(t.calls).where(
            (t.calls.c.cases_done == false()) | (t.calls.c.followup_done == false())))).scalar_one()
        tasks = (await conn.execute(select(func.count()).select_from(t.tasks))).scalar_one()
        cases = (await conn.execute(select(func.count()).select_from(t.cases))).scalar_one()
    return calls, left, tasks, cases


async def pipeline(stream: bi.Stream, settings, url: str, label: str, port: int, timeout: float) -> Run:
    from callcenter.bootstrap import build
    from callcenter.clock import StreamClock
    app = build(settings, url, StreamClock(bi.AT))
    await app.start()                                   # migrations: not timed
    client = app.service.add_pbx(Endpoint(bi.PBX, "127.0.0.1", port, "bench", "bench", connect_timeout=5,
                                          action_timeout=30, ping_interval=3600, reconnect_min=0.05,
                                          reconnect_max=1))
    gc.collect()
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        client.start()
        while client.events_received < stream.events:
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"{label}: {client.events_received} of {stream.events} events received")
            await asyncio.sleep(0.005)
        await app.service.settled(timeout=timeout)
        await app.after_commit.catch_up()
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        calls, left, tasks, cases = await counts(app.store)
        parked = app.after_commit.parked
    finally:
        await client.stop()
        app.service.clients.pop(bi.PBX, None)
        await app.stop()
    return Run(label, seconds, cpu, stream.events, calls, tasks, cases, left, parked)


def on_database(backend: str, args, fn):
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
            return fn(f"sqlite:///{tmp}/callcenter.db")
    admin, url = pg_urls(args.postgres, args.pg_database)
    pg_create(admin, args.pg_database)
    try:
        return fn(url)
    finally:
        pg_drop(admin, args.pg_database)


# --- SIGTERM under a backlog: a real `callcenter serve` ----------------------------------------------

def serve_config(tmp: Path, port: int, batch_size: int | None = None) -> Path:
    import yaml
    out = tmp / "config"
    out.mkdir()
    for path in (ROOT / "config").glob("*.yaml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if path.name == "callcenter.yaml":
            data["pbxes"] = [{**data["pbxes"][0], "port": port, "reconnect_min": 0.05, "reconnect_max": 1,
                              "ping_interval": 3600, "action_timeout": 30}]
            data.setdefault("web", {})["port"] = 0
            if batch_size:
                data.setdefault("pipeline", {})["batch_size"] = batch_size
        (out / path.name).write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return out


@dataclass
class Stop:
    label: str
    committed_at_signal: int
    left_at_signal: int
    exit_seconds: float
    returncode: int
    left_after: int
    catch_up_seconds: float
    second_exit_seconds: float
    calls: int


def sigterm(stream: bi.Stream, url: str, label: str, port: int, share: float, cpu: int | None,
            batch_size: int | None = None) -> Stop:
    """serve; SIGTERM at `share` of the calls committed; time the exit; serve again until caught up."""
    expected = stream.expected_calls

    async def poll(predicate, timeout: float) -> tuple[int, int]:
        store = Store(url)
        try:
            deadline = time.perf_counter() + timeout
            while True:
                try:
                    calls, left, _, _ = await counts(store)
                except Exception:
                    calls, left = 0, 0                  # not migrated yet
                if predicate(calls, left) or time.perf_counter() > deadline:
                    return calls, left
                await asyncio.sleep(0.05)
        finally:
            await store.close()

    def start(tmp: Path) -> subprocess.Popen:
        env = {**os.environ, "CALLCENTER_AMI_SECRET": "bench"}
        cmd = [sys.executable, "-m", "callcenter.cli", "serve", "--db", url, "--config", str(tmp / "config")]
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu)] + cmd
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp / "serve.log", "ab"))

    def stop(proc: subprocess.Popen) -> float:
        sent = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return time.perf_counter() - sent

    with tempfile.TemporaryDirectory(prefix="bench_sigterm_") as name:
        tmp = Path(name)
        serve_config(tmp, port, batch_size)
        proc = start(tmp)
        calls, left = asyncio.run(poll(lambda c, _l: c >= share * expected, 120))
        exit_seconds = stop(proc)
        returncode = proc.returncode
        _, left_after = asyncio.run(poll(lambda c, _l: True, 1))
        proc = start(tmp)
        began = time.perf_counter()
        while (tmp / "serve.log").read_text(errors="replace").count("serving ") < 2 and proc.poll() is None:
            time.sleep(0.05)                          # its signal handlers are installed from here on
        final, _ = asyncio.run(poll(lambda c, l: c >= calls and l == 0, 300))
        catch_up = time.perf_counter() - began
        second = stop(proc)
        final_calls, final_left, _, _ = asyncio.run(_counts_once(url))
        if os.environ.get("BENCH_SERVE_LOG"):
            print((tmp / "serve.log").read_text(errors="replace")[-6000:])
        if final_left:
            catch_up = math.inf
    return Stop(label, calls, left, exit_seconds, returncode, left_after, catch_up, second, final_calls)


async def _counts_once(url: str):
    store = Store(url)
    try:
        return await counts(store)
    finally:
        await store.close()


# --- driver -----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=100_000, help="approximate number of events (default 100000)")
    p.add_argument("--trace", type=Path, default=bi.DEFAULT_TRACE)
    p.add_argument("--db", default="sqlite,postgresql", help="backends (default sqlite,postgresql)")
    p.add_argument("--postgres", default=os.environ.get("CALLCENTER_TEST_POSTGRES_URL"))
    p.add_argument("--pg-database", default="bench_pipeline")
    p.add_argument("--repeat", type=int, default=2, help="pipeline runs per backend, best kept (default 2)")
    p.add_argument("--share", type=float, default=0.5,
                   help="SIGTERM once this share of the calls is committed (default 0.5)")
    p.add_argument("--sigterm-events", type=int, default=300_000,
                   help="events in the SIGTERM stream (default 300000: a backlog on one core)")
    p.add_argument("--no-sigterm", action="store_true", help="skip the serve/SIGTERM measurement")
    p.add_argument("--sigterm-batch-size", type=int,
                   help="pipeline.batch_size for the serve runs (e.g. 1: one call per transaction, a long backlog)")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--no-check", action="store_true")
    args = p.parse_args(argv)

    import logging
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for quiet in ("callcenter.bootstrap", "callcenter.coverage", "callcenter.notify", "callcenter.journal"):
        logging.getLogger(quiet).setLevel(logging.ERROR)       # the trace's agents leave posts uncovered
    settings = load_settings(ROOT / "config")
    per_copy = sum(1 for line in args.trace.open(encoding="utf-8") if '"raw"' in line)
    copies = max(1, math.ceil(args.events / per_copy))
    pin = None
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) >= 2:
            pin = [cpus[0], cpus[1]]
            os.sched_setaffinity(0, {pin[0]})
    stream = bi.build_stream(args.trace, copies)
    parts = bi.chunks(stream.wire, 65536)
    stream.calls_per_copy = bi.domain(settings, bi.framer_messages(parts))[0] // copies
    print(f"input: {args.trace.name} x {copies} = {stream.events:,} events, {stream.expected_calls:,} calls")
    print(f"machine: {machine('SQLAlchemy', 'aiosqlite', 'asyncpg', 'panoramisk')}")
    print(f"pinning: {'service on cpu %d, AMI server on cpu %d' % tuple(pin) if pin else 'none'}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)

    secs, cpu, count = bi.best_of(3, lambda: bi.panoramisk_parse(parts))
    assert count == stream.events
    bare, bare_cpu = stream.events / secs, stream.events / cpu
    rows = [("panoramisk parse (baseline)", bare, bare_cpu, f"{secs:.2f} s")]
    failures: list[str] = []
    for backend in backends(args.db, args.postgres, "bench_pipeline"):
        e2e = on_database(backend, args, lambda url: bi.run_e2e(stream, settings, url, backend, "process", pin,
                                                                "service", False, args.timeout))
        ratio = e2e.rate / bare
        rows.append((f"ingest to call records, {backend}", e2e.rate, e2e.cpu_rate,
                     f"{e2e.seconds:.2f} s, {e2e.stored:,} calls, {ratio:.2f}x panoramisk"))
        if ratio < TARGET_INGEST:
            failures.append(f"ingest, {backend}: {ratio:.2f}x < {TARGET_INGEST}x")
        runs = []
        for n in range(args.repeat):
            print(f"pipeline: {backend}, run {n + 1} of {args.repeat} ...", flush=True)
            runs.append(on_database(backend, args, lambda url: bi.with_server(
                stream, pin, lambda port: asyncio.run(pipeline(stream, settings, url, backend, port, args.timeout)))))
        best = max(runs, key=lambda r: r.rate)
        ratio = best.rate / bare
        rows.append((f"whole pipeline, {backend}", best.rate, best.events / best.cpu,
                     f"{best.seconds:.2f} s, {best.calls:,} calls, {best.tasks:,} tasks, {best.cases:,} cases, "
                     f"{ratio:.2f}x panoramisk, runs " + "/".join(f"{r.rate / 1000:.0f}k" for r in runs)))
        if best.calls != stream.expected_calls or best.left or best.parked:
            failures.append(f"pipeline, {backend}: {best.calls} calls, {best.left} left unprocessed, {best.parked} parked")
        if ratio < TARGET_PIPELINE:
            failures.append(f"pipeline, {backend}: {ratio:.2f}x < {TARGET_PIPELINE}x")
    width = max(len(r[0]) for r in rows)
    print(f"\n{'stage':<{width}}  {'events/s':>9}  {'ev/CPU-s':>9}  note")
    for stage, rate, cpu_rate, note in rows:
        print(f"{stage:<{width}}  {rate:>9,.0f}  {cpu_rate:>9,.0f}  {note}")

    if not args.no_sigterm:
        # stamped from now on: a live backlog (a stream of last week would make every task overdue,
        # and the deadline check's escalations, not the pipeline, would be what the stop waits for)
        at, bi.AT = bi.AT, datetime.now(ZoneInfo("Asia/Shanghai")).replace(microsecond=0)
        try:
            big = bi.build_stream(args.trace, max(1, math.ceil(args.sigterm_events / per_copy)))
        finally:
            bi.AT = at
        big.calls_per_copy = stream.calls_per_copy
        print(f"\nSIGTERM: `callcenter serve` on {big.events:,} events ({big.expected_calls:,} calls), "
              f"signal at {args.share:.0%} of the calls committed", flush=True)
        for backend in backends(args.db, args.postgres, "bench_pipeline"):
            result = on_database(backend, args, lambda url: bi.with_server(
                big, pin, lambda port: sigterm(big, url, backend, port, args.share, pin[0] if pin else None,
                                    args.sigterm_batch_size)))
            print(f"  {backend:<11} exit {result.exit_seconds:.2f} s (code {result.returncode}) with "
                  f"{result.committed_at_signal:,} calls committed, {result.left_at_signal:,} of them not yet "
                  f"processed at the signal, {result.left_after:,} left for the next start; the next serve "
                  f"caught up in {result.catch_up_seconds:.1f} s ({result.calls:,} calls) and exited in "
                  f"{result.second_exit_seconds:.2f} s")
            if result.exit_seconds >= TARGET_SIGTERM or result.second_exit_seconds >= TARGET_SIGTERM:
                failures.append(f"SIGTERM, {backend}: {result.exit_seconds:.1f} s / {result.second_exit_seconds:.1f} s")
            if result.returncode != 0 or math.isinf(result.catch_up_seconds):
                failures.append(f"SIGTERM, {backend}: exit code {result.returncode}, {result.calls} calls, "
                                f"catch-up {result.catch_up_seconds}")
    print(f"\ntargets: whole pipeline >= {TARGET_PIPELINE}x panoramisk, ingest >= {TARGET_INGEST}x, "
          f"SIGTERM < {TARGET_SIGTERM:.0f} s")
    if failures:
        print("missed:\n" + "\n".join(f"  {f}" for f in failures), file=sys.stderr)
        return 0 if args.no_check else 1
    print("all met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
