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

import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

import redis
import structlog
from rq import SimpleWorker
from rq.exceptions import StopRequested

from bot.adapters.redis_connect import redis_client, redis_location
from bot.adapters.redis_health import wait_for_redis

log = structlog.get_logger(__name__)

#: Longest wait between two starts of an RQ loop that keeps ending at once.
MAX_WAIT = 5.0


#: Set once this process was asked to stop (SIGTERM, SIGINT): nothing is started again after it.
STOPPING = threading.Event()


class _AskedToStop(SystemExit):
    """A stop asked for while RQ's loop was idle, raised where RQ raises ``StopRequested``.

    A signal handler's exception surfaces in whatever the main thread runs. ``StopRequested`` is an ``Exception``,
    so when SIGTERM lands in one of RQ's log calls, ``logging.Handler.emit`` catches it as a failed write, and the
    loop goes on to wait for jobs, its handlers spent: the worker never stops. A ``SystemExit`` passes every
    ``except Exception``, and RQ's loop lets it through its teardown.
    """


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
        STOPPING.set()
        self.stop_asked.set()
        try:
            super().request_stop(signum, frame)  # type: ignore[no-untyped-call]
        except (redis.RedisError, OSError):
            # Asked to stop while Redis is away: RQ looks up its state in Redis first. Stop anyway.
            raise SystemExit(0) from None

    def _shutdown(self) -> None:
        try:
            super()._shutdown()  # type: ignore[no-untyped-call]
        except StopRequested:
            raise _AskedToStop(0) from None


def _stop_on(stop: threading.Event) -> Callable[..., None]:
    def handler(*_: Any) -> None:
        STOPPING.set()
        stop.set()

    return handler


def rq_connector(settings: Any) -> Callable[[], redis.Redis]:
    """What :func:`work_forever` calls for each start of RQ's loop: a fresh client (bytes, as RQ needs) of jit's
    Redis, or of the primary the sentinels name now (``bot.adapters.redis_connect``)."""
    return lambda: redis_client(settings, decode_responses=False, socket_timeout=30, socket_connect_timeout=5)


def work_forever(queues: list[str], *, connect: Callable[[], redis.Redis], logging_level: str,
                 where: str = 'redis') -> int:  # fmt: skip
    """Run RQ's worker (with its scheduler) until a stop is asked for, starting it again after Redis outages.

    Args:
        connect: builds the RQ loop's client at each start (:func:`rq_connector`).
        where: jit's Redis for log lines (``bot.adapters.redis_connect.redis_location``).

    Returns:
        0 once SIGTERM or SIGINT stopped it (RQ's warm shutdown: the running job finishes first).
    """
    stop = threading.Event()
    backoff = 0.0
    while True:
        connection = connect()
        if not wait_for_redis(connection, where, stop=stop):
            return 0
        worker = _Worker(queues, connection=connection)
        worker.stop_asked = stop
        started = time.monotonic()
        try:
            worker.work(with_scheduler=True, logging_level=logging_level)
            error = None
        except _AskedToStop:
            return 0
        except (redis.RedisError, OSError) as exc:  # raised by RQ's teardown, which talks to Redis again
            error = exc
        if stop.is_set():
            return 0
        # While no worker runs, a SIGTERM must still stop the process (RQ's handler would ask Redis first).
        signal.signal(signal.SIGTERM, _stop_on(stop))
        signal.signal(signal.SIGINT, _stop_on(stop))
        log.warning('worker.loop_ended', error=f'{type(error).__name__}: {error}'[:200] if error else None,
                    action='starting it again once Redis answers')  # fmt: skip
        # A loop that ends at once again and again (not an outage): do not spin.
        backoff = min(MAX_WAIT, backoff * 2 or 0.5) if time.monotonic() - started < 5 else 0.0
        if stop.wait(backoff):
            return 0


#: A child that stopped as asked (exit 0, or SIGTERM) is started again only if its worker is still running after
#: this long: a SIGTERM to the process group reaches the child first at times, and the worker just after.
ASKED_TO_STOP_GRACE = 3.0

#: How much lower the Slack messages' process runs than the access one: in a burst, revokes get the CPU first.
NOTIFY_NICENESS = 10


def _as_child(niceness: int = 0) -> None:  # pragma: no cover - in the child
    """What every process ``jit worker`` starts does first: its priority, and ending with its parent."""
    if niceness:
        with contextlib.suppress(OSError):
            os.nice(niceness)
    with contextlib.suppress(OSError, AttributeError):  # Linux: ends with its parent, even a SIGKILLed one
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:
        raise SystemExit(0)  # the parent died before the line above


def _child_deps(environ: dict[str, str], policy: dict[str, str]) -> Any:  # pragma: no cover - in the child
    from bot.logging import configure_logging
    from bot.settings import load_settings
    from workers.runtime import build_worker_deps, install

    settings = load_settings(environ)
    configure_logging(json=None if settings.log_format is None else settings.log_format == 'json',
                      level=settings.log_level)  # fmt: skip
    deps = build_worker_deps(settings, initial_policy=policy)  # the parent's policy in force, not the dir's now
    install(deps)
    return deps


def _work_beside(deps: Any, queue: str, beside: Any) -> NoReturn:  # pragma: no cover - in the child
    """Run ``beside`` (a thread with start and stop) while RQ's loop works ``queue``; exit with the loop's code."""
    beside.start()
    try:
        settings = deps.base.settings
        code = work_forever([queue], connect=rq_connector(settings), where=redis_location(settings),
                            logging_level=settings.log_level)  # fmt: skip
    finally:
        beside.stop()
    raise SystemExit(code)


def _notify_main(environ: dict[str, str], policy: dict[str, str]) -> None:  # pragma: no cover - in the child
    """The notify process, at a lower CPU priority: the followers of the audit stream (every event shown in Slack;
    approval emails and Teams cards), and RQ's loop over the notify queue (reminders)."""
    from bot.adapters.rq_queue import NOTIFY_QUEUE
    from workers.notify_follower import NotifyFollower
    from workers.outbox import Beside, OutboxFollower

    _as_child(NOTIFY_NICENESS)
    deps = _child_deps(environ, policy)
    slack = NotifyFollower(store=deps.base.store, notifier=deps.notifier)
    _work_beside(deps, NOTIFY_QUEUE, Beside(slack, OutboxFollower(store=deps.base.store, outbox=deps.outbox)))


def _access_main(environ: dict[str, str], policy: dict[str, str]) -> None:  # pragma: no cover - in the child
    """One more access process: a revoker on the due index (claims keep each grant to one revoker) and RQ's loop
    over the grant queue (a slow provider call holds up one loop, not every grant)."""
    from bot.adapters.rq_queue import ACCESS_QUEUE
    from workers.runtime import build_revoker

    _as_child()
    deps = _child_deps(environ, policy)
    _work_beside(deps, ACCESS_QUEUE, build_revoker(deps))


class ChildProcess:
    """A process ``jit worker`` runs beside its own, started again if it dies, stopped with the worker."""

    main: Callable[[dict[str, str], dict[str, str]], None]
    name = 'jit-child'

    def __init__(self, environ: dict[str, str], policy: Callable[[], dict[str, str]]) -> None:
        """``policy``: the files of the policy in force in this process, for each start of the child."""
        self.environ, self.policy = environ, policy
        self._ctx = multiprocessing.get_context('spawn')  # a fresh interpreter: no threads or sockets inherited
        self._proc: Any = None
        self._stop = threading.Event()
        # Held while a child is started and while the children are stopped: none is started after stop() looked.
        self._lock = threading.Lock()
        self._watch = threading.Thread(target=self._supervise, name=f'{self.name}-watch', daemon=True)

    def start(self) -> None:
        self._spawn()
        self._watch.start()

    def _spawn(self) -> None:
        # Not a daemon process: RQ forks its scheduler from it, which a daemon process may not do.
        self._proc = self._ctx.Process(target=type(self).main, args=(self.environ, self.policy()), name=self.name)
        self._proc.start()

    def _supervise(self) -> None:
        while not self._stop.wait(1.0):
            if STOPPING.is_set():
                return  # the worker is stopping: the child was told too (same process group, or stop())
            if self._proc is None or self._proc.is_alive():
                continue
            if self._proc.exitcode in (0, -signal.SIGTERM) and self._stop.wait(ASKED_TO_STOP_GRACE):
                return  # it was asked to stop (a SIGTERM to the process group): so is this process, in a moment
            with self._lock:
                if self._stop.is_set() or STOPPING.is_set():
                    return
                log.warning('worker.child_ended', process=self.name, exitcode=self._proc.exitcode,
                            action='starting it again')  # fmt: skip
                self._spawn()

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._stop.set()
            proc = self._proc
        if proc is not None and proc.is_alive():
            proc.terminate()  # SIGTERM: RQ's warm shutdown, the message being sent is finished
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


class NotifyProcess(ChildProcess):
    """Slack messages in a process of their own.

    A Slack message costs CPU (building blocks, HTTP): in one process with the revoker they took turns under the
    GIL, so a burst of revokes waited on the messages about earlier ones. In a second process, at a lower
    priority, they run on another core when there is one, and after the revokes when there is not.
    """

    main = staticmethod(_notify_main)
    name = 'jit-notify'


class AccessProcess(ChildProcess):
    """One more process that grants and revokes (``JIT_WORKER_PROCESSES``): a revoker and an RQ loop over grants.

    A revoke costs about 2 ms of Python CPU, and the threads of one process share one core (the GIL): one
    process ends about 350 grants a second. A burst of grants falling due at once is shared among the revokers of
    every process by their atomic claims, as among workers; grant jobs go to whichever loop is free, so one slow
    provider call no longer holds up every grant behind it.
    """

    main = staticmethod(_access_main)
    name = 'jit-access'
