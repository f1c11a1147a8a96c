"""Small stand-ins the integration tests share."""

from __future__ import annotations

import time
from typing import Any


class MovableClock:
    """Now, until the test moves it (``clock.t += 60``)."""

    def __init__(self) -> None:
        self.t = time.time()

    def now(self) -> float:
        return self.t


class IgnoringQueue:
    """A job queue that takes every job and runs none: the test calls the use cases itself."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None
