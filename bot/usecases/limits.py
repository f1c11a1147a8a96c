"""Per-person limits on filing: requests waiting for a decision at once, and requests filed per hour.

They keep a script in a loop from flooding the approvers, so everything that asks approvers for a decision
counts: new requests and extension requests alike. The check and the filing happen under a short per-person
lease, so that ten filings at the same instant cannot all see "four waiting" and all be filed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from bot.core.durations import format_duration
from bot.core.errors import TooManyRequests
from bot.core.model import Principal, RequestStatus
from bot.core.ports import Leases, Limits, Requests


class LimitStore(Requests, Leases, Limits, Protocol):
    """What the filing limits read: a person's requests, a filing lease per person, the hourly window."""


#: The per-person lease lapses after this long if its holder dies; filing takes milliseconds.
FILING_LEASE = 5.0
#: How long a filing waits for the same person's previous one to finish.
FILING_WAIT = 5.0


class RequestLimits:
    """``max_open`` waiting requests and ``per_hour`` filings per person (0: no limit)."""

    def __init__(self, *, store: LimitStore, per_hour: int = 0, max_open: int = 0) -> None:
        self.store, self.per_hour, self.max_open = store, per_hour, max_open

    @contextmanager
    def filing(self, requester: Principal, now: float) -> Iterator[None]:
        """Check the limits and hold them while the caller files.

        Raises:
            TooManyRequests: over a limit (nothing is counted, nothing may be filed).
        """
        if not (self.per_hour or self.max_open):
            yield
            return
        # A plain lease, no heartbeat: filing takes milliseconds, and a holder that dies frees it in seconds.
        name = f'filing:{requester.owner_key or requester.label}'
        give_up = time.monotonic() + FILING_WAIT
        while not self.store.lease(name, FILING_LEASE):
            if time.monotonic() >= give_up:
                raise TooManyRequests('Not filed: another request of yours is being filed right now; try again.')
            time.sleep(0.02)
        try:
            self._check(requester, now)
            yield
        finally:
            self.store.release_lease(name)

    def _check(self, requester: Principal, now: float) -> None:
        who = requester.slack_id or requester.label
        if self.max_open and requester.owner_key:
            waiting = [r for r in self.store.for_user(requester.owner_key) if r.status is RequestStatus.PENDING]
            if len(waiting) >= self.max_open:
                ids = ', '.join(f'`{r.id}`' for r in waiting[: self.max_open])
                raise TooManyRequests(f'Not filed: you already have {len(waiting)} requests waiting for a decision '
                                      f'({ids}). Cancel one (`/jit cancel ID`) or wait for the approvers.')  # fmt: skip
        if self.per_hour:
            wait = self.store.take_slot(f'requests:{who}', now=now, window=3600, limit=self.per_hour)
            if wait is not None:
                raise TooManyRequests(f'Not filed: you have filed {self.per_hour} requests in the last hour, the '
                                      f'most jit takes. Try again in {format_duration(60 * math.ceil(wait / 60))}.',
                                      retry_after=wait)  # fmt: skip
