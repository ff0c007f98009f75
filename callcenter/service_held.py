"""The service's held records: what the database could not take yet, as a holder of held writes.

A mixin of `Service` (callcenter/service.py): it counts, journals and restores the completed
calls and sessions kept for a retry (callcenter/journal.py), and sets aside the records the
database rejects (a bad value, not an outage) so that one never holds up the others.
"""
from __future__ import annotations

import logging

from . import journal
from .domain.presence import AgentSession
from .domain.records import CallRecord
from .storage.health import describe, is_unavailable

log = logging.getLogger("callcenter.service")


class HeldRecords:
    unsaved_calls: list
    unsaved_sessions: list
    rejected: list
    trackers: list
    tracker_names: list

    async def _one_by_one(self, calls: list[CallRecord], sessions: list[AgentSession]) -> list[CallRecord]:
        """The database rejected a batch (a bad value, not an outage): store the records one by
        one so that one bad record never holds up the others. Those it rejects are set aside in
        `rejected` (counted in the backlog, journalled at a stop and so tried again at the next
        start, after an upgrade), logged once each. Returns the calls stored."""
        stored = []
        for records, save in ((calls, self.store.save_calls), (sessions, self.store.save_sessions)):
            for record in records:
                try:
                    await save([record])
                except Exception as exc:
                    if is_unavailable(exc):
                        raise
                    self.rejected.append(record)
                    log.error("the database rejected %s %s/%s: %s; set aside (journalled at the stop)",
                              type(record).__name__, record.pbx,
                              record.id if isinstance(record, CallRecord) else record.interface,
                              describe(exc))
                    continue
                if records is calls:
                    stored.append(record)
        return stored

    def backlog(self) -> dict[str, int]:
        out = {"calls": len(self.unsaved_calls), "sessions": len(self.unsaved_sessions)}
        if self.rejected:
            out["rejected"] = len(self.rejected)
        for (_, results, _), name in zip(self.trackers, self.tracker_names):
            if results:
                out[name] = out.get(name, 0) + len(results)
        return out

    async def retry(self) -> None:
        if any(self.backlog().values()):
            await self._flush()

    def take_held(self) -> list[dict]:
        held = self.rejected + self.unsaved_calls + self.unsaved_sessions
        entries = [{"kind": "call" if isinstance(r, CallRecord) else "session", "record": journal.encode(r)}
                   for r in held]
        self.rejected = []
        for (_, results, _), name in zip(self.trackers, self.tracker_names):
            entries += [{"kind": "result", "tracker": name, "record": journal.encode(r)} for r in results]
            results.clear()
        self.unsaved_calls, self.unsaved_sessions = [], []
        return entries

    def restore(self, entries: list[dict]) -> None:
        results = {name: results for (_, results, _), name in zip(self.trackers, self.tracker_names)}
        for entry in entries:
            record = journal.decode(entry["record"])
            if entry["kind"] == "call":
                self.unsaved_calls.append(record)
            elif entry["kind"] == "session":
                self.unsaved_sessions.append(record)
            elif entry.get("tracker") in results:
                results[entry["tracker"]].append(record)
            else:
                log.warning("journal: no tracker %r for a held result; dropped", entry.get("tracker"))
        if entries:
            self._idle.clear()
