"""SIGINT and SIGTERM while ``jit ci request`` has a request open: acted on at points where it is safe.

A CI runner cancels a job with SIGINT or SIGTERM and follows with SIGKILL seconds later. The request
must still be released (or access would be granted to a job that is gone), and that needs its ID: so a
signal during the POST is noted and acted on once the answer is read, and a second signal does not cut
the release short. Python's default (KeyboardInterrupt anywhere, SIGTERM killing outright) gives neither.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

from bot.ci.errors import _Interrupted


class _Signals:
    """SIGINT and SIGTERM as :class:`_Interrupted`, raised once; while :meth:`held`, only noted for :meth:`check`.

    Held while filing: a request filed as the job is cancelled must still be released, and that needs
    its ID, so the POST is let finish and the signal is acted on right after. Raised once: a second
    signal (runners send SIGINT, then SIGTERM) must not cut the release short.
    """

    def __init__(self) -> None:
        self.caught: int | None = None
        self._held = self._fired = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.caught = self.caught or signum
        if not self._held:
            self.check()

    @contextmanager
    def held(self) -> Iterator[None]:
        self._held = True
        try:
            yield
        finally:
            self._held = False

    def check(self) -> None:
        """Raise for a signal noted while held (unless one was raised already)."""
        if self.caught is not None and not self._fired:
            self._fired = True
            raise _Interrupted(self.caught)

    def silence(self) -> None:
        """From now on signals are only noted: the command is ending on its own."""
        self._fired = True
