"""Checkpoints of the trackers' open state and the service's observation windows, in the database.

- ``checkpoints``: one row per tracker ("calls", "presence"), its open state as JSON
  (callcenter/domain/tracker_state.py) and when it was saved. Two instances on one database
  write the same rows (both follow the same PBX stream); the newest wins.
- ``observation_windows``: when this service was running (kind "service") and when its AMI link
  to each PBX was up (kind "link", from the resync after login to the link's loss). An open
  window carries a heartbeat (``seen_at``): a process killed without a word is taken to have
  observed until its last heartbeat. Reports count business time outside every link window of
  a post's PBX as *unobserved*, never as a gap.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from ..domain.coverage_figures import Interval, merge, open_sessions
from ..domain.presence import AgentSession
from ..domain.tracker_state import members_from_state
from . import tables as t

CALLS, PRESENCE = "calls", "presence"


# --- checkpoints -------------------------------------------------------------------------------

async def save_state(store, name: str, state: dict | str, at: datetime, instance: str) -> None:
    text = state if isinstance(state, str) else json.dumps(state, ensure_ascii=False, separators=(",", ":"))
    row = {"name": name, "state": text, "saved_at": at, "instance": instance}
    insert = store._insert(t.checkpoints)
    async with store.begin() as conn:
        await conn.execute(insert.values(row).on_conflict_do_update(
            index_elements=[t.checkpoints.c.name],
            set_={"state": text, "saved_at": at, "instance": instance}))


async def touch(store, names: list[str], at: datetime, instance: str) -> None:
    """The state did not change: only mark it as current."""
    async with store.begin() as conn:
        await conn.execute(update(t.checkpoints).where(t.checkpoints.c.name.in_(names))
                           .values(saved_at=at, instance=instance))


async def load_state(store, name: str) -> tuple[dict, datetime] | None:
    async with store.engine.connect() as conn:
        row = (await conn.execute(select(t.checkpoints.c.state, t.checkpoints.c.saved_at)
                                  .where(t.checkpoints.c.name == name))).first()
    if row is None:
        return None
    return json.loads(row.state), row.saved_at


# --- observation windows ---------------------------------------------------------------------

async def open_window(store, instance: str, kind: str, pbx: str, at: datetime) -> int:
    async with store.begin() as conn:
        result = await conn.execute(t.observation_windows.insert().values(
            instance=instance, kind=kind, pbx=pbx, started_at=at, seen_at=at, ended_at=None))
        return result.inserted_primary_key[0]


async def heartbeat(store, ids: list[int], at: datetime) -> None:
    if ids:
        async with store.begin() as conn:
            await conn.execute(update(t.observation_windows).where(
                t.observation_windows.c.id.in_(ids), t.observation_windows.c.ended_at.is_(None))
                .values(seen_at=at))


async def close_window(store, window_id: int, at: datetime) -> None:
    async with store.begin() as conn:
        await conn.execute(update(t.observation_windows).where(
            t.observation_windows.c.id == window_id, t.observation_windows.c.ended_at.is_(None))
            .values(ended_at=at, seen_at=at))


async def observed(store, start: datetime, end: datetime, now: datetime,
                   stale_after: timedelta) -> dict[str, list[Interval]] | None:
    """PBX id -> the merged periods its link was up within [start, end). An open window whose
    heartbeat is fresher than ``stale_after`` reaches ``now`` (the service is running); a stale
    one ends at its heartbeat. None when the database has no observation record at all (data
    written before windows were recorded): then nothing is reported as unobserved."""
    w = t.observation_windows.c
    async with store.engine.connect() as conn:
        if not (await conn.execute(select(func.count()).select_from(t.observation_windows))).scalar_one():
            return None
        rows = (await conn.execute(select(w.pbx, w.started_at, w.seen_at, w.ended_at).where(
            w.kind == "link", w.started_at < end,
            (w.ended_at.is_(None)) | (w.ended_at > start)))).all()
    out: dict[str, list[Interval]] = {}
    for pbx, started_at, seen_at, ended_at in rows:
        until = ended_at or (max(now, seen_at) if seen_at >= now - stale_after else seen_at)
        out.setdefault(pbx, []).append((max(started_at, start), min(until, end)))
    return {pbx: merge(spans) for pbx, spans in out.items()}


async def checkpointed_sessions(store, closed: list[AgentSession], now: datetime,
                                stale_after: timedelta) -> list[AgentSession]:
    """The agent sessions the last presence checkpoint holds open, as if they closed now (or at
    the checkpoint, if no running service has refreshed it since); sessions already stored as
    closed (``closed``, same PBX, interface, queue, kind and start) are left out."""
    loaded = await load_state(store, PRESENCE)
    if loaded is None:
        return []
    state, saved_at = loaded
    until = now if saved_at >= now - stale_after else min(now, saved_at)
    done = {(s.pbx, s.interface, s.queue, s.kind, s.started_at) for s in closed}
    return [s for s in open_sessions(members_from_state(state), until)
            if (s.pbx, s.interface, s.queue, s.kind, s.started_at) not in done and s.started_at < until]


async def coverage_facts(store, start: datetime, end: datetime, now: datetime,
                         stale_after: timedelta) -> tuple[list[AgentSession], dict[str, list[Interval]] | None]:
    """For a report run outside the service (`callcenter report daily`): the day's stored
    sessions plus the ones the last checkpoint holds open, and the observation periods."""
    closed = await store.sessions_between(start, end)
    return (closed + await checkpointed_sessions(store, closed, now, stale_after),
            await observed(store, start, end, now, stale_after))
