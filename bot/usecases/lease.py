"""A lease held for as long as its holder lives: short, and renewed while the work runs.

A lease that must outlast the slowest provider call would also outlast a worker killed in the
middle of one, and keep everyone else from finishing its work for that long. So a lease here
lapses after a few seconds unless a heartbeat thread renews it: a live worker keeps it however
long its call takes (up to ``limit``, past which the call is considered hung), a dead one loses
it within ``ttl``. One heartbeat thread per process renews them all.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import structlog

from bot.core.model import AccessRequest
from bot.core.ports import Leases, shares_grants

log = structlog.get_logger(__name__)

#: A provider call still running after this long is hung: its lease is left to lapse.
CALL_LIMIT = 150.0


@dataclass(eq=False)
class _Held:
    """One lease this process holds, and when to renew it next."""

    store: Leases
    name: str
    ttl: float
    beat: Callable[[], None] | None
    limit: float
    started: float
    next_at: float


class _Heartbeat:
    """One thread per process renews every lease held in it, each every third of its time to live.

    Most leases are held for a few milliseconds (a revoke, a grant that answers at once) and are never renewed:
    they cost a registration here, not a thread of their own.
    """

    def __init__(self) -> None:
        self._held: set[_Held] = set()
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, held: _Held) -> None:
        with self._lock:
            self._held.add(held)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name='jit-lease-heartbeat', daemon=True)
                self._thread.start()
        self._changed.set()

    def remove(self, held: _Held) -> None:
        with self._lock:
            self._held.discard(held)

    def _run(self) -> None:
        while True:
            with self._lock:
                due = [h for h in self._held if h.next_at <= time.monotonic()]
                upcoming = min((h.next_at for h in self._held), default=time.monotonic() + 1.0)
            for held in due:
                self._renew(held)
            self._changed.wait(max(0.0, upcoming - time.monotonic()))
            self._changed.clear()

    def _renew(self, held: _Held) -> None:
        now = time.monotonic()
        held.next_at = now + held.ttl / 3
        if now - held.started >= held.limit:
            self.remove(held)  # hung past the limit: the lease is left to lapse
            return
        try:
            if not held.store.renew_lease(held.name, held.ttl):
                log.warning('lease.lost', lease=held.name)
                self.remove(held)
                return
            if held.beat is not None:
                held.beat()
        except Exception as exc:  # Redis restarting: the next beat tries again
            log.warning('lease.renew_failed', lease=held.name, error=str(exc))


_heartbeat = _Heartbeat()


@contextmanager
def held_lease(
    store: Leases,
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
    now = time.monotonic()
    held = _Held(store=store, name=name, ttl=ttl, beat=beat, limit=limit, started=now, next_at=now + ttl / 3)
    _heartbeat.add(held)
    try:
        yield True
    finally:
        _heartbeat.remove(held)
        store.release_lease(name)


def backoff(attempt: int, *, base: float = 2.0, cap: float = 60.0) -> float:
    """Exponential backoff with full jitter in its upper half: 1-2 s, 2-4 s, ... up to ``cap``."""
    delay = min(cap, base ** max(1, attempt))
    return delay / 2 + random.random() * delay / 2


def access_turn(
    store: Leases, provider: object, settings: dict[str, Any], request: AccessRequest, *, ttl: float, wait: float
) -> AbstractContextManager[bool]:
    """One person's one access at one resource: grants and revokes of it take turns at the provider.

    Needed where overlapping grants share one object (a group membership): a revoke that saw no other holder must
    not remove the membership just after an overlapping grant added it. Other providers take no turn.
    """
    if not shares_grants(provider, settings):
        return nullcontext(True)
    name = f'access:{request.resource}:{request.role}:{request.requester.access_key}'
    return held_lease(store, name, ttl, wait=wait)
