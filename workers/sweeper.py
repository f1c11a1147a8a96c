"""The sweeper: grants again what was approved but never granted (lost job, killed worker), expires
requests nobody decided within their rule's ``pending_timeout``, reminds approvers, and runs the
reconciler and the idle check on their own intervals.

It runs in a thread of every ``jit worker`` (not through RQ's scheduler, which dies with its Redis
connection and is replaced only after minutes). Revokes are not its business: the revoker
(``workers/revoker.py``) ends each grant as it falls due.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
import structlog

from bot.adapters.redis_store import RedisStore
from bot.adapters.rq_queue import RQJobQueue
from bot.core.ports import Clock
from bot.usecases.end_access import EndAccess
from bot.usecases.grant_access import GrantAccess
from bot.usecases.revoke_idle import RevokeIdle
from workers.reconciler import Reconciler

log = structlog.get_logger(__name__)

T = TypeVar('T')


class Sweeper:
    """A daemon thread that does its round every ``interval`` seconds."""

    def __init__(
        self, *, store: RedisStore, grant: GrantAccess, end: EndAccess, clock: Clock,
        interval: float, queue: RQJobQueue | None = None, remind_after: float = 0, reconciler: Reconciler | None = None,
        reconcile_every: float = 300.0, idle: RevokeIdle | None = None, idle_every: float = 60.0,
    ) -> None:  # fmt: skip
        """Args:
        remind_after: seconds before the first reminder to approvers (then doubling); 0: none.
        """
        self.grant = grant
        self.store, self.end, self.clock, self.interval = store, end, clock, interval
        self.queue = queue
        self.remind_after = remind_after
        self.reconciler, self.reconcile_every = reconciler, reconcile_every
        self._reconciled_at = 0.0
        self.idle, self.idle_every = idle, idle_every
        self._idle_at = time.monotonic()  # the first check one interval after start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='jit-sweeper', daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def sweep_once(self) -> None:
        """One round. Each item is on its own: one that raises is logged and left for the next round, and
        never keeps the others (or the expiries, recoveries and reminders) from running."""
        for request_id in self.store.stalled_grants(self.clock.now()):
            log.info('sweeper.recover', request_id=request_id,
                     outcome=self._guarded('recover', self.grant.recover, request_id))  # fmt: skip
        self._guarded('expire', self.end.expire_pending)
        if self.reconciler is not None and time.monotonic() - self._reconciled_at >= self.reconcile_every:
            self._reconciled_at = time.monotonic()
            self._guarded('reconcile', self.reconciler.run_once)
        if self.idle is not None and time.monotonic() - self._idle_at >= self.idle_every:
            self._idle_at = time.monotonic()
            self._guarded('idle', self.idle.check_once)
        if self.remind_after and self.queue is not None:
            self._guarded('remind', self.remind, self.queue)

    @staticmethod
    def _guarded(what: str, step: Callable[..., T], *args: Any) -> T | None:
        """Run one part of the round; Redis being down ends the round, anything else is logged and skipped."""
        try:
            return step(*args)
        except redis.RedisError:
            raise
        except Exception:
            log.exception('sweeper.step_failed', step=what, args=args)
            return None

    def remind(self, queue: RQJobQueue) -> None:
        """Queue the reminders that are due for pending requests (each step counts from its last approval)."""
        now = self.clock.now()
        for request in self.store.pending():
            since = max([request.created_at] + [a.at for a in request.approvals if a.step < request.step])
            number = self.store.claim_reminder(request.id, request.step, since, now, self.remind_after)
            if number:
                queue.enqueue_reminder(request.id, number)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep_once()
            except redis.RedisError as exc:
                # Redis restarting: try again next round; what was due is still in its index.
                log.warning('sweeper.redis_unavailable', error=str(exc))
            except Exception:
                log.exception('sweeper.failed')
