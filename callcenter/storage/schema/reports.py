"""The report archive and the record of its deliveries (migration 0013, issue 13).

`report_archive`: one row per (day, scope, format): the rendered report (``content``, its
``sha256``), the JSON figures it was rendered from, the time it was judged at (``as_of``; null
when the day was over) and ``generated_at``. Regenerating replaces the row in place (same id, so
a link already sent keeps working; ``revision`` counts the regenerations).

`report_deliveries`: one row per report, channel and recipient, claimed (unique ``key``) before
it is sent, so a report is delivered once whatever the restarts and instances; ``failed`` rows
are retried, ``skipped`` ones (an empty report, ``send_if_empty: false``) are final.
"""
from __future__ import annotations

from sqlalchemy import Column, Date, Index, Integer, LargeBinary, String, Table, Text, UniqueConstraint

from .base import UTCDateTime, metadata

report_archive = Table(
    "report_archive", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("report", String(32), nullable=False),                 # daily
    Column("day", Date, nullable=False),                          # in the configured time zone
    Column("scope", String(64), nullable=False),                  # a department id, or "all"
    Column("format", String(8), nullable=False),                  # html, xlsx, csv, json
    Column("content", LargeBinary, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("figures", Text, nullable=False),                      # the report JSON it was rendered from
    Column("as_of", UTCDateTime),                                 # null: the day was over
    Column("generated_at", UTCDateTime, nullable=False),
    Column("revision", Integer, nullable=False, default=1),
    UniqueConstraint("report", "day", "scope", "format", name="uq_report_archive_day"),
)
Index("ix_report_archive_day", report_archive.c.day)

report_deliveries = Table(
    "report_deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False, unique=True),      # claimed before sending: sent once
    Column("archive_id", Integer, nullable=False),
    Column("day", Date, nullable=False),
    Column("channel", String(16), nullable=False),                # email, panel
    Column("recipient", String(255), nullable=False),
    Column("status", String(16), nullable=False),                 # claimed, sent, failed, skipped
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
)
Index("ix_report_deliveries_day", report_deliveries.c.day, report_deliveries.c.status)
