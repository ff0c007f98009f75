"""The A/B coverage tables: incidents (a post left uncovered) and overrides (migration 0004)."""
from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text, text

from .base import UTCDateTime, metadata


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
