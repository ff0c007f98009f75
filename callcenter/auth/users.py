"""Users and API tokens: what `callcenter users ...` and `callcenter tokens ...` do.

A user has an id, a role (callcenter/domain/access.py), a head's departments, an agent's agent
id, an argon2id password hash (for the panel) and a disabled flag. Department and agent ids are
checked against the configuration. A token is shown once, when created; the database keeps its
SHA-256 and a short prefix to list and revoke it by.
"""
from __future__ import annotations

from sqlalchemy import delete, func, insert, select, update

from ..domain import access, validation
from ..storage import tables as t
from . import secrets_
from .service import AuthError


class UserAdmin:
    def __init__(self, store, settings, clock=None):
        self.store = store
        self.settings = settings
        self.clock = clock or store.clock
        self.departments = [d.id for d in settings.departments]
        self.agents = [a.id for a in settings.agents]

    # --- users --------------------------------------------------------------------------------

    async def add(self, user_id: str, role: str, departments: list[str] | None = None,
                  agent: str | None = None) -> dict:
        try:
            validation.identifier(user_id, "a user id")
        except validation.InvalidValue as exc:
            raise AuthError(f"user id {user_id!r}: {exc}") from None
        if user_id.startswith(secrets_.TOKEN_PREFIX):
            raise AuthError(f"user id {user_id!r}: may not start with {secrets_.TOKEN_PREFIX!r} (token prefixes do)")
        departments = list(dict.fromkeys(departments or []))
        if role == access.Role.AGENT.value and agent is None and user_id in self.agents:
            agent = user_id                            # `users add 1001 --role agent`: agent 1001
        try:
            access.check_user(role, departments, agent)
        except access.RoleError as exc:
            raise AuthError(str(exc)) from None
        for dept in departments:
            if dept not in self.departments:
                raise AuthError(f"--department: unknown department {dept!r}; configured: {', '.join(self.departments)}")
        if agent is not None and agent not in self.agents:
            raise AuthError(f"--agent: unknown agent {agent!r} (not in the configuration's agents)")
        async with self.store.begin() as conn:
            if (await conn.execute(select(t.users.c.id).where(t.users.c.id == user_id))).first():
                raise AuthError(f"user {user_id!r} exists already", 409, "exists")
            await conn.execute(insert(t.users).values(id=user_id, role=role, departments=",".join(departments),
                                                      agent=agent, password_hash=None, disabled=False,
                                                      created_at=self.clock.now()))
        return await self.get(user_id)

    async def get(self, user_id: str) -> dict:
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(t.users).where(t.users.c.id == user_id))).mappings().first()
        if row is None:
            raise AuthError(f"no user {user_id!r}", 404, "not_found")
        return _user_dict(row)

    async def passwd(self, user_id: str, password: str) -> None:
        if not secrets_.MIN_PASSWORD <= len(password) <= secrets_.MAX_PASSWORD:
            raise AuthError(f"the password must have {secrets_.MIN_PASSWORD} to {secrets_.MAX_PASSWORD} characters")
        if validation.CONTROL.search(password):
            raise AuthError("the password may not contain control characters")
        await self.get(user_id)
        hashed = secrets_.hash_password(password)
        async with self.store.begin() as conn:
            await conn.execute(update(t.users).where(t.users.c.id == user_id).values(password_hash=hashed))
            # a new password ends the sessions opened with the old one
            await conn.execute(update(t.web_sessions).where(t.web_sessions.c.user_id == user_id,
                                                            t.web_sessions.c.ended_at.is_(None))
                               .values(ended_at=self.clock.now()))

    async def list(self) -> list[dict]:
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(select(t.users).order_by(t.users.c.id))).mappings().all()
            counts = dict((await conn.execute(
                select(t.api_tokens.c.user_id, func.count()).where(t.api_tokens.c.revoked_at.is_(None))
                .group_by(t.api_tokens.c.user_id))).all())
        return [{**_user_dict(r), "tokens": counts.get(r["id"], 0)} for r in rows]

    async def disable(self, user_id: str) -> None:
        """Refused at once: every request checks the flag; open sessions are ended too."""
        await self.get(user_id)
        now = self.clock.now()
        async with self.store.begin() as conn:
            await conn.execute(update(t.users).where(t.users.c.id == user_id).values(disabled=True))
            await conn.execute(update(t.web_sessions).where(t.web_sessions.c.user_id == user_id,
                                                            t.web_sessions.c.ended_at.is_(None)).values(ended_at=now))

    async def enable(self, user_id: str) -> None:
        await self.get(user_id)
        async with self.store.begin() as conn:
            await conn.execute(update(t.users).where(t.users.c.id == user_id).values(disabled=False))
            await conn.execute(delete(t.login_failures).where(t.login_failures.c.user_id == user_id))

    # --- tokens -------------------------------------------------------------------------------

    async def create_token(self, user_id: str) -> str:
        user = await self.get(user_id)
        if user["disabled"]:
            raise AuthError(f"user {user_id!r} is disabled")
        token = secrets_.new_token()
        async with self.store.begin() as conn:
            await conn.execute(insert(t.api_tokens).values(
                user_id=user_id, prefix=token[:secrets_.PREFIX_LENGTH], token_hash=secrets_.digest(token),
                created_at=self.clock.now(), revoked_at=None))
        return token

    async def tokens(self, user_id: str | None = None) -> list[dict]:
        query = select(t.api_tokens).order_by(t.api_tokens.c.id)
        if user_id is not None:
            query = query.where(t.api_tokens.c.user_id == user_id)
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [{"id": r["id"], "user": r["user_id"], "prefix": r["prefix"], "created_at": r["created_at"].isoformat(),
                 "revoked_at": r["revoked_at"].isoformat() if r["revoked_at"] else None} for r in rows]

    async def revoke(self, what: str) -> list[dict]:
        """Revoke one token by its prefix (``cc_`` and at least 4 more characters, as listed, or the
        whole token), or every live token of a user by the user id. Answers the revoked tokens."""
        c = t.api_tokens.c
        if what.startswith(secrets_.TOKEN_PREFIX):
            if len(what) < len(secrets_.TOKEN_PREFIX) + 4:
                raise AuthError(f"token prefix {what!r} is too short; give at least {secrets_.TOKEN_PREFIX}XXXX")
            if len(what) > secrets_.PREFIX_LENGTH:
                condition = c.token_hash == secrets_.digest(what)
            else:
                condition = c.prefix.startswith(what, autoescape=True)
        else:
            await self.get(what)
            condition = c.user_id == what
        async with self.store.begin() as conn:
            ids = [r[0] for r in (await conn.execute(select(c.id).where(condition, c.revoked_at.is_(None)))).all()]
            if not ids:
                raise AuthError(f"no live token matches {what!r}", 404, "not_found")
            if what.startswith(secrets_.TOKEN_PREFIX) and len(ids) > 1:
                raise AuthError(f"{what!r} matches {len(ids)} tokens; give a longer prefix", 409, "ambiguous")
            await conn.execute(update(t.api_tokens).where(c.id.in_(ids)).values(revoked_at=self.clock.now()))
        return [tok for tok in await self.tokens() if tok["id"] in ids]


def _user_dict(row) -> dict:
    return {"id": row["id"], "role": row["role"],
            "departments": [d for d in (row["departments"] or "").split(",") if d],
            "agent": row["agent"], "has_password": row["password_hash"] is not None,
            "disabled": bool(row["disabled"]), "created_at": row["created_at"].isoformat()}
