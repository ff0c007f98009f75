"""The one place that reads the wall clock. Everything else receives a Clock."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock:
    """A clock for tests and replays: stands still until moved."""

    def __init__(self, at: datetime):
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self.at = at.astimezone(timezone.utc)

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


class StreamClock:
    """The clock of a replay: it stands at the newest event time the service has seen, so what
    the service decides (task creation, deadlines judged "now") is in the trace's time."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("StreamClock needs a timezone-aware datetime")
        self.at = start.astimezone(timezone.utc)

    def now(self) -> datetime:
        return self.at

    def observe(self, moment: datetime) -> None:
        if moment > self.at:
            self.at = moment
