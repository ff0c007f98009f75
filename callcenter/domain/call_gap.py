"""Gaps in the event stream: what the call tracker does when the AMI link is lost (`LinkLost`) and
after the resync snapshot (`Resynced`: live channels, waiting callers): calls open across the gap,
channels that vanished meanwhile, callers that joined or were answered while we were blind, and
`spanned_gap` for queue_log's reconciler. A mixin of `calls.CallTracker`; pure, no clock."""
from __future__ import annotations

from datetime import datetime, timedelta

from . import events as ev
from .live_call import UNKNOWN_IDS, _Live
from .records import Stint, StintEnd


class GapResync:
    """The gap and resync handlers of `CallTracker` (uses its calls, channels, blind_since,
    carried, open_across_gap, spanned, directory and `_finish`)."""

    def _link_lost(self, e: ev.LinkLost):
        self.blind_since.setdefault(e.pbx, self.last_seen.get(e.pbx, e.at))

    def _resynced(self, e: ev.Resynced):
        """After a gap in our view. Calls open across it are noted (`spanned_gap`); those the
        snapshot shows changed, and those resumed from before this run, are `reconciled`
        (partly seen). Channels the PBX no longer has ended while we were blind: their open
        stints end `unknown` at the last moment we saw (never at the reconnect; queue_log may
        tell the truth later). Callers the PBX reports waiting, and calls answered meanwhile,
        take the PBX's own figures (QueueEntry Wait, CoreShowChannel BridgedDuration)."""
        lost = self.blind_since.pop(e.pbx, None)
        carried = self.carried.pop(e.pbx, set())
        waiting = {w.uniqueid: w for w in e.waiting}
        alive = {c.uniqueid: c for c in e.channels}
        done = []
        for key, live in list(self.calls.items()):
            if key[0] != e.pbx:
                continue
            self.open_across_gap.add(key)        # whether it missed anything: queue_log can tell
            if key in carried:
                live.reconciled = True           # it went on while this process was not running
            gone = live.channels - e.live_channels
            if not gone:
                self._caught_up(live, waiting, alive, e.at, lost)
                continue
            live.reconciled = True
            for uniqueid in gone:
                self.channels.pop((e.pbx, uniqueid), None)
            live.channels -= gone
            until = max(lost or live.last_at or e.at, live.started_at)
            if live.caller_leg in gone or not live.channels:
                for stint in live.stints:
                    if stint.end is None:
                        stint.end, stint.left_at = StintEnd.UNKNOWN, stint.left_at or until
                    elif stint.end is StintEnd.ANSWERED and stint.talk_seconds is None and stint.answered_at:
                        stint.talk_seconds = round(max(0.0, (until - stint.answered_at).total_seconds()), 1)
            if not live.channels:
                done.extend(self._finish(live, max(live.last_at or until, until)))
        for w in e.waiting:
            if (e.pbx, w.uniqueid) not in self.channels:
                self._waiting_caller(e, w, alive.get(w.uniqueid))
        return done

    def _caught_up(self, live: _Live, waiting: dict, alive: dict, at: datetime, lost: datetime | None) -> None:
        """A call alive on both sides of the gap: what its caller leg did meanwhile."""
        leg = live.caller_leg
        w = waiting.get(leg)
        if w is not None:
            stint = live.open_stint(w.queue)
            if stint is None or stint.end is not None:        # joined while we were blind
                live.reconciled = True
                live.stints.append(Stint(w.queue, self.directory.department_of_queue(live.pbx, w.queue),
                                         at - timedelta(seconds=w.wait)))
            return
        channel = alive.get(leg)
        stint = live.open_stint()
        if channel is not None and channel.in_bridge and stint is not None and stint.end is None:
            stint.end = StintEnd.ANSWERED                  # answered while we were blind
            live.reconciled = True
            # since BridgedDuration if the PBX says; else the last moment we saw (queue_log corrects it)
            since = at - timedelta(seconds=channel.bridged) if channel.bridged is not None else (lost or at)
            stint.answered_at = stint.left_at = max(stint.entered_at, since)

    def _waiting_caller(self, e: ev.Resynced, w: ev.WaitingCaller, channel: ev.LiveChannel | None) -> None:
        """A caller waiting in a queue that we never saw: tracked from here, its wait the PBX's."""
        linkedid = channel.linkedid if channel is not None and channel.linkedid else w.uniqueid
        entered = e.at - timedelta(seconds=w.wait)
        started = e.at - timedelta(seconds=channel.duration) if channel is not None else entered
        live = self.calls.get((e.pbx, linkedid))
        if live is None:
            live = self.calls[(e.pbx, linkedid)] = _Live(e.pbx, linkedid, min(started, entered), reconciled=True)
        live.channels.add(w.uniqueid)
        live.last_at = e.at
        self.channels[(e.pbx, w.uniqueid)] = linkedid
        self._claim_caller_leg(live, w.uniqueid)
        if not live.caller_num and w.caller_num not in UNKNOWN_IDS:
            live.caller_num = w.caller_num
        if channel is not None and not live.hotline and self._is_hotline(e.pbx, channel.context):
            live.hotline = channel.exten
        live.stints.append(Stint(w.queue, self.directory.department_of_queue(e.pbx, w.queue), entered))

    def spanned_gap(self, pbx: str, call_id: str) -> bool:
        """Was this finished call open while the link was down (asked once per call)?"""
        return self.spanned.pop((pbx, call_id), False) is None
