"""Business hours: daily windows (with breaks) on workdays, judged in local time.

The workday predicate is passed in (the calendar adapter knows the statutory schedule), so
these rules stay pure.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Callable
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class BusinessHours:
    windows: tuple[tuple[time, time], ...]
    tz: ZoneInfo

    def is_open(self, at: datetime, is_workday: Callable[[date], bool]) -> bool:
        local = at.astimezone(self.tz)
        if not is_workday(local.date()):
            return False
        moment = local.time()
        return any(start <= moment < end for start, end in self.windows)
