"""Keeping ``jit worker`` alive through Redis outages of any length.

RQ's job loop is not built for it: a ``ConnectionError`` while a job is being finished (``handle_execution
_ended``) or while the loop waits for work ends ``Worker.work()`` ("found an unhandled exception,
quitting..."), and its teardown, which talks to Redis again, raises out of it. Left alone, the process would
exit, and nothing would revoke until someone restarted it.

So the loop is supervised here: when RQ's loop ends without a stop having been asked for (SIGTERM, SIGINT),
the process waits for Redis to answer again (one log line, then one every half minute, backing off up to
:data:`MAX_WAIT`), and starts a fresh RQ worker with its scheduler. A job whose bookkeeping was cut off is
not retried by RQ; what it was doing is recovered by the store's own records: a grant left ``granting`` is
watched by the sweeper and queued again (providers are idempotent by request ID), and a revoke stays in the
due index until one succeeds. The sweeper, the reconciler and the audit pump are threads that catch Redis
errors themselves and go on.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
import structlog
from rq import SimpleWorker

from bot.adapters.redis_health import wait_for_redis

log = structlog.get_logger(__name__)

#: Longest wait between two starts of an RQ loop that keeps ending at once.
MAX_WAIT = 5.0


class _Worker(SimpleWorker):
    """RQ's ``SimpleWorker`` that tells the supervisor a stop was asked for (RQ keeps no flag when idle)."""

    stop_asked: threading.Event

    def unsubscribe(self) -> None:
        """RQ's, without its wait of up to a minute at every stop.

        RQ unsubscribes, then stops the pubsub thread and joins it; redis-py 8 joins with no timeout. When the
        thread read the unsubscribe reply before its running flag was cleared, it loops once more into
        ``get_message(timeout=60)``, waiting for a subscription that never comes: ``jit worker`` then takes a
        minute to stop (and a process manager kills it first). Here the flag goes first, and the wait is woken.
        """
        thread, pubsub = getattr(self, 'pubsub_thread', None), getattr(self, 'pubsub', None)
        if thread is None or pubsub is None:
            return
        thread._running.clear()
        pubsub.unsubscribe()
        subscribed = getattr(pubsub, 'subscribed_event', None)
        if subscribed is not None:
            subscribed.set()
        thread.join(timeout=2)

    def request_stop(self, signum: Any, frame: Any) -> None:
        self.stop_asked.set()
        try:
            super().request_stop(signum, frame)  # type: ignore[no-untyped-call]
        except (redis.RedisError, OSError):
            # Asked to stop while Redis is away: RQ looks up its state in Redis first. Stop anyway.
            raise SystemExit(0) from None


def work_forever(
    queues: list[str], *, url: str, logging_level: str, connect: Callable[[], Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:  # fmt: skip
    """Run RQ's worker (with its scheduler) until a stop is asked for, starting it again after Redis outages.

    Returns:
        0 once SIGTERM or SIGINT stopped it (RQ's warm shutdown: the running job finishes first).
    """
    stop = threading.Event()
    connect = connect or (lambda: redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5))
    backoff = 0.0
    while True:
        connection = connect()
        if not wait_for_redis(connection, url, stop=stop, sleep=sleep):
            return 0
        worker = _Worker(queues, connection=connection)
        worker.stop_asked = stop
        started = time.monotonic()
        try:
            worker.work(with_scheduler=True, logging_level=logging_level)
            error = None
        except (redis.RedisError, OSError) as exc:  # raised by RQ's teardown, which talks to Redis again
            error = exc
        if stop.is_set():
            return 0
        # While no worker runs, a SIGTERM must still stop the process (RQ's handler would ask Redis first).
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        log.warning('worker.loop_ended', error=f'{type(error).__name__}: {error}'[:200] if error else None,
                    action='starting it again once Redis answers')  # fmt: skip
        # A loop that ends at once again and again (not an outage): do not spin.
        backoff = min(MAX_WAIT, backoff * 2 or 0.5) if time.monotonic() - started < 5 else 0.0
        if stop.wait(backoff):
            return 0
