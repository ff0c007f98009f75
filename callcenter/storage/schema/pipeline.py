"""The after-commit pipeline's tables: poison calls (`call_failures`) and the row versions of
cases and tasks (migration 0008)."""
from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text, text

from .base import UTCDateTime, metadata
from .cases import case_events, cases
from .followup import callback_attempts, task_events, tasks


# --- the after-commit pipeline: poison calls and row versions (migration 0008) ---------------
# A call whose case or follow-up step raises gets a row here per step; after
# `pipeline.max_attempts` failures it is parked (its flag is set so the pipeline moves on) and
# listed by `callcenter calls parked` and /api/health. Cases and tasks carry a version that every
# change bumps (compare-and-set); each audit event records the version it produced, so a case's
# or a task's events form one unbroken chain 1, 2, 3... (unique per case or task).

call_failures = Table(
    "call_failures", metadata,
    Column("pbx", String(64), primary_key=True),
    Column("call_id", String(64), primary_key=True),
    Column("step", String(16), primary_key=True),                 # cases, followup
    Column("attempts", Integer, nullable=False, default=0),
    Column("parked", Boolean, nullable=False, default=False),
    Column("error", Text, nullable=False, default=""),
    Column("first_failed_at", UTCDateTime, nullable=False),
    Column("last_failed_at", UTCDateTime, nullable=False),
    Index("ix_call_failures_parked", "parked"),
)

cases.append_column(Column("version", Integer, nullable=False, default=0, server_default=text("0")))
tasks.append_column(Column("version", Integer, nullable=False, default=0, server_default=text("0")))
case_events.append_column(Column("version", Integer))            # null only on rows older than 0008
task_events.append_column(Column("version", Integer))
Index("ux_case_events_version", case_events.c.case_id, case_events.c.version, unique=True)
Index("ux_task_events_version", task_events.c.task_id, task_events.c.version, unique=True)
Index("ix_callback_attempts_pending", callback_attempts.c.result, callback_attempts.c.requested_at)
