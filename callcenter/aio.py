"""Small asyncio helpers shared by the service's background workers (no I/O of their own)."""
from __future__ import annotations

import asyncio


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel a background task and wait until it has ended. Its cancellation, or a failure it
    ends with, is not raised here: each worker logs its own errors."""
    if task is None:
        return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
