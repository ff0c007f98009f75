"""Table definitions. Alembic migrations in ``migrations/versions`` create exactly these.

The tables live in `callcenter.storage.schema`, one module per concern; this module re-exports
them all so that `from callcenter.storage import tables as t; t.calls` keeps working."""
from __future__ import annotations

from .schema.base import UTCDateTime, metadata
from .schema.calls import calls, stints, agent_sessions
from .schema.followup import tasks, task_events, skipped_misses, callback_attempts, notifications
from .schema.cases import cases, case_calls, case_events
from .schema.coverage import coverage_incidents, coverage_overrides
from .schema.pipeline import call_failures
from .schema.auth import users, api_tokens, web_sessions, login_failures
from .schema.checkpoints import checkpoints, observation_windows
from .schema.queue_log import queue_log_positions
from .schema.cdr import cdr_positions
from .schema.panel import PANEL_COLUMNS                 # notifications.shown_at, acked_at, acked_by (0010)
from .schema.ivr import ivr_sessions, TASK_COLUMNS as IVR_TASK_COLUMNS   # IVR sessions (0012, issue 12)
from .schema.probes import probes                       # hotline probes (0014, issue 13)
from .schema.reports import report_archive, report_deliveries   # the report archive and deliveries (0013)

__all__ = [
    "UTCDateTime", "metadata", "calls", "stints", "agent_sessions", "tasks", "task_events",
    "skipped_misses", "callback_attempts", "notifications", "cases", "case_calls", "case_events",
    "coverage_incidents", "coverage_overrides", "call_failures", "users", "api_tokens",
    "web_sessions", "login_failures", "checkpoints", "observation_windows", "queue_log_positions",
    "cdr_positions", "PANEL_COLUMNS", "ivr_sessions", "IVR_TASK_COLUMNS", "probes", "report_archive",
    "report_deliveries",
]
