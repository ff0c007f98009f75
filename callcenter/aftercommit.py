"""Runs what acts on committed calls (first-ask cases, then follow-up tasks) off the ingest path.

The service's consumer only signals that calls were committed; this worker then runs each
step's `process_pending`, which reads unclaimed calls from the database. So a slow step never
holds up ingest, and a crash in between loses nothing: the next start catches up.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

log = logging.getLogger(__name__)


class AfterCommit:
    def __init__(self, steps: list[Callable[[], Awaitable[int]]]):
        self.steps = steps
        self.kick = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._running = asyncio.Lock()            # one pass at a time, whoever asks for it

    async def on_calls_committed(self, records) -> None:
        self.idle.clear()
        self.kick.set()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="after-commit")

    async def stop(self) -> None:
        """Let a running pass finish (never cancel a transaction half-way), then one more."""
        if self._task:
            self._stopping = True
            self.kick.set()
            await self._task
        await self.run_once()                       # what was committed last is not left behind

    async def settled(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.idle.wait(), timeout)

    async def run_once(self) -> None:
        async with self._running:
            for step in self.steps:
                try:
                    await step()
                except Exception:
                    log.exception("after-commit step %r failed; it runs again on the next commit", step)

    async def _run(self) -> None:
        while True:
            await self.kick.wait()
            self.kick.clear()
            if self._stopping:
                return
            await self.run_once()
            if not self.kick.is_set():
                self.idle.set()
