"""Users and tokens for the API tests: `grant(app_obj, user, role, ...)` stores a user and answers
a bearer token; `bearer(token)` is the header that sends it."""
from __future__ import annotations

from callcenter.auth import UserAdmin

ALL_DEPARTMENTS = ("market", "housing", "edu", "construction", "science", "health", "medins", "office")


async def grant(app_obj, user: str, role: str, departments=(), agent: str | None = None) -> str:
    admin = UserAdmin(app_obj.store, app_obj.settings, app_obj.clock)
    try:
        await admin.get(user)
    except Exception:
        await admin.add(user, role, list(departments), agent)
    return await admin.create_token(user)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def head_of_all(app_obj) -> dict:
    """The headers of "head": head of every configured department, bound to no agent."""
    return bearer(await grant(app_obj, "head", "head", [d.id for d in app_obj.settings.departments]))
