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


async def every(seconds: float, step, log, what: str) -> None:
    """Run `step()` forever, `seconds` apart; a failing pass is logged (as `what`) and the next
    one runs anyway. Cancel the task to stop it."""
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; retrying", what)
        await asyncio.sleep(seconds)
