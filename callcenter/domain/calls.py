"""Call tracking: folds the normalised event stream into one CallRecord per hotline call.

A call is the set of channels sharing a Linkedid. Its caller leg is the channel that runs the
hotline dialplan (the one that makes the IVR choice and joins queues); its Uniqueid is the call
id, as in queue_log. A call is complete when its last channel hangs up; `feed` returns the
records completed by each event. The tracker reads no clock: every moment comes from an event.
"""
from __future__ import annotations

from datetime import datetime

from . import events as ev
from .call_gap import GapResync
from .directory import Directory
from .live_call import UNKNOWN_IDS, _Live
from .records import CallRecord, Outcome, Stint, StintEnd

DIRECT = "direct"              # the pseudo-queue of calls the dialplan dials straight to an agent
# Local-channel halves and dialling helpers run no hotline dialplan of their own
_NOT_CALLER_APPS = frozenset({"AppDial", "AppDial2", "AppQueue"})
_NO_AGENT_STATUSES = frozenset({"FULL", "JOINEMPTY", "LEAVEEMPTY", "JOINUNAVAIL", "LEAVEUNAVAIL"})


class CallTracker(GapResync):
    """Pure state machine: `feed(event)` returns the CallRecords that event completed.
    Its handling of gaps in the event stream (LinkLost, Resynced) is `call_gap.GapResync`."""

    def __init__(self, directory: Directory, hotline_contexts: dict[str, frozenset[str]]):
        self.directory = directory
        self.hotline_contexts = hotline_contexts          # pbx id -> dialplan contexts of hotlines
        self.calls: dict[tuple[str, str], _Live] = {}      # (pbx, linkedid)
        self.channels: dict[tuple[str, str], str] = {}     # (pbx, uniqueid) -> linkedid
        self.blind_since: dict[str, datetime] = {}         # pbx -> its last event before the link was lost
        self.last_seen: dict[str, datetime] = {}           # pbx -> its latest event (the PBX's clock)
        self.open_across_gap: set[tuple[str, str]] = set()  # (pbx, linkedid): open while the link was down
        self.spanned: dict[tuple[str, str], None] = {}     # finished calls that were (pbx, call id), newest last
        self.carried: dict[str, set[tuple[str, str]]] = {}  # pbx -> calls resumed from before this run
        self._dispatch = {
            ev.ChannelCreated: self._created,
            ev.CallerIdChanged: self._caller_id,
            ev.DialplanStep: self._dialplan,
            ev.IvrChoiceMade: self._ivr_choice,
            ev.AfterHoursReached: self._after_hours,
            ev.QueueExited: self._queue_exit,
            ev.QueueJoined: self._joined,
            ev.QueueAbandoned: self._abandoned,
            ev.QueueLeft: self._left,
            ev.AgentRinging: self._ringing,
            ev.AgentNoAnswer: self._no_answer,
            ev.AgentConnected: self._connected,
            ev.AgentCompleted: self._completed,
            ev.ChannelHungup: self._hungup,
            ev.DialStarted: self._dial_started,
            ev.DialEnded: self._dial_ended,
            ev.Resynced: self._resynced,
            ev.LinkLost: self._link_lost,
        }

    @property
    def open_calls(self) -> int:
        return len(self.calls)

    def feed(self, event: ev.Event) -> list[CallRecord]:
        handler = self._dispatch.get(type(event))
        if handler is None:
            return []
        if type(event) is not ev.LinkLost:
            if event.pbx not in self.last_seen:          # calls open before this run's first event
                self.carried[event.pbx] = {k for k in self.calls if k[0] == event.pbx}   # (a checkpoint's)
            self.last_seen[event.pbx] = event.at
        return handler(event) or []

    # --- helpers ------------------------------------------------------------------------------

    def _is_hotline(self, pbx: str, context: str) -> bool:
        contexts = self.hotline_contexts.get(pbx)
        return context in contexts if contexts is not None else context in self.hotline_contexts.get("*", ())

    def _live(self, pbx: str, uniqueid: str, linkedid: str, at: datetime, create: bool) -> _Live | None:
        key = (pbx, linkedid or self.channels.get((pbx, uniqueid), uniqueid))
        live = self.calls.get(key)
        if live is None and create:
            # first sight of a call already under way: we were not connected when it began
            live = self.calls[key] = _Live(pbx, key[1], at, reconciled=True)
        if live is not None and uniqueid not in live.channels and create:
            live.channels.add(uniqueid)
            self.channels[(pbx, uniqueid)] = key[1]
        if live is not None:
            live.last_at = at
        return live

    def _claim_caller_leg(self, live: _Live, uniqueid: str) -> None:
        if live.caller_leg is None:
            live.caller_leg = uniqueid

    # --- channels -----------------------------------------------------------------------------

    def _created(self, e: ev.ChannelCreated):
        key = (e.pbx, e.linkedid)
        live = self.calls.get(key)
        if live is None:
            live = self.calls[key] = _Live(e.pbx, e.linkedid, e.at)
        live.channels.add(e.uniqueid)
        live.last_at = e.at
        self.channels[(e.pbx, e.uniqueid)] = e.linkedid
        if self._is_hotline(e.pbx, e.context):
            live.hotline_channels.append(e.uniqueid)
            if not live.hotline:
                live.hotline = e.exten
            if e.caller_num not in UNKNOWN_IDS and not live.caller_num:
                live.caller_num, live.caller_name = e.caller_num, _name(e.caller_name)

    def _caller_id(self, e: ev.CallerIdChanged):
        live = self._live(e.pbx, e.uniqueid, e.linkedid, e.at, create=False)
        if live is None or e.caller_num in UNKNOWN_IDS:
            return
        if e.uniqueid == live.caller_leg or (not live.caller_num and e.uniqueid in live.hotline_channels):
            live.caller_num, live.caller_name = e.caller_num, _name(e.caller_name)

    def _dialplan(self, e: ev.DialplanStep):
        if not self._is_hotline(e.pbx, e.context) or e.application in _NOT_CALLER_APPS:
            return
        live = self._live(e.pbx, e.uniqueid, e.linkedid, e.at, create=True)
        if live.caller_leg is None:
            live.caller_leg = e.uniqueid
            if not live.hotline:
                live.hotline = e.exten
        if e.uniqueid == live.caller_leg and e.exten != "h":
            stint = live.open_stint()
            if stint is not None and stint.end is StintEnd.ABANDONED and stint.left_at is not None:
                # the caller is still in the dialplan after leaving the queue: it did not hang up
                stint.end = StintEnd.TIMED_OUT

    def _hungup(self, e: ev.ChannelHungup):
        linkedid = self.channels.pop((e.pbx, e.uniqueid), None)
        if linkedid is None:
            return None
        live = self.calls.get((e.pbx, linkedid))
        if live is None:
            return None
        live.channels.discard(e.uniqueid)
        live.last_at = e.at
        if e.uniqueid == live.caller_leg:
            for stint in live.stints:
                if stint.end is None:
                    stint.end = StintEnd.ABANDONED
                    stint.left_at = stint.left_at or e.at
            for stint in live.direct_answered:       # talk time of a direct call: until the caller leaves
                if stint.talk_seconds is None and stint.answered_at is not None:
                    stint.talk_seconds = round((e.at - stint.answered_at).total_seconds(), 1)
        if not live.channels:
            return self._finish(live, e.at)
        return None

    # --- dialplan markers ---------------------------------------------------------------------

    def _ivr_choice(self, e: ev.IvrChoiceMade):
        live = self._live(e.pbx, e.uniqueid, e.linkedid, e.at, create=True)
        self._claim_caller_leg(live, e.uniqueid)
        live.ivr_choice, live.ivr_queue = e.choice, e.queue

    def _after_hours(self, e: ev.AfterHoursReached):
        live = self._live(e.pbx, e.uniqueid, e.linkedid, e.at, create=True)
        self._claim_caller_leg(live, e.uniqueid)
        live.after_hours = True
        if e.hotline and not live.hotline:
            live.hotline = e.hotline

    def _queue_exit(self, e: ev.QueueExited):
        live = self._live(e.pbx, e.uniqueid, e.linkedid, e.at, create=False)
        stint = live and live.open_stint(e.queue)
        if stint is None or stint.end is StintEnd.ANSWERED:
            return
        status = e.status.upper()
        if status == "TIMEOUT":
            stint.end = StintEnd.TIMED_OUT
        elif status in _NO_AGENT_STATUSES:
            stint.end = StintEnd.NO_AGENT
        stint.left_at = stint.left_at or e.at

    # --- queue --------------------------------------------------------------------------------

    def _joined(self, e: ev.QueueJoined):
        live = self._live(e.pbx, e.uniqueid, e.linkedid, e.at, create=True)
        self._claim_caller_leg(live, e.uniqueid)
        for previous in live.stints:
            if previous.end is StintEnd.ANSWERED:
                previous.transferred = True
            elif previous.end is None:
                previous.end, previous.left_at = StintEnd.ABANDONED, e.at
        live.stints.append(Stint(e.queue, self.directory.department_of_queue(e.pbx, e.queue), e.at))

    def _stint(self, e, queue: str) -> Stint | None:
        live = self._live(e.pbx, e.uniqueid, e.linkedid, e.at, create=False)
        return live.open_stint(queue) if live is not None else None

    def _abandoned(self, e: ev.QueueAbandoned):
        stint = self._stint(e, e.queue)
        if stint is not None and stint.end is None:
            stint.end, stint.left_at = StintEnd.ABANDONED, e.at

    def _left(self, e: ev.QueueLeft):
        stint = self._stint(e, e.queue)
        if stint is not None and stint.left_at is None:
            stint.left_at = e.at

    def _ringing(self, e: ev.AgentRinging):
        stint = self._stint(e, e.queue)
        if stint is not None:
            stint.rings += 1

    def _no_answer(self, e: ev.AgentNoAnswer):
        stint = self._stint(e, e.queue)
        if stint is not None:
            stint.no_answers.append(e.member_name or e.interface)

    def _connected(self, e: ev.AgentConnected):
        stint = self._stint(e, e.queue)
        if stint is None:
            return
        stint.end, stint.answered_at = StintEnd.ANSWERED, e.at
        stint.left_at = stint.left_at or e.at
        stint.interface, stint.member_name = e.interface, e.member_name
        stint.agent = self.directory.agent_of(e.interface, e.member_name, e.pbx)

    def _completed(self, e: ev.AgentCompleted):
        live = self._live(e.pbx, e.uniqueid, e.linkedid, e.at, create=False)
        if live is None:
            return
        for stint in reversed(live.stints):
            if stint.queue == e.queue and stint.end is StintEnd.ANSWERED and stint.talk_seconds is None:
                stint.talk_seconds = float(e.talk_time)
                if stint.agent is None and not stint.member_name:     # answered while the link was down
                    stint.interface, stint.member_name = e.interface, e.member_name
                    stint.agent = self.directory.agent_of(e.interface, e.member_name, e.pbx)
                stint.completed_by = "transfer" if stint.transferred else e.reason
                return

    # --- direct dials -------------------------------------------------------------------------

    def _dial_started(self, e: ev.DialStarted):
        """The caller leg, outside any queue, dials an agent's phone directly (the dialplan
        honouring the owner route): a stint of its own, on the pseudo-queue "direct"."""
        live = self._live(e.pbx, e.uniqueid, e.linkedid, e.at, create=False)
        if live is None or e.uniqueid != live.caller_leg:
            return
        if any(s.end is None for s in live.stints):
            return                                   # the Queue application ringing its members
        agent = self.directory.agent_of_channel(e.dest_channel, e.pbx)
        if agent is None:
            return
        department = self.directory.department_of_hotline(live.hotline, live.pbx)
        stint = Stint(DIRECT, department, e.at, agent=agent, interface=e.dest_channel.split(";")[0])
        stint.rings = 1
        live.stints.append(stint)
        live.direct[e.dest_uniqueid] = stint

    def _dial_ended(self, e: ev.DialEnded):
        live = self._live(e.pbx, e.uniqueid, e.linkedid, e.at, create=False)
        stint = live.direct.pop(e.dest_uniqueid, None) if live is not None else None
        if stint is None:
            return
        if e.status == "ANSWER":
            stint.end, stint.answered_at = StintEnd.ANSWERED, e.at
            live.direct_answered.append(stint)
        else:
            stint.end = StintEnd.NO_AGENT
            stint.no_answers.append(stint.agent or stint.interface)
        stint.left_at = e.at

    # --- completion ---------------------------------------------------------------------------

    def _finish(self, live: _Live, at: datetime) -> list[CallRecord]:
        del self.calls[(live.pbx, live.linkedid)]
        leg = live.caller_leg or (live.hotline_channels[-1] if live.hotline_channels else None)
        if (live.pbx, live.linkedid) in self.open_across_gap:
            self.open_across_gap.discard((live.pbx, live.linkedid))
            if leg is not None:
                self.spanned[(live.pbx, leg)] = None
                if len(self.spanned) > 10000:               # nobody asks (no queue_log): forget the oldest
                    del self.spanned[next(iter(self.spanned))]
        if leg is None:
            return []            # not a hotline call (an agent's own call, a callback...)
        department = self.directory.department_of_hotline(live.hotline, live.pbx)
        if department is None and live.stints:
            department = live.stints[0].department
        return [CallRecord(
            pbx=live.pbx, id=leg, linkedid=live.linkedid, caller_num=live.caller_num,
            caller_name=live.caller_name, hotline=live.hotline, department=department,
            started_at=live.started_at, ended_at=at, outcome=_outcome(live),
            ivr_choice=live.ivr_choice, ivr_queue=live.ivr_queue, after_hours=live.after_hours,
            reconciled=live.reconciled, stints=live.stints,
        )]


def _name(name: str) -> str:
    return "" if name in UNKNOWN_IDS else name


def _outcome(live: _Live) -> Outcome:
    return outcome_of(live.stints, live.after_hours)


def outcome_of(stints: list[Stint], after_hours: bool) -> Outcome:
    """A call's overall outcome from its stints (also used when queue_log reconciles a call)."""
    if not stints:
        return Outcome.AFTER_HOURS if after_hours else Outcome.ABANDONED_IVR
    last = stints[-1]
    if len(stints) > 1 and any(s.end is StintEnd.ANSWERED for s in stints[:-1]):
        return Outcome.TRANSFERRED
    return {
        StintEnd.ANSWERED: Outcome.ANSWERED,
        StintEnd.ABANDONED: Outcome.ABANDONED,
        StintEnd.TIMED_OUT: Outcome.TIMED_OUT,
        StintEnd.NO_AGENT: Outcome.NO_AGENT,
    }.get(last.end, Outcome.UNKNOWN)
