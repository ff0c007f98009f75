"""The follow-up tables: tasks from unanswered calls, their events, skipped misses, callback
attempts, notifications; and the `followup_done` flag on calls (migration 0002)."""
from __future__ import annotations

from sqlalchemy import (Boolean, Column, Float, ForeignKeyConstraint, Index, Integer, String, Table, Text,
                        false as sa_false, text)

from .base import UTCDateTime, metadata
from .calls import calls


# --- follow-up (migration 0002) -------------------------------------------------------------

calls.append_column(Column("followup_done", Boolean, nullable=False, default=False, server_default=sa_false()))
Index("ix_calls_followup_pending", calls.c.followup_done)

tasks = Table(
    "tasks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("caller_num", String(64), nullable=False),
    Column("department", String(64), nullable=False),
    Column("pbx", String(64), nullable=False),
    Column("queue", String(128)),                                 # of the first miss, for the report
    Column("status", String(16), nullable=False),                 # open, closed
    Column("reason", String(32), nullable=False),                 # of the first miss
    Column("created_at", UTCDateTime, nullable=False),
    Column("first_missed_at", UTCDateTime, nullable=False),
    Column("last_missed_at", UTCDateTime, nullable=False),
    Column("misses", Integer, nullable=False, default=1),
    Column("short_abandon", Boolean, nullable=False, default=False),
    Column("deadline", UTCDateTime, nullable=False),
    Column("deadline_provisional", Boolean, nullable=False, default=False),
    Column("assignee", String(64)),                               # null: the department pool
    Column("assigned_via", String(16), nullable=False),
    Column("pooled_from_unmapped", Boolean, nullable=False, default=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime),
    Column("contacted_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    Column("closure", String(32)),
    Column("closed_by", String(64)),
    Column("note", Text, nullable=False, default=""),
    Index("ux_tasks_one_open", "caller_num", "department", unique=True,
          sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'")),
    Index("ix_tasks_deadline", "status", "deadline"),
)

task_events = Table(
    "task_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(16), nullable=False),       # miss, closed, attempt, assigned, note, skipped
    Column("pbx", String(64)),
    Column("call_id", String(64)),
    Column("detail", Text, nullable=False, default=""),
    ForeignKeyConstraint(["task_id"], ["tasks.id"], ondelete="CASCADE"),
    Index("ix_task_events_task", "task_id"),
)

skipped_misses = Table(
    "skipped_misses", metadata,
    Column("pbx", String(64), primary_key=True),
    Column("call_id", String(64), primary_key=True),
    Column("caller_num", String(64), nullable=False),
    Column("department", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("reason", String(32), nullable=False),
    Column("why", String(32), nullable=False),         # withheld_number, short_abandon
)

callback_attempts = Table(
    "callback_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(128), nullable=False, unique=True),      # idempotency key = ActionID
    Column("task_id", Integer),
    Column("pbx", String(64), nullable=False),
    Column("agent", String(64)),
    Column("number", String(64), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("answered_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("result", String(16), nullable=False),                 # pending, answered, no_answer, busy, failed
    Column("reason_code", String(8), nullable=False, default=""),
    Column("talk_seconds", Float),
    Column("uniqueid", String(64)),
    Index("ix_callback_attempts_task", "task_id"),
)

notifications = Table(
    "notifications", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False, unique=True),      # claimed before sending: sent once
    Column("channel", String(16), nullable=False),
    Column("recipient", String(255), nullable=False),
    Column("subject", String(255), nullable=False, default=""),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),                 # claimed, sent, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
)
