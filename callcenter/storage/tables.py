"""Table definitions. Alembic migrations in ``migrations/versions`` create exactly these."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (Boolean, Column, DateTime, Float, ForeignKeyConstraint, Index, Integer,
                        MetaData, String, Table, Text, TypeDecorator)


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

calls = Table(
    "calls", metadata,
    Column("pbx", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),          # caller leg Uniqueid
    Column("linkedid", String(64), nullable=False),
    Column("caller_num", String(64), nullable=False, default=""),
    Column("caller_name", String(255), nullable=False, default=""),
    Column("hotline", String(64), nullable=False, default=""),
    Column("department", String(64)),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("ivr_choice", String(32), nullable=False, default=""),
    Column("ivr_queue", String(128), nullable=False, default=""),
    Column("after_hours", Boolean, nullable=False, default=False),
    Column("reconciled", Boolean, nullable=False, default=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Index("ix_calls_started_at", "started_at"),
    Index("ix_calls_caller", "caller_num", "department"),
)

stints = Table(
    "stints", metadata,
    Column("pbx", String(64), primary_key=True),
    Column("call_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("queue", String(128), nullable=False),
    Column("department", String(64)),
    Column("entered_at", UTCDateTime, nullable=False),
    Column("left_at", UTCDateTime),
    Column("answered_at", UTCDateTime),
    Column("end", String(32), nullable=False),
    Column("agent", String(64)),
    Column("member_name", String(255), nullable=False, default=""),
    Column("interface", String(255), nullable=False, default=""),
    Column("talk_seconds", Float),
    Column("completed_by", String(32), nullable=False, default=""),
    Column("transferred", Boolean, nullable=False, default=False),
    Column("rings", Integer, nullable=False, default=0),
    Column("no_answers", Text, nullable=False, default=""),
    ForeignKeyConstraint(["pbx", "call_id"], ["calls.pbx", "calls.id"], ondelete="CASCADE"),
    Index("ix_stints_entered_at", "entered_at"),
)

agent_sessions = Table(
    "agent_sessions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pbx", String(64), nullable=False),
    Column("agent", String(64)),
    Column("interface", String(255), nullable=False),
    Column("member_name", String(255), nullable=False, default=""),
    Column("queue", String(128), nullable=False),
    Column("kind", String(16), nullable=False),           # login, pause, unreachable
    Column("reason", String(255), nullable=False, default=""),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=False),
    Column("reconciled", Boolean, nullable=False, default=False),
    Index("ux_agent_sessions", "pbx", "interface", "queue", "kind", "started_at", unique=True),
    Index("ix_agent_sessions_started_at", "started_at"),
)
