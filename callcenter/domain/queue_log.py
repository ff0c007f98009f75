"""Asterisk's queue_log as a second source: lines -> per-call queue facts -> reconciled records.

queue_log is what Asterisk writes durably for every queued call
(`epoch|callid|queue|agent|event|data...`); its callid is the caller leg's Uniqueid, our call id.
`QueueLogCalls.feed` folds lines into `QueueCall`s (one per callid, stint by stint) and says when
a call is finished in queue_log (every stint closed). Two rules use them:

- `record_from`: a call the AMI view never saw becomes a record from queue_log alone.
- `reconcile`: a call seen partly (the link was down for part of it) takes the facts it is
  missing from queue_log; where the two disagree on how a stint ended, queue_log wins.

Both are flagged `reconciled`. Waits and talk times come from Asterisk's own figures (holdtime,
waittime, calltime), never from when we happened to look. The caller number (ENTERQUEUE's
callerid) is kept in canonical form (numbers.py), as the AMI translator gives it. Pure: no clock,
no I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from .calls import outcome_of
from .directory import Directory
from .numbers import canonical
from .records import CallRecord, Stint, StintEnd

MATCH_SECONDS = 3.0            # a stint seen over AMI and one in queue_log are the same visit
_NOT_CALLS = frozenset({"NONE", "MANAGER", ""})
_UNANSWERED = {"ABANDON": StintEnd.ABANDONED, "EXITWITHTIMEOUT": StintEnd.TIMED_OUT,
               "EXITEMPTY": StintEnd.NO_AGENT, "EXITWITHKEY": StintEnd.ABANDONED}
_REFUSED = frozenset({"FULL", "JOINEMPTY", "JOINUNAVAIL"})
_COMPLETED = {"COMPLETEAGENT": "agent", "COMPLETECALLER": "caller"}
_TRANSFERS = frozenset({"TRANSFER", "BLINDTRANSFER", "ATTENDEDTRANSFER"})


class QueueLogError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class QueueLogLine:
    at: datetime
    callid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]


def parse_line(text: str) -> QueueLogLine:
    """One queue_log line; QueueLogError names what is wrong with it."""
    fields = text.rstrip("\r\n").split("|")
    if len(fields) < 5:
        raise QueueLogError(f"expected epoch|callid|queue|agent|event, got {len(fields)} fields")
    try:
        at = datetime.fromtimestamp(int(float(fields[0])), tz=timezone.utc)
    except (ValueError, OverflowError):
        raise QueueLogError(f"time: not an epoch: {fields[0][:20]!r}") from None
    return QueueLogLine(at, fields[1], fields[2], fields[3], fields[4], tuple(fields[5:]))


def _seconds(value: str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass(slots=True)
class QueueStint:
    """One visit to a queue as queue_log tells it."""
    queue: str
    entered_at: datetime
    end: StintEnd | None = None
    hold: int | None = None           # seconds waited before answer, or before leaving unanswered
    member_name: str = ""
    talk: int | None = None
    completed_by: str = ""
    transferred: bool = False
    rings: int = 0
    no_answers: list[str] = field(default_factory=list)
    closed: bool = False

    @property
    def until(self) -> datetime | None:
        return None if self.hold is None else self.entered_at + timedelta(seconds=self.hold)


@dataclass(slots=True)
class QueueCall:
    callid: str
    first_offset: int                 # where its first line starts in the file (the read position)
    caller_num: str = ""
    stints: list[QueueStint] = field(default_factory=list)
    last_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return bool(self.stints) and all(s.closed for s in self.stints)

    def open_stint(self, queue: str, answered: bool | None = None) -> QueueStint | None:
        for s in reversed(self.stints):
            if s.queue == queue and not s.closed and (answered is None or (s.end is StintEnd.ANSWERED) == answered):
                return s
        return None


class QueueLogCalls:
    """Folds queue_log lines into calls; `feed` returns the calls a line finished."""

    def __init__(self):
        self.calls: dict[str, QueueCall] = {}
        self.lines = 0

    def feed(self, line: QueueLogLine, offset: int = 0) -> list[QueueCall]:
        self.lines += 1
        if line.event == "QUEUESTART":
            return self._restarted()
        if line.callid in _NOT_CALLS:
            return []
        call = self.calls.get(line.callid)
        if call is None:
            call = self.calls[line.callid] = QueueCall(line.callid, offset)
        call.last_at = line.at
        was_finished = call.finished
        self._apply(call, line)
        return [call] if call.finished and not was_finished else []

    def _restarted(self) -> list[QueueCall]:
        """Asterisk started again: calls it had in its queues ended unrecorded. How long they
        waited or talked is unknown, never counted up to the restart."""
        done = []
        for call in self.calls.values():
            if call.finished or not call.stints:
                continue
            for s in call.stints:
                if not s.closed:
                    s.closed = True
                    if s.end is None:
                        s.end = StintEnd.UNKNOWN
            done.append(call)
        return done

    def _apply(self, call: QueueCall, line: QueueLogLine) -> None:
        e, d, q = line.event, line.data, line.queue
        if e == "ENTERQUEUE":
            for s in call.stints:
                if s.end is StintEnd.ANSWERED:
                    s.transferred = True
                elif not s.closed:          # left unrecorded before joining the next queue
                    s.end, s.closed = StintEnd.ABANDONED, True
                    s.hold = max(0, int((line.at - s.entered_at).total_seconds()))
            if len(d) > 1 and d[1] and not call.caller_num:
                call.caller_num = canonical(d[1])
            call.stints.append(QueueStint(q, line.at))
        elif e in _REFUSED:
            call.stints.append(QueueStint(q, line.at, StintEnd.NO_AGENT, 0, closed=True))
        elif e == "CONNECT":
            s = call.open_stint(q, answered=False)
            late = s is None
            s = s or self._late(call, q, line.at)
            s.end, s.member_name = StintEnd.ANSWERED, line.agent
            s.hold = _seconds(d[0]) if d else None
            s.rings += 1
            if late and s.hold is not None:
                s.entered_at = line.at - timedelta(seconds=s.hold)
        elif e in ("RINGNOANSWER", "RINGCANCELED"):
            s = call.open_stint(q, answered=False)
            if s is not None:
                s.rings += 1
                if e == "RINGNOANSWER":
                    s.no_answers.append(line.agent)
        elif e in _COMPLETED or e in _TRANSFERS:
            hold, talk = (d[0], d[1]) if e in _COMPLETED else ((d[-3], d[-2]) if len(d) >= 3 else ("", ""))
            s = call.open_stint(q, answered=True)
            if s is None:                   # its CONNECT came before the lines we read
                talk_s, hold_s = _seconds(talk) or 0, _seconds(hold) or 0
                s = self._late(call, q, line.at - timedelta(seconds=talk_s + hold_s))
                s.end, s.member_name, s.hold = StintEnd.ANSWERED, line.agent, hold_s
            s.talk = _seconds(talk)
            s.completed_by = "transfer" if (s.transferred or e in _TRANSFERS) else _COMPLETED[e]
            s.closed = True
        elif e in _UNANSWERED:
            s = call.open_stint(q, answered=False)
            late = s is None
            s = s or self._late(call, q, line.at)
            s.end, s.closed = _UNANSWERED[e], True
            s.hold = _seconds(d[-1]) if d else None
            if late and s.hold is not None:
                s.entered_at = line.at - timedelta(seconds=s.hold)

    @staticmethod
    def _late(call: QueueCall, queue: str, at: datetime) -> QueueStint:
        stint = QueueStint(queue, at)
        call.stints.append(stint)
        return stint

    def drop(self, callid: str) -> None:
        self.calls.pop(callid, None)

    def first_open_offset(self) -> int | None:
        """Where the oldest call still held starts: reading again from here loses nothing."""
        return min((c.first_offset for c in self.calls.values()), default=None)


# --- the rules --------------------------------------------------------------------------------

def _agent(directory: Directory, names: dict[str, str], member_name: str, pbx: str) -> str | None:
    return directory.agent_of("", member_name, pbx) or names.get(member_name)


def _stint(pbx: str, q: QueueStint, directory: Directory, names: dict[str, str]) -> Stint:
    until = q.until
    answered = q.end is StintEnd.ANSWERED
    return Stint(
        queue=q.queue, department=directory.department_of_queue(pbx, q.queue), entered_at=q.entered_at,
        left_at=until, answered_at=until if answered else None, end=q.end or StintEnd.UNKNOWN,
        agent=_agent(directory, names, q.member_name, pbx) if q.member_name else None, member_name=q.member_name,
        talk_seconds=None if q.talk is None else float(q.talk), completed_by=q.completed_by,
        transferred=q.transferred, rings=q.rings, no_answers=list(q.no_answers))


def record_from(pbx: str, call: QueueCall, directory: Directory, names: dict[str, str]) -> CallRecord:
    """A call the AMI view never saw, from queue_log alone."""
    stints = [_stint(pbx, q, directory, names) for q in call.stints]
    started = stints[0].entered_at
    ended = max([call.last_at or started] + [s.left_at for s in stints if s.left_at] +
                [s.answered_at + timedelta(seconds=s.talk_seconds) for s in stints
                 if s.answered_at and s.talk_seconds is not None])
    return CallRecord(
        pbx=pbx, id=call.callid, linkedid=call.callid, caller_num=call.caller_num, caller_name="",
        hotline="", department=stints[0].department, started_at=started, ended_at=ended,
        outcome=outcome_of(stints, False), reconciled=True, stints=stints)


def reconcile(record: CallRecord, call: QueueCall | None, directory: Directory,
              names: dict[str, str]) -> CallRecord:
    """A call open across a gap in the AMI view: queue_log fills what the AMI view is missing;
    it wins on how a stint ended. Stints only one side knows are kept (a direct dial is never in
    queue_log). `reconciled` when the record was already known to be partial or queue_log
    changed a fact; a call queue_log confirms as seen stays as it was."""
    if call is None or not call.stints:
        return record
    stints = [replace(s, no_answers=list(s.no_answers)) for s in record.stints]
    before = [_facts(s) for s in stints]
    matched: set[int] = set()
    for q in call.stints:
        index = next((i for i, s in enumerate(stints) if i not in matched and s.queue == q.queue
                      and abs((s.entered_at - q.entered_at).total_seconds()) <= MATCH_SECONDS), None)
        if index is None:
            stints.append(_stint(record.pbx, q, directory, names))
            matched.add(len(stints) - 1)
            continue
        matched.add(index)
        _fill(stints[index], q, directory, names, record.pbx)
    stints.sort(key=lambda s: s.entered_at)
    if not record.reconciled and [_facts(s) for s in stints] == before:
        return record
    ended = max([record.ended_at] + ([call.last_at] if call.last_at else []))
    return replace(
        record, stints=stints, reconciled=True, outcome=outcome_of(stints, record.after_hours),
        caller_num=record.caller_num or call.caller_num, ended_at=ended,
        department=record.department or (stints[0].department if stints else None))


def _facts(s: Stint) -> tuple:
    return (s.queue, s.end, s.agent, s.member_name, s.talk_seconds, s.left_at, s.answered_at)


def _fill(s: Stint, q: QueueStint, directory: Directory, names: dict[str, str], pbx: str) -> None:
    if q.end is not None and q.end is not StintEnd.UNKNOWN and s.end is not q.end:
        s.end = q.end                   # queue_log's ending; times from our join + its figures
        until = s.entered_at + timedelta(seconds=q.hold) if q.hold is not None else q.until
        s.left_at = until
        s.answered_at = until if q.end is StintEnd.ANSWERED else None
    elif q.hold is not None and s.end is q.end and s.end is not StintEnd.UNKNOWN:
        wait = s.wait_seconds                 # ours is kept unless it is off the PBX's figure
        if wait is None or abs(wait - q.hold) > 1.0:
            s.left_at = s.entered_at + timedelta(seconds=q.hold)
            if s.end is StintEnd.ANSWERED:
                s.answered_at = s.left_at
    if s.end is StintEnd.ANSWERED:
        if q.talk is not None:
            s.talk_seconds = float(q.talk)
        if not s.member_name and q.member_name:
            s.member_name = q.member_name
        if s.agent is None and s.member_name:
            s.agent = _agent(directory, names, s.member_name, pbx)
    s.completed_by = s.completed_by or q.completed_by
    s.transferred = s.transferred or q.transferred
    s.rings = max(s.rings, q.rings)
    if not s.no_answers:
        s.no_answers = list(q.no_answers)
