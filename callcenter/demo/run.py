"""`callcenter demo`: the real service against a simulated PBX over TCP, with live zh-CN lines.

Wiring: an ``AmiServer`` with nothing recorded listens on a free local port, and the application
that ``serve`` runs (``bootstrap.build``: the same ``Service``, store and follow-up) connects to it
as to any Asterisk; the app's FastAGI IVR (ivr/server.py ``attach``) listens on another free port.
Once the service has logged in, the ``PbxSimulator`` starts and pushes its events with
``server.emit``; each of its callers walks the IVR over TCP (dialplan.py, agi_client.py), and the
IVR's sessions are counted (ivr_summary.IvrTally) after the app has stored them. Every committed call is
printed as one line. At the end (after ``seconds``, or on SIGINT/SIGTERM) arrivals stop, calls in
progress get a short grace period, whatever remains is ended the way it would end at that moment
(nothing stays open), agents log out, and the summary is built from what the store holds.

Time: the simulator and the service share one clock. When some department is open it is the wall
clock. When every department is closed, the demo clock runs in real time from a few seconds
before the next opening, so the demo shows after-hours calls and then the lines opening at any
time of day; the first line printed says so. ``at`` fixes the start instead (tests).
"""
from __future__ import annotations

import asyncio
import logging
import random
import signal
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from reports import daily
from reports.calls import OUTCOME_ZH

from ..ami.client import Endpoint
from ..ami.server import AmiServer
from ..bootstrap import build
from ..clock import SystemClock
from ..domain.records import CallRecord, Outcome
from ..service import Service
from ..settings import Settings
from .ivr_summary import IvrTally, demo_database
from .lines import LiveLines, Out, _pad
from .simulator import OpeningHours, PbxSimulator, Timing

log = logging.getLogger(__name__)
LEAD_SECONDS = 2.0          # a shifted demo clock starts this long before the lines open
DRAIN_SECONDS = 5.0         # grace period for calls in progress at the end
CONNECT_TIMEOUT = 10.0


class ShiftedClock:
    """Real-time clock that reads ``start`` at the moment it is created."""

    def __init__(self, start: datetime, base=None):
        if start.tzinfo is None:
            raise ValueError("ShiftedClock needs a timezone-aware datetime")
        self.base = base or SystemClock()
        self.offset = start - self.base.now()

    def now(self) -> datetime:
        return self.base.now() + self.offset


def demo_clock(settings: Settings, at: datetime | None, base) -> tuple[object, str]:
    """The clock the simulator and the service share, and a zh-CN line saying where it starts."""
    tz = ZoneInfo(settings.timezone)
    if at is not None:
        at = at if at.tzinfo else at.replace(tzinfo=tz)
        return ShiftedClock(at, base), f"演示时钟从 {at.astimezone(tz):%Y-%m-%d %H:%M:%S} 开始，实时推进。"
    now = base.now()
    hours = OpeningHours(settings)
    opening = None if hours.any_open(now) else hours.next_opening(now)
    if opening is None:
        return base, f"演示时钟即当前时间 {now.astimezone(tz):%Y-%m-%d %H:%M:%S}。"
    start = opening - timedelta(seconds=LEAD_SECONDS)
    return ShiftedClock(start, base), (
        f"现在（{now.astimezone(tz):%m-%d %H:%M}）各部门均不在工作时间；演示时钟改从下一工作时段开始前 "
        f"{LEAD_SECONDS:g} 秒（{start.astimezone(tz):%Y-%m-%d %H:%M:%S}）起实时推进。")


# --- the run ------------------------------------------------------------------------------------

@dataclass
class DemoResult:
    summary: str
    seed: int
    calls_started: int
    calls_stored: int
    open_calls: int
    records: list[CallRecord] = field(default_factory=list)
    ivr: IvrTally | None = None                 # the IVR sessions, as the FastAGI server finished them
    agi_counts: dict = field(default_factory=dict)    # the FastAGI server's counts (sessions, completed...)
    ivr_events: dict = field(default_factory=dict)    # UserEvents the IVR raised on the AMI stream
    transfers: int = 0                          # blind transfers (the caller walks the other hotline's IVR)
    repeat_calls: int = 0                       # answered callers who called the same department again
    cut_short: int = 0                          # calls still in progress at the end (ended by the PBX)


def _print(line: str) -> None:
    print(line, flush=True)


def _install_signals(stop: asyncio.Event, hurry: asyncio.Event) -> list[int]:
    """First SIGINT/SIGTERM: stop cleanly. Second: skip the grace period."""
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            hurry.set()
        stop.set()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass            # not the main thread, or no signal support
    return installed


async def _wait_stop(stop: asyncio.Event, seconds: float | None) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


async def _drain(sim: PbxSimulator, seconds: float, hurry: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while sim.in_flight and loop.time() < deadline and not hurry.is_set():
        await asyncio.sleep(0.05)


async def _delivered(service: Service, client, server: AmiServer, sim: PbxSimulator,
                     timeout: float = 10.0) -> None:
    """Until the service has received and committed everything the simulator emitted."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while client.events_received < sim.emitted + server.logins and loop.time() < deadline:
        await asyncio.sleep(0.01)
    if client.events_received < sim.emitted + server.logins:
        log.warning("the service received %d of %d events", client.events_received - server.logins, sim.emitted)
    await service.settled(timeout=max(1.0, deadline - loop.time()))


async def run(settings: Settings, db_url: str, seconds: float | None = None, rate: float = 1.0,
              seed: int | None = None, *, at: datetime | None = None, out: Out | None = None,
              drain_seconds: float | None = None, timing: Timing | None = None,
              handle_signals: bool = True) -> DemoResult:
    """Run the demo; return its summary and what the tests look at."""
    if rate <= 0:
        raise ValueError(f"--rate: must be positive, got {rate:g}")
    if seconds is not None and seconds <= 0:
        raise ValueError(f"--seconds: must be positive, got {seconds:g}")
    out = out or _print
    base = SystemClock()
    clock, notice = demo_clock(settings, at, base)
    seed = seed if seed is not None else random.SystemRandom().randrange(1_000_000)
    if drain_seconds is None:
        drain_seconds = min(DRAIN_SECONDS, seconds / 2) if seconds else DRAIN_SECONDS
    # Asterisk's Uniqueid is <epoch>.<sequence>; a demo clock may replay the same epochs, so the
    # sequence starts from the wall clock to keep call ids unique in a database used again.
    first_seq = int(base.now().timestamp()) % 1_000_000 * 1000

    app = build(settings, db_url, clock)
    app.service.checkpointer.resume = False         # a new simulation each run: nothing to resume
    service, store = app.service, app.store
    from ivr import server as ivr_server            # the callers' IVR, on a port of its own
    ivr = ivr_server.attach(app, host="127.0.0.1", port=0)
    tally = IvrTally(settings.directory().department_names).attach(ivr.ivr)
    server = AmiServer()
    lines = LiveLines(settings, out, tally.of)
    service.on_calls_committed(lines)
    stop, hurry = asyncio.Event(), asyncio.Event()
    installed = _install_signals(stop, hurry) if handle_signals else []
    loop = asyncio.get_running_loop()
    started_wall = loop.time()
    app_started = False
    try:
        port = await server.start()
        pbx = settings.pbxes[0].id if settings.pbxes else "pbx1"
        client = service.add_pbx(Endpoint(pbx, "127.0.0.1", port, "demo", "demo", connect_timeout=5,
                                          action_timeout=10, ping_interval=20, reconnect_min=0.1,
                                          reconnect_max=2))
        await app.start()
        app_started = True
        try:
            await asyncio.wait_for(client.connected.wait(), CONNECT_TIMEOUT)
        except asyncio.TimeoutError:
            raise RuntimeError(f"the service did not log in to the simulated PBX on port {port}") from None
        sim = PbxSimulator(settings, server.emit, clock, seed=seed, rate=rate, timing=timing,
                           first_seq=first_seq, calendar=app.calendar, agi=("127.0.0.1", ivr.port))
        from ..auth.demo import demo_access                 # the API and the demo's sign-in (issue 10)
        out(await demo_access(app))
        out(_banner(settings, sim, port, rate, seed, seconds, notice, ivr.port))
        started = clock.now()
        sim.start()
        halt = asyncio.Event()
        driver = loop.create_task(sim.run(halt), name="demo-pbx")
        try:
            await _wait_stop(stop, seconds)
            sim.stop_arrivals()
            if sim.in_flight:
                out(f"停止接入新来电，等待 {sim.in_flight} 通进行中的通话结束（最多 {drain_seconds:g} 秒）……")
            await _drain(sim, drain_seconds, hurry)
        finally:
            halt.set()
            await driver
            sim.close()
            await sim.agi_settled()            # the IVR sessions of the calls just ended
        await _delivered(service, client, server, sim)
        await app.after_commit.catch_up()      # tasks of every delivered call before the summary
        ended = clock.now()
        window = (started - timedelta(seconds=1), ended + timedelta(seconds=1))
        records = [r for r in await store.calls_between(*window) if (r.pbx, r.id) in lines.seen]
        tasks = await store.task_facts(*window)
        open_calls = service.calls.open_calls
        summary = _summary(settings, records, tasks, started, ended, loop.time() - started_wall, sim,
                           open_calls, seed)
        summary += "\n" + "\n".join(tally.lines(dict(ivr.agi.counts)))
        return DemoResult(summary, seed, sim.calls_started, len(records), open_calls, records, tally,
                          dict(ivr.agi.counts), dict(sim.ivr_events), sim.transfers, sim.repeat_calls,
                          sim.cut_short)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        if app_started:
            await app.stop()                   # the service, pending follow-ups, the store
        else:
            await service.stop()
            await store.close()
        await server.close()


async def run_demo(settings: Settings, db_url: str | None, seconds: float | None, rate: float,
                   seed: int | None, at: datetime | None = None) -> str:
    """Entry point of `callcenter demo`: run, print live lines, return the summary. Without
    `--db` (the default URL) a fresh database of its own (ivr_summary.demo_database)."""
    db_url, where = demo_database(db_url)
    if where:
        _print(where)
    summary = (await run(settings, db_url, seconds, rate, seed, at=at)).summary
    return summary + (f"\n\n{where}" if where else "")


# --- text ---------------------------------------------------------------------------------------

def _banner(settings: Settings, sim: PbxSimulator, port: int, rate: float, seed: int,
            seconds: float | None, notice: str, agi_port: int) -> str:
    agents = {m.agent.id for q in sim.queues.values() for m in q.members}
    until = f"运行 {seconds:g} 秒后结束" if seconds else "按 Ctrl-C 结束"
    header = f"{_pad('时间', 8)}  {_pad('部门', 30)}  {_pad('来电', 20)}  {_pad('结果', 10)}  经过"
    return "\n".join([
        f"模拟 PBX 已在 127.0.0.1:{port} 提供 AMI，服务已登录。{len(sim.queues)} 个部门热线，"
        f"{len(agents)} 名坐席（A 岗、B 岗），平均每秒 {rate:g} 通来电，随机种子 {seed}（--seed 可复现）。",
        f"来电先经服务的语音导航（FastAGI，127.0.0.1:{agi_port}）：按键选择事项、非工作时间留言、"
        "首问负责转原经办人，通话后满意度评价。",
        notice, f"{until}。", "", header])


def _summary(settings: Settings, records: list[CallRecord], tasks: list, started: datetime,
             ended: datetime, elapsed: float, sim: PbxSimulator, open_calls: int, seed: int) -> str:
    tz = ZoneInfo(settings.timezone)
    short_limit = settings.thresholds.short_abandon_seconds
    counts = Counter(r.outcome for r in records)
    short = sum(1 for r in records if r.outcome is Outcome.ABANDONED
                and (r.stints[-1].wait_seconds or 0) < short_limit)
    by_outcome = "，".join(f"{OUTCOME_ZH[o.value]} {counts[o]}" for o in Outcome if counts[o])
    if short:
        by_outcome += f"（排队放弃中短放弃 {short} 通，不足 {short_limit:g} 秒）"
    report = daily.build(started.astimezone(tz).date(), records, settings, tasks, ended)
    created = report["totals"].get("tasks_created")
    return "\n".join([
        "",
        f"演示结束：运行 {elapsed:.1f} 秒，演示时钟 {started.astimezone(tz):%Y-%m-%d %H:%M:%S} 至 "
        f"{ended.astimezone(tz):%H:%M:%S}（{settings.timezone}），随机种子 {seed}。",
        f"来电 {sim.calls_started} 通，入库 {len(records)} 通，未结束 {open_calls} 通"
        + (f"；{sim.cut_short} 通在演示结束时仍在进行，已按当时状态挂断（排队中的计为放弃）。" if sim.cut_short else "。"),
        f"按结果：{by_outcome or '无'}",
        *([f"未接来电跟进任务：新建 {created} 条（同一来电人同一部门合并为一条），"
           f"须在 {settings.followup.contact_workdays} 个工作日内联系来电人。"] if created is not None else []),
        "",
        "本次演示各部门统计（口径同日报）：",
        daily.render_table(report),
    ])
