"""The hotline probes table (migration 0014, issue 13): one row per test call placed to a
published hotline number, with whether and how fast it was answered (callcenter/probes/)."""
from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from .base import UTCDateTime, metadata

probes = Table(
    "probes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),   # the Originate's ActionID
    Column("pbx", String(64), nullable=False),
    Column("hotline", String(32), nullable=False),
    Column("department", String(64)),
    Column("slot", String(32)),                 # scheduled slot (local 'YYYY-MM-DDTHH:MM'); NULL: manual
    Column("trigger", String(16), nullable=False, default="schedule"),   # schedule, manual
    Column("placed_at", UTCDateTime, nullable=False),
    Column("answered_at", UTCDateTime),
    Column("answer_seconds", Float),
    Column("result", String(16), nullable=False, default="pending"),
    # pending, answered, no_answer, busy, congestion, unreachable, link_down, no_response, failed
    Column("reason", Text, nullable=False, default=""),   # detail: Asterisk's reason code or the error
    Column("uniqueid", String(64)),             # the probe's channel, once answered
    Index("ux_probes_slot", "pbx", "hotline", "slot", unique=True),
    Index("ix_probes_placed", "placed_at"),
)
