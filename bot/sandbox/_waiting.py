"""Waiting for state that another thread or task produces: the bot answers after its ack, or from a worker.

Part of `bot/sandbox/`; no I/O. `Workspace` inherits `Waitable`, so end-to-end tests wait for the messages
and views they expect instead of sleeping.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Waitable:
    """Adds waiting on a condition that the owner notifies after every change."""

    _changed: threading.Condition

    def wait_for(self, check: Callable[[], T | None], timeout: float = 5.0) -> T:
        """Block the calling thread until `check()` returns a truthy value, re-checking after every change.

        The bot answers asynchronously (after its ack, or from a worker), so end-to-end tests wait for the
        state they expect instead of sleeping. Do not call it on the loop that serves the Web API.

        Raises:
            TimeoutError: `check()` stayed falsy for `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (result := check()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s")
                self._changed.wait(min(remaining, 0.1))
            return result

    async def wait_for_async(self, check: Callable[[], T | None], timeout: float = 5.0) -> T:
        """Like `wait_for`, but polls with `asyncio.sleep` so the server on this loop keeps running."""
        deadline = time.monotonic() + timeout
        while not (result := check()):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            await asyncio.sleep(0.02)
        return result
