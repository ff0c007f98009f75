"""Read-only views of the call tracker's live state (calls.CallTracker): who is calling on a given
call (`describe`) and which callers are waiting in a queue right now (`waiting`). Pure: no clock
of its own (the caller passes `now`), never changes the tracker."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Waiting:
    """A caller in a queue, not yet answered."""
    pbx: str
    call_id: str                 # the call's linkedid (as in the agent view's call dict)
    queue: str
    caller_num: str
    caller_name: str
    since: datetime              # when the caller entered this queue
    seconds: float               # waited so far (at `now`)
    department: str | None = None
    hotline: str = ""
    uniqueid: str = ""           # the caller leg (queue_log's call id), "" when not known

    def to_dict(self) -> dict:
        return {"pbx": self.pbx, "call_id": self.call_id, "queue": self.queue,
                "caller_num": self.caller_num, "caller_name": self.caller_name,
                "since": self.since.isoformat(), "seconds": round(self.seconds, 1),
                "department": self.department, "hotline": self.hotline, "uniqueid": self.uniqueid}


def _find(tracker, pbx: str, call: str):
    """The live call by linkedid, or by the uniqueid of one of its channels."""
    live = tracker.calls.get((pbx, call))
    if live is None:
        linkedid = tracker.channels.get((pbx, call))
        if linkedid is not None:
            live = tracker.calls.get((pbx, linkedid))
    return live


def describe(tracker, pbx: str, linkedid: str) -> dict | None:
    """What the tracker knows of one call in progress, or None when it has no such call."""
    live = _find(tracker, pbx, linkedid)
    if live is None:
        return None
    return {"caller_num": live.caller_num, "caller_name": live.caller_name, "hotline": live.hotline,
            "ivr_choice": live.ivr_choice, "ivr_queue": live.ivr_queue,
            "started_at": live.started_at, "caller_leg": live.caller_leg or ""}


def waiting(tracker, now: datetime) -> list[Waiting]:
    """Callers waiting in a queue now, longest wait first."""
    out = []
    for (pbx, linkedid), live in list(tracker.calls.items()):
        stint = live.open_stint()
        if stint is None or stint.end is not None or stint.left_at is not None:
            continue
        out.append(Waiting(pbx=pbx, call_id=linkedid, queue=stint.queue, caller_num=live.caller_num,
                           caller_name=live.caller_name, since=stint.entered_at,
                           seconds=max(0.0, (now - stint.entered_at).total_seconds()),
                           department=stint.department, hotline=live.hotline,
                           uniqueid=live.caller_leg or ""))
    out.sort(key=lambda w: (w.since, w.pbx, w.call_id))
    return out
