"""The tables of tracked calls: `calls` (one row per hotline call), its queue `stints`, and
`agent_sessions` (login, pause, unreachable) (migration 0001).

A call and its stints are written once, together, when the call is complete (`Store.save_calls`),
and never changed after (only the calls' after-commit flags are). So each stint also carries the
facts the reports count it by, worked out then (migration 0016, issue 13): its call's start and
after-hours flag, its wait and talk time in whole microseconds (`domain/metrics.py`
`wait_micros`, `talk_micros`) and whether it is the call's last stint; and each call its number of
stints. A day's report then reads one range of one covering index (`ix_stints_day`) instead of
joining the day's calls to their stints and working those out per row."""
from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, ForeignKeyConstraint, Index, Integer, String, Table, Text

from .base import UTCDateTime, metadata


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
    Column("stint_count", Integer, nullable=False, default=0, server_default="0"),     # 0016
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
    # the report's facts (0016): filled by Store.save_calls, backfilled by the migration
    Column("call_started_at", UTCDateTime),
    Column("call_after_hours", Boolean),
    Column("wait_us", BigInteger),
    Column("talk_us", BigInteger),
    Column("is_last", Boolean),
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
