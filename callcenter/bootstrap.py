"""The composition root: builds the store, the service and the follow-up around one clock.

`serve`, `replay` and `demo` all call `build`; tests build the same thing. Nothing here runs at
import time.
"""
from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass, field

from .aftercommit import AfterCommit
from .cases.service import Cases
from .checkpointer import Checkpointer
from .clock import SystemClock
from .domain.cases import Presence
from .domain.callbacks import CallbackTracker
from .followup.callbacks import Callbacks
from .followup.service import FollowUp
from .leader import Leadership
from .coverage.service import Coverage
from .notify.channels import PanelChannel, build_channels
from .notify.notifier import Notifier
from .service import Service
from .settings import Settings
from .journal import Backlog, Journal, ListHolder, journal_path
from .storage.store import Store
from .workdays import build_calendar, warn_missing_year

log = logging.getLogger(__name__)
STOP_BUDGET = 7.0           # seconds App.stop may spend in all (SIGTERM: exit within 10 s, with the
                            # interpreter's own teardown and a loaded machine's margin)
DOWN_BUDGET = 4.0           # ... of which, with the database away, at most this (it would not answer)
EXTRA_STOP_MAX = 2.0        # seconds one extra (web, scheduler, coverage, ...) may take to stop


@dataclass
class App:
    settings: Settings
    store: Store
    service: Service
    followup: FollowUp
    callbacks: Callbacks
    cases: Cases
    coverage: Coverage
    panel: PanelChannel                              # what the web panel will show live
    channels: dict                                   # notification channels by name
    notifier: Notifier
    after_commit: AfterCommit
    calendar: object
    clock: object
    extras: list = field(default_factory=list)      # started after the service, stopped before it
    leadership: Leadership | None = None             # which instance sends AMI actions (callcenter/leader.py)
    hub: object = None                               # the panel's live push: topics and fan-out (agents/live/hub.py)
    live: object = None                              # what feeds the hub: views, dashboards (agents/live/push.py)
    desk: object = None                              # the agents' server-owned states and requests (agents/desk.py)
    backlog: Backlog | None = None                   # held writes: retried, journalled at stop (callcenter/journal.py)
    ivr: object = None                               # the FastAGI IVR server (ivr/server.py), when it runs
    ivr_records: object = None                       # finished IVR/survey sessions, stored and linked (ivr/records.py)

    async def start(self) -> None:
        warn_missing_year(self.calendar, self.clock.now().astimezone(self.calendar.tz).date())
        if self.backlog is not None:
            self.backlog.load()                      # the journal of the last stop, into the holders
        await self.service.start()                   # migrates the database
        if self.backlog is not None:
            await self.backlog.start()               # the journal is written first; then retries
        # calls committed before this start: caught up in the background by the after-commit worker
        for extra in self.extras:
            await extra.start()
        # the configuration, trackers and web application live as long as the process: keep them
        # out of the garbage collector's full passes (a 117 ms pause was measured without this)
        gc.freeze()

    async def stop(self) -> None:
        """Bounded: SIGTERM exits within 10 s whatever the backlog or the database's state. Each
        step gets what is left of STOP_BUDGET (a step that overruns is abandoned with a warning);
        what is left waits in the database, or in the journal, for the next start. The journal
        (local file) is always written last."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_BUDGET

        def left(cap: float = STOP_BUDGET) -> float:
            now = loop.time()
            if not self.store.health.ok:                    # a dead database: don't wait for it
                cap = min(cap, 1.0, deadline - STOP_BUDGET + DOWN_BUDGET - now)
            return max(0.0, min(cap, deadline - now))

        for extra in reversed(self.extras):
            await _bounded(extra.stop(), left(EXTRA_STOP_MAX), type(extra).__name__)
        await _bounded(self.service.stop(), max(left(), 0.5), "service")
        # calls the service flushed while stopping, for pipeline.stop_seconds at most and within
        # STOP_BUDGET of the stop's start; the rest: the next start
        await _bounded(self.after_commit.finish(left(self.settings.pipeline.stop_seconds)),
                       left(self.settings.pipeline.stop_seconds) + 0.5, "after-commit catch-up")
        if self.backlog is not None:
            await _bounded(self.backlog.stop(), 1.0, "backlog")
            await self.backlog.journal()             # writes still held (database down), for the next start
        await _bounded(self.store.close(), 1.0, "database pool")


async def _bounded(step, seconds: float, name: str) -> None:
    """Run one shutdown step for `seconds` at most; an overrun or a failure is logged, not raised."""
    try:
        await asyncio.wait_for(step, max(seconds, 0.01))
    except asyncio.TimeoutError:
        log.warning("shutdown: %s did not finish within %.1f s; left for the next start", name, seconds)
    except Exception as exc:                          # a failing step never stops the others
        log.warning("shutdown: %s failed: %s", name, exc)


def agent_available(service: Service):
    """An agent is available when logged in to some queue, not paused and reachable; on `pbx`
    when given (a post's own PBX, issue 14), else on any PBX."""
    def available(agent: str, pbx: str | None = None) -> bool:
        return any(m.agent == agent and m.available and pbx in (None, m.pbx)
                   for m in service.presence.members.values())
    available.per_pbx = True
    return available


def presence_picture(service: Service, settings: Settings):
    """Agent id -> Presence (available, and the interfaces to ring), for routing; `pbx`: judged
    on that PBX alone (the call's), else on any PBX."""
    interfaces = {a.id: tuple(a.interfaces) for a in settings.agents}

    def picture(pbx: str | None = None) -> dict[str, Presence]:
        out: dict[str, Presence] = {}
        for m in service.presence.members.values():
            if m.agent is None or pbx not in (None, m.pbx):
                continue
            seen = out.get(m.agent)
            if seen is None or (m.available and not seen.available):
                out[m.agent] = Presence(m.agent, m.available, (m.interface,) + tuple(
                    i for i in interfaces.get(m.agent, ()) if i != m.interface))
        return out
    picture.per_pbx = True
    return picture


def build(settings: Settings, db_url: str, clock=None, live: bool = False, queue_log: bool | None = None) -> App:
    """`live`: notifications leave the system (SMS, e-mail) — `serve` only; replays and the
    demo notify the panel alone. `queue_log` (default: `live`): read the PBXes' queue_log
    files; a replay or the demo plays a stream of its own and never reads them."""
    clock = clock or SystemClock()
    store = Store(db_url, clock, settings.database)
    service = Service(settings, store, clock)
    service.checkpointer = Checkpointer(service, store, clock, settings.instance.checkpoint_seconds)
    service.subscribe(service.checkpointer.on_event)
    leadership = Leadership(db_url, settings.instance.leader_poll_seconds)
    calendar = build_calendar(settings)
    panel = PanelChannel().attach(store, clock)       # stored; shown/acked by the panels (notify/panel.py)
    channels = build_channels(settings.notify, panel) if live else {"panel": panel}
    notifier = Notifier(store, channels, clock)
    coverage = Coverage(settings, service, store, calendar, clock, notifier)
    service.subscribe(coverage.on_event)
    cases = Cases(store, settings, calendar, clock, presence=presence_picture(service, settings),
                  gap_fallback=coverage.fallback_for)
    followup = FollowUp(store, settings, calendar, clock, available=agent_available(service), owner_of=cases.owner_of,
                        owners_of=cases.owners_of)
    from ivr import twilio as ivr_twilio
    # AMI PBXes: Originate over their clients; the Twilio PBX: REST calls.create (ivr/twilio/dialout.py)
    callbacks = Callbacks(followup, service.clients, settings, dialers=ivr_twilio.dialers(settings))
    after_commit = AfterCommit(store, [cases, followup], settings.pipeline, clock, callbacks)
    service.on_calls_committed(after_commit.on_calls_committed)
    contexts = {"*": frozenset({settings.followup.callback.context})}
    service.add_tracker(CallbackTracker(contexts), after_commit.add_callback_results)   # recorded off the consumer
    app = App(settings, store, service, followup, callbacks, cases, coverage, panel, channels, notifier,
              after_commit, calendar, clock)
    coverage.active = callbacks.active = leadership
    leadership.on_change(coverage.on_leadership)
    app.leadership = leadership
    store.health.holders += [service, coverage.held, notifier.held,
                             ListHolder("callback_results", lambda: after_commit.results)]
    app.backlog = Backlog(store.health, store, Journal(journal_path(settings.database.journal, db_url),
                                                       store.engine.url.render_as_string(hide_password=True)),
                          settings.database.retry_seconds, settings.database.stop_seconds,
                          settings.database.probe_seconds)
    app.extras += [leadership, after_commit, coverage]
    from agents.desk import AgentDesk
    # the agents' states from the stream (after coverage: its seats are current), wrap-up timers, requests
    app.desk = AgentDesk(settings, service, coverage, notifier, clock, store)
    service.subscribe(app.desk.on_event)
    app.extras.append(app.desk)
    from agents.live.hub import Hub
    from agents.live.push import LivePush
    app.hub = Hub(clock)                             # the panel's pushes; the panel channel finds it (find_hub)
    app.live = LivePush(app, app.hub)                # first listener of the stream; binds app.desk's on_change at start
    app.extras.append(app.live)
    from .notify.panel import PanelWatch
    panel.watch = PanelWatch(panel.inbox)            # queued panel notifications nobody has seen (health)
    panel.find_hub = lambda: getattr(app, "hub", None)   # live pushes once the hub is wired (live/hub.py)
    app.extras.append(panel.watch)
    from .queuelog.reconciler import QueueLogReconciler
    # queue_log, the PBX's own record: partly-seen and unseen calls completed from it (issue 9)
    if (live if queue_log is None else queue_log):
        readers = {p.id: QueueLogReconciler(service, store, p, clock) for p in settings.pbxes if p.queue_log}
        app.extras += list(readers.values())
        # the CDR: calls that never reached a queue (IVR, after hours), after that PBX's queue_log
        from zoneinfo import ZoneInfo
        from .cdr.reader import CdrReconciler
        app.extras += [CdrReconciler(service, store, p, clock, ZoneInfo(p.cdr_csv_timezone or settings.timezone),
                                     readers.get(p.id)) for p in settings.pbxes if p.cdr_csv]
    from ivr import records as ivr_records, server as ivr_server
    ivr_records.attach(app)                          # IVR and survey sessions, stored with their calls (issue 12)
    from .probes import attach as attach_probes; attach_probes(app, schedule=live)   # hotline probes (issue 13; before the IVR server)  # noqa: E702
    if live and ivr_server.configured(settings):      # `serve` with an `ivr.fastagi` section: the callers' IVR
        ivr_server.attach(app)
    if live and ivr_twilio.configured(settings):      # `ivr.twilio.enabled`: Twilio Voice's webhooks (issue 12)
        ivr_twilio.attach(app)
    if live:                                          # `serve`: the daily reports archived and delivered (issue 13)
        from reports.schedule import attach as attach_reports; attach_reports(app)   # noqa: E702
    return app
