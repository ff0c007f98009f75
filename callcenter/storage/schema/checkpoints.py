"""The tables of restarts: `checkpoints` (open calls and sessions, the agent desk) and
`observation_windows` (when the service and each AMI link ran) (migration 0007)."""
from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text

from .base import UTCDateTime, metadata


# --- checkpoints and observation windows (migration 0007, issue 9 items 2 and 9) ------------

checkpoints = Table(
    "checkpoints", metadata,
    Column("name", String(32), primary_key=True),             # "calls", "presence", "desk"
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
