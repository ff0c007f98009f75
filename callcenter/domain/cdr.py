"""Asterisk's CDR (cdr_csv's Master.csv) as a second record of calls that never reached a queue.

queue_log has no line for a call that ended in the IVR or after hours; the CDR has one row per
channel for every call. Pure: lines in, rows and CallRecords out; the time zone the PBX wrote its
local times in is given by the caller (cdr_csv writes local time unless `usegmtime = yes`).

Master.csv columns as cdr_csv writes them (checked on the lab Asterisk, cdr.conf `[csv]`
`loguniqueid = yes`, `loguserfield = yes`, `newcdrcolumns = yes`):
accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata, start, answer,
end, duration, billsec, disposition, amaflags, uniqueid, userfield, peeraccount, linkedid,
sequence. Without `newcdrcolumns` the last three are absent; the 16 base columns and uniqueid
are required (a row without a uniqueid cannot be matched with the AMI view or queue_log).

Rules for a hotline call (`classify`), from the row of its caller leg (the channel that ran the
hotline dialplan: dcontext a hotline context, not the `;1` half of a Local channel, whose row
carries the originating application):
- lastapp `Queue` (the caller was in a queue when it hung up): queue_log has the call -> None.
- userfield `afterhours` (a dialplan that runs `Set(CDR(userfield)=afterhours)` on its closed
  branch; the lab's does not): AFTER_HOURS, whatever the caller did.
- lastapp `Hangup`: the dialplan ran to a Hangup() without the caller hanging up. In the lab
  dialplan that is the after-hours branch (AFTERHOURS=1: UserEvent, Wait(1), Hangup) -- but also
  a queue that timed out (Queue returns, UserEvent, Hangup), which queue_log has. So `Hangup` is
  AFTER_HOURS only for a call queue_log does not know; the adapter checks that before storing.
- lastapp `UserEvent` with data `AfterHours,...`: AFTER_HOURS; `IvrChoice,...`: ABANDONED_IVR
  with the choice and queue from the data.
- anything else (Answer, Wait, Playback, BackGround, AGI...): the caller hung up in the IVR ->
  ABANDONED_IVR. A caller who hangs up during the after-hours Wait(1) leaves `Wait` / `1` (or
  `Answer`), which cannot be told from an IVR hang-up: it is stored as ABANDONED_IVR, the safer
  outcome (a miss charged to the hotline, with a follow-up task, never a "closed" excuse).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo

from .numbers import canonical
from .records import CallRecord, Outcome

COLUMNS = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
           "start", "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield",
           "peeraccount", "linkedid", "sequence")
AFTER_HOURS_MARK = "afterhours"   # Set(CDR(userfield)=afterhours) on the closed branch: definitive
REQUIRED = 17                    # the 16 base columns and uniqueid
_UNIQUEID = re.compile(r"\d+\.\d+$")          # epoch.sequence, maybe after a system name
_CLID = re.compile(r'^\s*"?(?P<name>.*?)"?\s*<(?P<num>[^>]*)>\s*$')


class CdrError(ValueError):
    """A Master.csv line that is not a CDR row; the message names the field."""


@dataclass(frozen=True, slots=True)
class CdrRow:
    src: str
    dst: str
    dcontext: str
    clid: str
    channel: str
    dstchannel: str
    lastapp: str
    lastdata: str
    start: datetime
    answer: datetime | None
    end: datetime
    duration: int
    billsec: int
    disposition: str
    uniqueid: str
    userfield: str = ""
    linkedid: str = ""
    sequence: str = ""

    @property
    def caller(self) -> tuple[str, str]:
        """(number, name): src is the number (in canonical form, callcenter/domain/numbers.py: as the
        AMI translator gives it); the name comes from clid `"Name" <number>`."""
        m = _CLID.match(self.clid)
        name = m.group("name").strip() if m else ""
        return canonical(self.src or (m.group("num") if m else "")), name


def _time(value: str, field: str, tz: tzinfo, optional: bool = False) -> datetime | None:
    if not value and optional:
        return None
    try:
        naive = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise CdrError(f"field {field}: expected 'YYYY-MM-DD HH:MM:SS', got {value!r}") from None
    return naive.replace(tzinfo=tz)


def _int(value: str, field: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise CdrError(f"field {field}: expected whole seconds, got {value!r}") from None


def parse_line(text: str, tz: tzinfo) -> CdrRow:
    """One Master.csv line -> CdrRow; times are the PBX's local time in `tz`."""
    try:
        fields = next(csv.reader([text], strict=True))
    except (csv.Error, StopIteration) as exc:
        raise CdrError(f"not a CSV line: {exc}") from None
    if len(fields) < REQUIRED:
        raise CdrError(f"{len(fields)} fields, expected at least {REQUIRED} (cdr.conf [csv] loguniqueid = yes)")
    f = dict(zip(COLUMNS, fields))
    if not _UNIQUEID.search(f["uniqueid"]):
        raise CdrError(f"field uniqueid: {f['uniqueid']!r} is not an Asterisk uniqueid "
                       "(cdr.conf [csv] loguniqueid = yes?)")
    return CdrRow(
        src=f["src"], dst=f["dst"], dcontext=f["dcontext"], clid=f["clid"], channel=f["channel"],
        dstchannel=f["dstchannel"], lastapp=f["lastapp"], lastdata=f["lastdata"],
        start=_time(f["start"], "start", tz), answer=_time(f["answer"], "answer", tz, optional=True),
        end=_time(f["end"], "end", tz), duration=_int(f["duration"], "duration"),
        billsec=_int(f["billsec"], "billsec"), disposition=f["disposition"], uniqueid=f["uniqueid"],
        userfield=f.get("userfield", ""), linkedid=f.get("linkedid", ""), sequence=f.get("sequence", ""))


def is_caller_leg(row: CdrRow, contexts: frozenset[str]) -> bool:
    """The row of the channel that ran the hotline dialplan (its uniqueid is the call id the AMI
    tracker and queue_log use): a hotline context, not the originating `;1` half of a Local."""
    if row.dcontext not in contexts:
        return False
    return not (row.channel.startswith("Local/") and row.channel.endswith(";1"))


def reached_queue(row: CdrRow) -> bool:
    return row.lastapp.lower() == "queue"


def classify(row: CdrRow) -> tuple[Outcome, str, str] | None:
    """(outcome, ivr choice, ivr queue) of a caller-leg row; None when the call reached a queue
    (queue_log's). AFTER_HOURS from `Hangup` holds only when queue_log does not know the call."""
    app = row.lastapp.lower()
    if app == "queue":
        return None
    if row.userfield.strip().lower() == AFTER_HOURS_MARK:
        return Outcome.AFTER_HOURS, "", ""
    if app == "hangup":
        return Outcome.AFTER_HOURS, "", ""
    if app == "userevent":
        name, _, rest = row.lastdata.partition(",")
        if name.strip().lower() == "afterhours":
            return Outcome.AFTER_HOURS, "", ""
        if name.strip().lower() == "ivrchoice":
            args = dict(p.split(":", 1) for p in rest.split(",") if ":" in p)
            args = {k.strip().lower(): v.strip() for k, v in args.items()}
            return Outcome.ABANDONED_IVR, args.get("choice", ""), args.get("queue", "")
    return Outcome.ABANDONED_IVR, "", ""


def record_from(pbx: str, row: CdrRow, department: str | None) -> CallRecord | None:
    """The CallRecord of a call that never reached a queue (None when it did), flagged reconciled:
    the service did not see it over AMI."""
    decided = classify(row)
    if decided is None:
        return None
    outcome, choice, queue = decided
    number, name = row.caller
    return CallRecord(
        pbx=pbx, id=row.uniqueid, linkedid=row.linkedid or row.uniqueid, caller_num=number, caller_name=name,
        hotline=row.dst, department=department, started_at=row.start, ended_at=row.end, outcome=outcome,
        ivr_choice=choice, ivr_queue=queue, after_hours=outcome is Outcome.AFTER_HOURS, reconciled=True)
