"""`callcenter import-queue-log FILE`: history from a queue_log file, the same way as live.

Every call the file shows finished and the database does not have is stored from queue_log
(flagged `reconciled`), keyed by (PBX, call id) like every write, so importing a file twice, or
a file whose calls the service already stored, adds nothing. Follow-up tasks and cases are then
made for the new calls by the same after-commit steps as for live calls. Member names map to
agents through `agents[].member_names` (queue_log has no interface). The hotline probes' own calls
(callcenter/probes/) are left out as the live service leaves them out, by the same
`ProbeRecogniser` (in queue_log: by the caller id of their ENTERQUEUE line), and counted apart.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from ..domain.queue_log import QueueLogCalls, QueueLogError, parse_line, record_from
from ..probes import recogniser_for
from ..storage import tables as t

log = logging.getLogger(__name__)


@dataclass
class ImportSummary:
    lines: int
    bad_lines: int
    calls: int             # finished calls in the file, hotline probes not counted
    stored: int            # of which new
    unfinished: int        # still open at the end of the file (left for later)
    probes: int = 0        # finished calls in the file that are hotline probes: left out


def read_calls(path: str):
    """Fold a whole file: (finished calls, unfinished count, lines, bad lines)."""
    fold = QueueLogCalls()
    finished, lines, bad = {}, 0, 0
    with open(path, "rb") as fh:
        offset = 0
        for number, raw in enumerate(fh, 1):
            lines += 1
            text = raw.decode("utf-8", "replace")
            start, offset = offset, offset + len(raw)
            if not text.strip():
                continue
            try:
                line = parse_line(text)
            except QueueLogError as exc:
                bad += 1
                log.warning("%s:%d: %s; line skipped", path, number, exc)
                continue
            for call in fold.feed(line, start):
                finished[call.callid] = call
    done = {k: c for k, c in finished.items() if c.finished}
    return done, sum(1 for c in fold.calls.values() if not c.finished and c.stints), lines, bad


async def import_queue_log(app, path: str, pbx: str) -> ImportSummary:
    """`app` is a built (not started) App; its store is migrated here."""
    store = app.store
    await store.migrate()
    calls, unfinished, lines, bad = read_calls(path)
    directory = app.service.directory
    records = {k: record_from(pbx, c, directory, {}) for k, c in calls.items()}
    recogniser = getattr(app, "probe_recogniser", None) or recogniser_for(app.settings)
    probes = [k for k, r in records.items() if recogniser.is_probe(r)]
    for k in probes:
        del records[k]
    ids = list(records)
    existing: set[str] = set()
    async with store.engine.connect() as conn:
        for i in range(0, len(ids), 500):
            rows = await conn.execute(select(t.calls.c.id).where(t.calls.c.pbx == pbx,
                                                                 t.calls.c.id.in_(ids[i:i + 500])))
            existing.update(r[0] for r in rows)
    new = [r for k, r in records.items() if k not in existing]
    stored = 0
    for i in range(0, len(new), 500):
        stored += await store.save_calls(new[i:i + 500])
    if stored:
        await app.after_commit.run_once()
    if probes:
        log.info("%s: %d hotline probe calls left out", path, len(probes))
    return ImportSummary(lines, bad, len(records), stored, unfinished, len(probes))
