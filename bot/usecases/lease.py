"""A lease held for as long as its holder lives: short, and renewed while the work runs.

A lease that must outlast the slowest provider call would also outlast a worker killed in the
middle of one, and keep everyone else from finishing its work for that long. So a lease here
lapses after a few seconds unless a heartbeat thread renews it: a live worker keeps it however
long its call takes (up to ``limit``, past which the call is considered hung), a dead one loses
it within ``ttl``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import structlog

from bot.core.ports import RequestStore

log = structlog.get_logger(__name__)

#: A provider call still running after this long is hung: its lease is left to lapse.
CALL_LIMIT = 150.0


@contextmanager
def held_lease(
    store: RequestStore,
    name: str,
    ttl: float,
    *,
    beat: Callable[[], None] | None = None,
    limit: float = CALL_LIMIT,
    wait: float = 0,
) -> Iterator[bool]:
    """Take lease ``name`` and keep it while the block runs; yields False when someone else holds it.

    ``beat`` runs with each renewal: a grant uses it to push back the sweeper's check on it.
    ``wait``: try for this many seconds before giving up.
    """
    give_up = time.monotonic() + wait
    while not store.lease(name, ttl):
        if time.monotonic() >= give_up:
            yield False
            return
        time.sleep(0.05)
    stop = threading.Event()

    def renew() -> None:
        started = time.monotonic()
        while not stop.wait(ttl / 3) and time.monotonic() - started < limit:
            try:
                if not store.renew_lease(name, ttl):
                    log.warning('lease.lost', lease=name)
                    return
                if beat is not None:
                    beat()
            except Exception as exc:  # Redis restarting: the next beat tries again
                log.warning('lease.renew_failed', lease=name, error=str(exc))

    thread = threading.Thread(target=renew, name=f'lease:{name}', daemon=True)
    thread.start()
    try:
        yield True
    finally:
        stop.set()
        thread.join()
        store.release_lease(name)
