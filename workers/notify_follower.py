"""The notify follower: shows every audit event in Slack, in order, reading the audit stream itself.

Nothing that changes a request queues a message any more: the event it records in the same atomic step *is*
the message to send. So a grant or a revoke costs no job enqueue, and a burst of events is shown in a few
batches instead of one job each (see :meth:`SlackNotifier.handle_batch` for what a batch sends once).

It sends the "ends soon" DMs too, as they fall due (``warnings:due``, which the store keeps with each grant's
end, so an extension moves its warning in the same step).

One follower at a time, among all the workers' notify processes (lease ``notify-follower``); the others wait
to take over. The position is ``notify:cursor`` in Redis, moved once a batch is shown; after a crash the
batch is shown again (at least once). With no cursor yet (a new install, or Redis lost its data), following
starts with the events of the last :data:`START_WINDOW` seconds, not the whole trail.
"""

from __future__ import annotations

import threading
import time

import redis
import structlog
from slack_sdk.errors import SlackApiError

from bot.adapters.redis_store import RedisStore
from bot.adapters.slack_notifier import SlackNotifier
from bot.usecases.lease import held_lease

log = structlog.get_logger(__name__)

#: The follower's lease; renewed while it works, so a killed follower is replaced within this long.
LEASE = 15.0
#: How long the lease is held before it is let go and taken again (below the heartbeat's limit, CALL_LIMIT).
HOLD = 60.0
#: Events shown per batch.
BATCH = 200
#: After a quiet spell, how long to let the rest of a burst land (an approval's grant follows it within
#: milliseconds): one update then shows the request granted, instead of approved, granting, granted.
SETTLE = 0.1
#: Where following starts when it never did: the events of the last this many seconds.
START_WINDOW = 60.0
#: The longest wait between two attempts at a Slack that does not answer.
MAX_BACKOFF = 30.0


class NotifyFollower:
    """A daemon thread that follows the audit stream and hands each batch to the Slack notifier."""

    def __init__(
        self, *, store: RedisStore, notifier: SlackNotifier, block: float = 1.0, settle: float = SETTLE,
        batch: int = BATCH,
    ) -> None:  # fmt: skip
        self.store, self.notifier = store, notifier
        self.block, self.settle, self.batch = block, settle, batch
        self._done: set[str] = set()
        self._retrying: int | None = None  # the last seq of a batch that failed part-way
        self._failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='jit-notify-follower', daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.block + 5)

    def cursor(self) -> int:
        """The last seq shown; set (to just before the last :data:`START_WINDOW` seconds) when there is none."""
        return self.store.notify_cursor(START_WINDOW)

    def follow_once(self) -> int:
        """Show the next batch (waiting up to ``block`` seconds for one); returns how many events it held.

        Called with the lease held. A batch that fails part-way (Slack unreachable) raises; the next call gets
        the same events and sends only the parts not sent yet.
        """
        self.warn_due()
        cursor = self.cursor()
        records = self.store.audit_events(cursor + 1, self.batch)
        if self._retrying is not None:  # exactly the failed batch again: what it sent is known by part
            records = [r for r in records if r['seq'] <= self._retrying]
            if not records:  # gone (Redis lost its data): nothing of it is left to send
                self._retrying = None
                self._done.clear()
        if not records:
            if not self.store.wait_for_events(cursor, self.block):
                return 0
            if self.settle:
                time.sleep(self.settle)
            records = self.store.audit_events(cursor + 1, self.batch)
        self._retrying = records[-1]['seq']
        self.notifier.handle_batch(records, self._done)
        self.store.advance_notify_cursor(records[-1]['seq'])
        self._done.clear()
        self._retrying = None
        return len(records)

    def warn_due(self) -> int:
        """Send the "ends soon" DMs that are due (``warnings:due``, kept by the store with each grant's end)."""
        now = self.store.clock.now()
        due = self.store.take_due_warnings(now)
        for n, request_id in enumerate(due):
            try:
                self.notifier.warn_expiry(request_id)
            except SlackApiError as exc:
                log.warning('notify.warning_failed', request_id=request_id, error=exc.response.get('error'))
            except BaseException:
                for rest in due[n:]:  # taken off the index but not sent: due again at once
                    self.store.put_back_warning(rest, now)
                raise
        return len(due)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with held_lease(self.store, 'notify-follower', LEASE) as mine:
                    # Held round after round (the others would only take turns), let go well within the
                    # heartbeat's limit for one holding, and taken again at once.
                    until = time.monotonic() + HOLD
                    while mine and not self._stop.is_set() and time.monotonic() < until:
                        self.follow_once()
                        self._failures = 0
                if not mine:
                    self._stop.wait(1.0)  # another worker follows: take over if it stops
            except redis.RedisError as exc:
                log.warning('notify.redis_unavailable', error=str(exc))
                self._stop.wait(1.0)
            except Exception as exc:  # Slack unreachable, or a bug: the same events again after a pause
                self._failures += 1
                delay = min(MAX_BACKOFF, 0.5 * 2 ** min(self._failures, 6))
                log.warning('notify.batch_failed', error=f'{type(exc).__name__}: {exc}'[:300], retry_in=delay,
                            failures=self._failures)  # fmt: skip
                self._stop.wait(delay)
