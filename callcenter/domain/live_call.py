"""The state of one call in progress (`_Live`) that the call tracker folds events into, and the
caller ids Asterisk uses for "unknown"; shared by calls.py, call_gap.py and tracker_state.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .records import Stint

UNKNOWN_IDS = ("", "<unknown>")


@dataclass
class _Live:
    pbx: str
    linkedid: str
    started_at: datetime
    channels: set[str] = field(default_factory=set)
    hotline_channels: list[str] = field(default_factory=list)
    caller_leg: str | None = None
    caller_num: str = ""
    caller_name: str = ""
    hotline: str = ""
    ivr_choice: str = ""
    ivr_queue: str = ""
    after_hours: bool = False
    reconciled: bool = False
    stints: list[Stint] = field(default_factory=list)
    last_at: datetime | None = None
    direct: dict[str, Stint] = field(default_factory=dict)        # dest uniqueid -> ringing direct stint
    direct_answered: list[Stint] = field(default_factory=list)

    def open_stint(self, queue: str | None = None) -> Stint | None:
        for stint in reversed(self.stints):
            if queue is None or stint.queue == queue:
                return stint
        return None
