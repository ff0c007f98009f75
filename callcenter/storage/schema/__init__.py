"""The table definitions, one module per concern (calls, follow-up, cases, coverage, pipeline,
users and auth, checkpoints, queue_log, cdr). Import them as `callcenter.storage.tables` (`t.calls`),
which re-exports every table; the Alembic migrations create exactly these."""
# This order is the definition order (the follow-up and case modules add columns to `calls`).
from . import base, calls, followup, cases, coverage, pipeline, auth, checkpoints, queue_log, cdr

__all__ = ["base", "calls", "followup", "cases", "coverage", "pipeline", "auth", "checkpoints", "queue_log", "cdr"]
