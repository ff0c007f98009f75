"""Table definitions. Alembic migrations in ``migrations/versions`` create exactly these."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, Float, ForeignKeyConstraint, Index, Integer,
                        MetaData, String, Table, Text, TypeDecorator, false as sa_false, text)


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

# --- A/B coverage (migration 0004) ----------------------------------------------------------

coverage_incidents = Table(
    "coverage_incidents", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("post", String(64), nullable=False),
    Column("department", String(64), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
    Column("start_of_day", Boolean, nullable=False, default=False),
    Column("fallback", String(64), nullable=False, default=""),
    Index("ux_coverage_one_open", "post", unique=True,
          sqlite_where=text("closed_at IS NULL"), postgresql_where=text("closed_at IS NULL")),
    Index("ix_coverage_incidents_opened", "opened_at"),
)

coverage_overrides = Table(
    "coverage_overrides", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("agent", String(64), nullable=False),
    Column("action", String(16), nullable=False),          # pause, logout
    Column("post", String(64), nullable=False),
    Column("by", String(64), nullable=False),              # the head who overrode the guard
    Column("reason", Text, nullable=False),
    Column("refusal", Text, nullable=False),               # what the guard said
)

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

# --- users, API tokens, panel sessions, log-in failures (migration 0005, issue 10) ----------
# Secrets are never stored: passwords as argon2id hashes, tokens and session ids as SHA-256.

users = Table(
    "users", metadata,
    Column("id", String(64), primary_key=True),
    Column("role", String(16), nullable=False),             # agent, head, office, admin, pbx
    Column("departments", Text, nullable=False, default=""),   # a head's departments, comma-separated
    Column("agent", String(64)),                             # the configured agent id (role agent)
    Column("password_hash", Text),                           # argon2id; null: no panel log-in
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(64), nullable=False),
    Column("prefix", String(16), nullable=False),            # shown in lists, to revoke by
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
    Index("ix_api_tokens_user", "user_id"),
)

web_sessions = Table(
    "web_sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("csrf_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),                          # log-out
    ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
    Index("ix_web_sessions_user", "user_id"),
)

login_failures = Table(
    "login_failures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("user_id", String(64), nullable=False),            # as typed (may not exist)
    Column("address", String(64), nullable=False),
    Index("ix_login_failures_user", "user_id", "at"),
    Index("ix_login_failures_address", "address", "at"),
)

# --- checkpoints and observation windows (migration 0007, issue 9 items 2 and 9) ------------

checkpoints = Table(
    "checkpoints", metadata,
    Column("name", String(32), primary_key=True),             # "calls", "presence"
    Column("state", Text, nullable=False),                    # JSON (callcenter/domain/tracker_state.py)
    Column("saved_at", UTCDateTime, nullable=False),
    Column("instance", String(64), nullable=False),
)

observation_windows = Table(
    "observation_windows", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("instance", String(64), nullable=False),           # one id per process run
    Column("kind", String(16), nullable=False),               # "service" (running) or "link" (AMI up)
    Column("pbx", String(64), nullable=False, default=""),    # "" for kind "service"
    Column("started_at", UTCDateTime, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),           # last heartbeat while open
    Column("ended_at", UTCDateTime),                          # null: open (or the process died: see seen_at)
    Index("ix_observation_windows_started", "started_at"),
)

# --- queue_log read positions (migration 0006, issue 9 item 1; callcenter/queuelog/) ---------

queue_log_positions = Table(
    "queue_log_positions", metadata,
    Column("pbx", String(64), primary_key=True),
    Column("path", Text, nullable=False),
    Column("inode", BigInteger, nullable=False),              # the file read (rotation changes it)
    Column("offset", BigInteger, nullable=False),             # read again from here: nothing unresolved before
    Column("updated_at", UTCDateTime, nullable=False),
)
