"""What to probe, when, and how to tell a probe's call apart (pure: no I/O, no clock reads).

- `targets`: (PBX, hotline, department) for every published hotline number on every PBX it is
  dialled on, or only the configured `probes.hotlines`.
- `due_slots`: the scheduled slots of a day that are due at a moment: on a workday of the
  calendar, inside the department's business hours, not older than `grace`.
- `result_of`: Asterisk's OriginateResponse reason code -> the probe's result.
- `ProbeRecogniser`: fed the event stream, it learns the calls that are probes (the caller id
  the probe presents, the probe context's Local channel, the Originate's own channel) and
  `keep` drops their call records before they are stored: no call record, follow-up task, case
  or IVR hang-up comes from a probe. `callcenter import-queue-log` tells them by `is_probe` too
  (queue_log has only the caller id), and `is_probe_call` keeps a probe waiting in a queue off
  the live panel's waiting list (agents/live/views.py).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Callable, Iterable

from ..domain import events as ev

KEY_PREFIX = "probe-"
RESULTS = ("answered", "no_answer", "busy", "congestion", "unreachable", "link_down", "no_response", "failed")
# Asterisk's originate reasons: 0 failed (no such extension, channel unavailable), 1 hung up before
# the answer, 3 ringing timed out, 4 answered, 5 busy, 8 congestion
_REASONS = {"0": "unreachable", "1": "no_answer", "3": "no_answer", "4": "answered", "5": "busy", "8": "congestion"}


@dataclass(frozen=True)
class Target:
    pbx: str
    hotline: str
    department: str | None


def targets(settings) -> list[Target]:
    """Every hotline to probe, once per PBX it is dialled on (a hotline on "*": each PBX)."""
    pbxes = [p.id for p in settings.pbxes] or ["pbx1"]
    wanted = None
    if settings.probes.hotlines is not None:
        wanted = {(str(h), getattr(h, "pbx", "*")) for h in settings.probes.hotlines}
    out: dict[tuple[str, str], Target] = {}
    for d in settings.departments:
        for h in d.hotlines:
            for pbx in (pbxes if h.pbx == "*" else [h.pbx]):
                if wanted is not None and (str(h), pbx) not in wanted and (str(h), "*") not in wanted:
                    continue
                out.setdefault((pbx, str(h)), Target(pbx, str(h), d.id))
    return list(out.values())


def day_slots(day: date, windows: Iterable[tuple[time, time]], times: Iterable[time],
              interval_minutes: float | None) -> list[time]:
    """The local clock times of a day's probes: `times` inside the windows, or every
    `interval_minutes` from each window's start."""
    spans = sorted(windows)
    if interval_minutes is None:
        return [t for t in sorted(times) if any(a <= t < b for a, b in spans)]
    out: list[time] = []
    step = timedelta(minutes=interval_minutes)
    for a, b in spans:
        at = datetime.combine(day, a)
        while at.time() < b and at.date() == day:
            out.append(at.time())
            at += step
    return out


def due_slots(now: datetime, tz, is_workday: Callable[[date], bool], windows: Iterable[tuple[time, time]],
              times: Iterable[time], interval_minutes: float | None, grace: timedelta) -> list[datetime]:
    """The slots (aware, in `tz`) due at `now`: slot <= now < slot + grace, on a workday."""
    local = now.astimezone(tz)
    if not is_workday(local.date()):
        return []
    out = []
    for t in day_slots(local.date(), windows, times, interval_minutes):
        slot = datetime.combine(local.date(), t, tz)
        if slot <= local < slot + grace:
            out.append(slot)
    return out


def slot_label(slot: datetime) -> str:
    return slot.strftime("%Y-%m-%dT%H:%M")


def result_of(success: bool, reason: str) -> str:
    if success:
        return "answered"
    result = _REASONS.get(reason, "failed")
    return "failed" if result == "answered" else result


class ProbeRecogniser:
    """Learns which calls are probes from the events and drops their records (`keep`)."""

    def __init__(self, caller_ids: Iterable[str], context: str | None, hotline_contexts: Iterable[str] = (),
                 remember: int = 10000):
        self.caller_ids = frozenset(c for c in caller_ids if c)
        # the probe context's Local channel names it; not when it is a hotline context itself
        self.marker = f"@{context}-" if context and context not in set(hotline_contexts) else None
        self.calls: OrderedDict[tuple[str, str], None] = OrderedDict()   # (pbx, linkedid or uniqueid)
        self.remember = remember
        self.dropped = 0

    def _learn(self, pbx: str, ident: str) -> None:
        if ident:
            self.calls[(pbx, ident)] = None
            self.calls.move_to_end((pbx, ident))
            while len(self.calls) > self.remember:
                self.calls.popitem(last=False)

    def on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.ChannelCreated):
            if event.caller_num in self.caller_ids or (self.marker and self.marker in event.channel):
                self._learn(event.pbx, event.linkedid)
        elif isinstance(event, ev.CallerIdChanged):
            if event.caller_num in self.caller_ids:
                self._learn(event.pbx, event.linkedid)
        elif isinstance(event, ev.OriginateResult):
            if event.action_id.startswith(KEY_PREFIX) and event.uniqueid not in ("", "<unknown>"):
                self._learn(event.pbx, event.uniqueid)

    def is_probe_call(self, pbx: str, caller_num: str, *call_ids: str) -> bool:
        """A call (in progress or completed) by its caller number and its linkedid/uniqueids."""
        return caller_num in self.caller_ids or any((pbx, c) in self.calls for c in call_ids if c)

    def is_probe(self, record) -> bool:
        return self.is_probe_call(record.pbx, record.caller_num, record.linkedid, record.id)

    def keep(self, records: list) -> list:
        kept = [r for r in records if not self.is_probe(r)]
        self.dropped += len(records) - len(kept)
        return kept
