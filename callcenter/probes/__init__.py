"""Hotline probes (issue 13, 各单位要对电话是否能打通进行核实): a scheduled test call to each
published hotline number in business hours, recorded with whether and how fast it was answered,
and kept out of every other figure.

- `plan`: what to probe and when (pure), Asterisk's reasons as results, and `ProbeRecogniser`,
  which drops the probes' call records before they are stored (a `Service` record and submit
  filter; `callcenter import-queue-log` uses it too, and the live panel's waiting list,
  agents/live/views.py, leaves the probes waiting in a queue out by it).
- `prober`: one probe: the checked Originate, its OriginateResponse, the `probes` table row.
- `schedule`: the APScheduler job (active instance only; workdays, business hours).
- `attach(app, schedule)`: wires them into an `App` (callcenter/bootstrap.py).

The report section is reports/probes.py; `callcenter probe` places one now (cli_commands.py).
"""
from __future__ import annotations

from ..domain.numbers import canonical
from .plan import ProbeRecogniser
from .prober import Prober


def recogniser_for(settings) -> ProbeRecogniser:
    contexts = [c for p in settings.pbxes for c in p.hotline_contexts] or ["hotline"]
    cfg = settings.probes
    # events carry canonical caller numbers (callcenter/domain/numbers.py): a +86 caller id too
    return ProbeRecogniser([canonical(cfg.caller_id)] if cfg.caller_id else [], cfg.context, contexts)


def attach(app, schedule: bool = True) -> None:
    """Probe calls are recognised and dropped from the stream's records (always, also in replays),
    from records completed outside the stream (queue_log, CDR: `Service.submit_filters`; the reader
    that submitted one is told through `Service.on_dropped` and forgets it) and from the IVR's
    sessions (`app.ivr_records.excluded_callers`); with `schedule` (serve) and `probes.enabled` the
    schedule runs as an app extra on the active instance."""
    service, settings = app.service, app.settings
    recogniser = recogniser_for(settings)
    if recogniser.caller_ids or recogniser.marker:
        service.subscribe(recogniser.on_event)
        service.record_filters.append(recogniser.keep)
        service.submit_filters.append(recogniser.keep)
        records = getattr(app, "ivr_records", None)      # the IVR's sessions (ivr/records.py): a probe's
        if records is not None:                          # session is no IVR hang-up, no rating
            records.excluded_callers.update(recogniser.caller_ids)
    prober = Prober(settings, app.store, app.clock, service.clients)
    service.subscribe(prober.on_event)
    app.probes = prober
    app.probe_recogniser = recogniser
    if schedule and settings.probes.enabled:
        from .schedule import ProbeScheduler
        scheduler = ProbeScheduler(prober, settings, app.calendar, app.clock)
        if app.leadership is not None:
            scheduler.active = app.leadership
        app.extras.append(scheduler)
        app.probe_scheduler = scheduler
