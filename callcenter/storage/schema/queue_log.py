"""The durable read position of each PBX's queue_log file (migration 0006; callcenter/queuelog/)."""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, String, Table, Text

from .base import UTCDateTime, metadata


# --- queue_log read positions (migration 0006, issue 9 item 1; callcenter/queuelog/) ---------

queue_log_positions = Table(
    "queue_log_positions", metadata,
    Column("pbx", String(64), primary_key=True),
    Column("path", Text, nullable=False),
    Column("inode", BigInteger, nullable=False),              # the file read (rotation changes it)
    Column("offset", BigInteger, nullable=False),             # read again from here: nothing unresolved before
    Column("updated_at", UTCDateTime, nullable=False),
)
