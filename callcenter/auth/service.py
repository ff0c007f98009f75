"""Authenticating requests: bearer tokens, panel sessions, log-in and log-out.

Every request reads the user row again, so a disabled user or a revoked token is refused at
once. A session ends when unused for ``web.session_idle_minutes``, ``web.session_max_hours``
after log-in, at log-out, when the password changes or the user is disabled. Failed log-ins are
rows in ``login_failures``: more than ``web.login_max_failures`` for one user name, or
``web.login_max_failures_per_address`` from one address, within ``web.login_window_minutes``,
and the next attempt is refused (429) before the password is even checked.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, delete, func, insert, select, update

from ..domain import access
from ..storage import tables as t
from . import secrets_


class AuthError(Exception):
    """A refusal: `status` is the HTTP status (401 unknown, 403 forbidden, 429 too many, 400/404/409
    for the user commands), `code` the API's error code."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid"):
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Session:
    """A live panel session: who, and the CSRF token's hash its state changes must match."""
    identity: access.Identity
    csrf_hash: str


@dataclass(frozen=True)
class LoggedIn:
    identity: access.Identity
    session: str                     # the cookie's value (shown once)
    csrf: str                        # the X-CSRF-Token value (shown once)


UNAUTHENTICATED = "sign in: Authorization: Bearer TOKEN, or a session from POST /api/login"


class Authenticator:
    def __init__(self, store, web_settings, clock):
        self.store = store
        self.web = web_settings
        self.clock = clock
        secrets_._dummy()         # made now, so an unknown user's first log-in takes no longer than others

    # --- per request --------------------------------------------------------------------------

    async def bearer(self, token: str) -> access.Identity:
        c = t.api_tokens.c
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(
                select(t.users).join(t.api_tokens, c.user_id == t.users.c.id)
                .where(c.token_hash == secrets_.digest(token), c.revoked_at.is_(None)))).mappings().first()
        if row is None or row["disabled"]:
            raise AuthError("unknown, revoked or disabled token", 401, "unauthenticated")
        return identity_of(row, "token")

    async def session(self, session_id: str) -> Session:
        s = t.web_sessions.c
        now = self.clock.now()
        digest = secrets_.digest(session_id)
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(
                select(t.users, s.created_at.label("s_created"), s.seen_at.label("s_seen"), s.csrf_hash)
                .join(t.web_sessions, s.user_id == t.users.c.id)
                .where(s.id_hash == digest, s.ended_at.is_(None)))).mappings().first()
        if row is None or row["disabled"]:
            raise AuthError("no such session (signed out, expired or disabled); sign in again", 401,
                            "unauthenticated")
        expired = (now - row["s_seen"] > timedelta(minutes=self.web.session_idle_minutes)
                   or now - row["s_created"] > timedelta(hours=self.web.session_max_hours))
        if expired or now - row["s_seen"] > timedelta(seconds=30):      # not a write per request
            async with self.store.begin() as conn:
                await conn.execute(update(t.web_sessions).where(s.id_hash == digest)
                                   .values(**({"ended_at": now} if expired else {"seen_at": now})))
        if expired:
            raise AuthError("the session has expired; sign in again", 401, "session_expired")
        return Session(identity_of(row, "session"), row["csrf_hash"])

    # --- log-in and log-out -------------------------------------------------------------------

    async def login(self, user_id: str, password: str, address: str) -> LoggedIn:
        now = self.clock.now()
        since = now - timedelta(minutes=self.web.login_window_minutes)
        f = t.login_failures.c
        async with self.store.engine.connect() as conn:
            by_user = (await conn.execute(select(func.count()).where(f.user_id == user_id, f.at >= since))).scalar()
            by_address = (await conn.execute(select(func.count()).where(f.address == address, f.at >= since))).scalar()
            row = (await conn.execute(select(t.users).where(t.users.c.id == user_id))).mappings().first()
        if by_user >= self.web.login_max_failures or by_address >= self.web.login_max_failures_per_address:
            raise AuthError(f"too many failed log-ins; try again in {self.web.login_window_minutes:g} minutes",
                            429, "too_many_attempts")
        ok = secrets_.verify_password(row["password_hash"] if row else None, password)
        if not ok or row["disabled"] or row["role"] == access.Role.PBX.value:
            async with self.store.begin() as conn:
                await conn.execute(delete(t.login_failures).where(f.at < since))
                await conn.execute(insert(t.login_failures).values(at=now, user_id=user_id, address=address[:64]))
            raise AuthError("wrong user or password", 401, "login_failed")
        session = secrets_.new_secret()
        csrf = secrets_.csrf_of(session)                  # GET /api/me answers it again (the cookie's)
        async with self.store.begin() as conn:
            await conn.execute(delete(t.login_failures).where(f.user_id == user_id))
            await conn.execute(insert(t.web_sessions).values(
                id_hash=secrets_.digest(session), user_id=user_id, csrf_hash=secrets_.digest(csrf),
                created_at=now, seen_at=now, ended_at=None))
            s = t.web_sessions.c
            await conn.execute(delete(t.web_sessions).where(and_(   # forget long-dead sessions
                s.user_id == user_id, s.created_at < now - timedelta(hours=self.web.session_max_hours) * 2)))
        return LoggedIn(identity_of(row, "session"), session, csrf)

    async def logout(self, session_id: str) -> None:
        async with self.store.begin() as conn:
            await conn.execute(update(t.web_sessions).where(t.web_sessions.c.id_hash == secrets_.digest(session_id))
                               .values(ended_at=self.clock.now()))


def identity_of(row, via: str) -> access.Identity:
    departments = frozenset(d for d in (row["departments"] or "").split(",") if d)
    return access.Identity(row["id"], access.Role(row["role"]), departments, row["agent"], via)
