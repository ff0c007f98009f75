"""The shared pieces of the table definitions: the `metadata` every table joins and the
`UTCDateTime` column type (timezone-aware, stored UTC)."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, MetaData, TypeDecorator


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetimes, stored as UTC on every backend (SQLite keeps no zone)."""
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use timezone-aware times")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect):
        return None if value is None else value.replace(tzinfo=timezone.utc)


metadata = MetaData()
