"""Read positions in the PBXes' CDR files (migration 0009; callcenter/cdr/)."""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, String, Table, Text

from .base import UTCDateTime, metadata

cdr_positions = Table(
    "cdr_positions", metadata,
    Column("pbx", String(64), primary_key=True),
    Column("path", Text, nullable=False),
    Column("inode", BigInteger, nullable=False),              # the file read (rotation changes it)
    Column("offset", BigInteger, nullable=False),             # read again from here: nothing unresolved before
    Column("updated_at", UTCDateTime, nullable=False),
)
