"""The first-ask case tables (首问负责制): cases, the calls of a case, case events; and the
`cases_done` flag on calls (migration 0003)."""
from __future__ import annotations

from sqlalchemy import (Boolean, Column, ForeignKeyConstraint, Index, Integer, String, Table, Text,
                        false as sa_false, text)

from .base import UTCDateTime, metadata
from .calls import calls


# --- first-ask cases (migration 0003) -------------------------------------------------------

calls.append_column(Column("cases_done", Boolean, nullable=False, default=False, server_default=sa_false()))
Index("ix_calls_cases_pending", calls.c.cases_done)

cases = Table(
    "cases", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("caller_num", String(64), nullable=False),
    Column("department", String(64), nullable=False),
    Column("pbx", String(64), nullable=False),
    Column("queue", String(128)),
    Column("owner", String(64)),                                   # the agent who answered first
    Column("status", String(16), nullable=False),                  # open, resolved, escalated, out_of_scope
    Column("item", String(255), nullable=False, default=""),       # 事项
    Column("disposition", String(32)),                             # the latest one
    Column("opened_at", UTCDateTime, nullable=False),
    Column("deadline", UTCDateTime),
    Column("deadline_provisional", Boolean, nullable=False, default=False),
    Column("closed_at", UTCDateTime),
    Column("resolved_first_contact", Boolean, nullable=False, default=False),
    Column("knowledge_gap", Boolean, nullable=False, default=False),
    Column("work_order", String(64), nullable=False, default=""),  # 12345 work-order number
    Column("directed_to", String(255), nullable=False, default=""),
    Index("ux_cases_one_open", "caller_num", "department", unique=True,
          sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'")),
    Index("ix_cases_caller", "caller_num", "department", "status"),
    Index("ix_cases_opened", "opened_at"),
)

case_calls = Table(
    "case_calls", metadata,
    Column("pbx", String(64), primary_key=True),
    Column("call_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),                      # the answered stint
    Column("case_id", Integer, nullable=False),
    Column("agent", String(64)),
    Column("answered_at", UTCDateTime, nullable=False),
    Column("disposition", String(32)),                             # null: wrap-up pending
    Column("disposed_at", UTCDateTime),
    ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
    Index("ix_case_calls_case", "case_id"),
    Index("ix_case_calls_pending", "agent", "disposition"),
)

case_events = Table(
    "case_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(16), nullable=False),     # opened, joined, disposition, reassigned, note, notified
    Column("actor", String(64), nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
    Index("ix_case_events_case", "case_id"),
)
