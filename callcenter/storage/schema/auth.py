"""The users and authentication tables: users, API tokens, panel sessions, log-in failures
(migration 0005)."""
from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKeyConstraint, Index, Integer, String, Table, Text

from .base import UTCDateTime, metadata


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
