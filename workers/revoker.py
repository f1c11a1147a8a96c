"""The revoker: in every ``jit worker``, ends each grant the moment its time is up.

The due index (``grants:due``, a sorted set by end time, written before a grant is attempted) is the one
source of truth for when access ends. The revoker reads it directly: it sleeps until the next due time (never
longer than :data:`MAX_SLEEP`, so a grant added meanwhile, or a release that makes one due now, is seen within
that), claims what is due atomically (so that the revokers of several workers share a burst instead of all
walking it in the same order), and revokes the claimed grants concurrently on a bounded pool of threads:
provider calls are I/O, and one slow target must not hold the others.

Nothing here depends on RQ or its scheduler, which poll in whole seconds and die with their Redis
connection; a revoke that fails stays due (moved later by its backoff) and is claimed again then. The
revoke itself is :class:`~bot.usecases.revoke_access.RevokeAccess`: at the provider first, then the record,
under a lease, idempotent.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
import structlog

from bot.core.ports import Clock
from bot.usecases.revoke_access import RevokeAccess

log = structlog.get_logger(__name__)

#: Longest sleep between two looks at the due index: a grant made meanwhile is seen within this.
MAX_SLEEP = 0.2
#: Within this of its due time, in normal running, a grant's revoke has started (what the stateful model of
#: ``tests/stateful`` allows a "sweep").
GRACE = 1.0
#: How soon to look again when what is due is all in flight (here or in another worker).
BUSY_WAIT = 0.02
#: Provider calls in flight at once, per worker process.
CONCURRENCY = 32
#: Grants claimed in one step: a burst is shared among the revokers of all workers in slices this big.
CLAIM_BATCH = 64
#: How long a claim keeps other revokers off a grant (a claim is dropped as soon as its revoke returns;
#: a revoker that died leaves its claims to lapse, and the revoke's own lease guards the provider call).
CLAIM_SECONDS = 5.0

# Claim up to ARGV[3] grants due by ARGV[1]: each one that no other revoker claimed (SET NX PX) is ours.
_CLAIM = """
local due = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]) * 4)
local mine = {}
for _, id in ipairs(due) do
  if redis.call('set', ARGV[4] .. id, ARGV[2], 'NX', 'PX', ARGV[5]) then
    mine[#mine + 1] = id
    if #mine >= tonumber(ARGV[3]) then break end
  end
end
return mine
"""


class Revoker:
    """A daemon thread that revokes due grants as they fall due, many at once."""

    def __init__(
        self, *, connection: Any, revoke: RevokeAccess, clock: Clock, prefix: str = 'jit:',
        concurrency: int = CONCURRENCY,
    ) -> None:  # fmt: skip
        self.redis, self.revoke, self.clock, self.prefix = connection, revoke, clock, prefix
        self.token = uuid.uuid4().hex
        self.pid = os.getpid()  # in the log: which of a worker's revoke processes ended a grant
        self._claim = self.redis.register_script(_CLAIM)
        self.concurrency = concurrency
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix='jit-revoke')
        self._inflight: set[str] = set()
        self._lock = threading.Lock()
        #: Revokes this revoker has run (for the log and the tests: a burst is shared).
        self.handled = 0
        self._stop = threading.Event()
        #: Set when the loop should look again before its wait is over: a stop, or slots freed in a burst.
        self._wake = threading.Event()
        self._hungry = False  # grants are due that this revoker has no free slot for
        self._thread = threading.Thread(target=self._run, name='jit-revoker', daemon=True)

    @property
    def _due_key(self) -> str:
        return f'{self.prefix}grants:due'

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=False)

    def revoke_due(self) -> int:
        """Claim what is due now and hand it to the pool; returns how many were handed over."""
        free = self._free()
        if not free:
            return 0
        claimed = self._claim(keys=[self._due_key],
                              args=[repr(self.clock.now()), self.token, min(free, CLAIM_BATCH),
                                    f'{self.prefix}claim:revoke:', int(CLAIM_SECONDS * 1000)])  # fmt: skip
        handed = 0
        for raw in claimed:
            request_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            with self._lock:
                if request_id in self._inflight:
                    continue
                self._inflight.add(request_id)
            self._pool.submit(self._one, request_id)
            handed += 1
        return handed

    def _free(self) -> int:
        with self._lock:
            return max(0, self.concurrency - len(self._inflight))

    def _one(self, request_id: str) -> None:
        try:
            outcome = self.revoke.execute(request_id)
            log.info('revoker.revoke', request_id=request_id, outcome=outcome, pid=self.pid)
        except redis.RedisError as exc:
            log.warning('revoker.redis_unavailable', request_id=request_id, error=str(exc)[:200])
        except Exception:
            log.exception('revoker.revoke_failed', request_id=request_id)
        finally:
            with contextlib.suppress(redis.RedisError):  # else it lapses by itself
                self.redis.delete(f'{self.prefix}claim:revoke:{request_id}')
            with self._lock:
                self._inflight.discard(request_id)
                self.handled += 1
                refill = self._hungry and self.concurrency - len(self._inflight) >= max(1, self.concurrency // 4)
            if refill:
                self._wake.set()  # in a burst, the next slice is claimed as soon as a quarter of the pool is free

    def _next_due(self) -> float | None:
        first = self.redis.zrange(self._due_key, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                handed = self.revoke_due()
                if handed >= CLAIM_BATCH:
                    continue  # a burst: claim the next slice at once
                nxt = self._next_due()
                now = self.clock.now()
                if nxt is None:
                    wait = MAX_SLEEP
                elif nxt > now:
                    wait = min(MAX_SLEEP, nxt - now)
                else:  # due, but all in flight here or claimed by another worker: look again soon
                    wait = BUSY_WAIT if handed else MAX_SLEEP / 4
                self._hungry = nxt is not None and nxt <= now  # woken as soon as slots free up
                self._wake.wait(wait)
                self._wake.clear()
            except redis.RedisError as exc:
                log.warning('revoker.redis_unavailable', error=str(exc)[:200])
                self._stop.wait(1.0)
            except Exception:
                log.exception('revoker.failed')
                self._stop.wait(1.0)
