"""The audit pump: feeds every sink of :mod:`workers.audit_sinks` from the stream, and applies retention.

Delivery is at least once. :class:`AuditPump` keeps a cursor per sink in Redis (``audit:sink:<key>``,
a hash: ``seq`` and whatever the sink keeps, e.g. the S3 digest chain's last link), reads the events
after it, and moves it only once the sink confirmed them; a restart resumes from there. A crash
between a write and the cursor's move hands the same events again, so each sink tolerates repeats:
the file sink skips seqs its file already ends with, the S3 sink first looks for digests newer than
its cursor, and a SIEM deduplicates by ``seq``. A failing sink is retried with backoff (up to a
minute) and never holds back the others. A lease per sink keeps two workers from writing it at once.

Retention (``JIT_AUDIT_RETENTION``): the pump trims the stream (``XTRIM MINID``) only of events older
than that *and* confirmed by every durable sink it feeds, and records the last trimmed event in
``audit:trimmed`` in the same MULTI/EXEC, so ``jit audit verify`` checks the trimmed stream from
there. With no durable sink it never trims, and says so at start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
import structlog

from bot.adapters.redis_store import RedisStore
from bot.audit import archive
from bot.core.ports import Clock
from bot.settings import Settings
from bot.usecases.lease import held_lease
from workers.audit_sinks import AuditSink, FileSink, S3Sink, WebhookSink

log = structlog.get_logger(__name__)

#: How long one sink's lease lasts without renewal (``held_lease`` renews it while a delivery runs).
SINK_LEASE = 30.0
#: The longest wait between two attempts at a failing sink.
MAX_BACKOFF = 60.0
#: Events read from the stream per step of the retention scan.
TRIM_PAGE = 1000
#: How often the pump looks for events to trim: retention counts in days, a minute late costs nothing.
TRIM_EVERY = 60.0


class AuditPump:
    """A daemon thread that feeds every sink from the stream and applies the retention."""

    def __init__(
        self, *, store: RedisStore, sinks: Sequence[AuditSink], clock: Clock, interval: float = 1.0,
        retention: float | None = None, first_backoff: float = 2.0,
    ) -> None:  # fmt: skip
        """Args:
        first_backoff: seconds before a failed sink is tried again; each failure doubles it, up to a minute.
        """
        self.store, self.sinks, self.clock, self.interval = store, list(sinks), clock, interval
        self.first_backoff = first_backoff
        self.retention = retention
        self.redis: Any = store.redis
        self.durable = [s for s in self.sinks if s.durable]
        self._trimmed_at = float('-inf')  # monotonic time of the last look: the first one is right at start
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='jit-audit-pump', daemon=True)
        if retention is not None and not self.durable:
            log.warning('audit.retention_refused', retention=retention,
                        reason='JIT_AUDIT_RETENTION is set but no durable sink (JIT_AUDIT_FILE or JIT_AUDIT_S3_BUCKET) '
                               'is: the Redis stream will not be trimmed')  # fmt: skip

    def _state_key(self, sink: AuditSink) -> str:
        return f'{self.store.prefix}audit:sink:{sink.key}'

    def cursor(self, sink: AuditSink) -> int:
        """The last seq ``sink`` confirmed."""
        return int(self.redis.hget(self._state_key(sink), 'seq') or 0)

    def start(self) -> None:
        log.info('audit.pump_started', sinks=[s.key for s in self.sinks], retention=self.retention)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 15)

    def pump_once(self) -> dict[str, int]:
        """One round: each sink that is not backing off gets what it has not confirmed yet. Returns the cursors."""
        for sink in self.sinks:
            if time.monotonic() < self._retry_at.get(sink.key, 0):
                continue
            try:
                self._feed(sink)
            except redis.RedisError:
                raise
            except Exception as exc:
                failures = self._failures[sink.key] = self._failures.get(sink.key, 0) + 1
                delay = min(MAX_BACKOFF, self.first_backoff * 2.0 ** min(failures - 1, 6))
                self._retry_at[sink.key] = time.monotonic() + delay
                log.warning('audit.sink_failed', sink=sink.key, error=str(exc), failures=failures, retry_in=delay)
            else:
                if self._failures.pop(sink.key, 0):
                    log.info('audit.sink_recovered', sink=sink.key, seq=self.cursor(sink))
                self._retry_at.pop(sink.key, None)
        return {s.key: self.cursor(s) for s in self.sinks}

    def _feed(self, sink: AuditSink) -> None:
        with held_lease(self.store, f'audit-sink:{sink.key}', SINK_LEASE) as mine:
            if not mine:
                return  # another worker feeds it now
            key = self._state_key(sink)
            state: dict[str, str] = dict(self.redis.hgetall(key))
            cursor = int(state.get('seq', 0))
            while events := self.store.audit_events(cursor + 1, sink.page):
                confirmed, state = sink.deliver(events, state)
                if confirmed > cursor:
                    cursor = confirmed
                    self.redis.hset(key, mapping={**state, 'seq': str(confirmed)})
                if confirmed < events[-1]['seq']:
                    return  # the sink waits for more (an S3 batch that is not full nor old yet)

    def trim_once(self) -> int:
        """Trim the stream of events past the retention that every durable sink confirmed; returns how many."""
        if self.retention is None or not self.durable or not self.store.lease('audit-trim', SINK_LEASE):
            return 0
        try:
            confirmed = min(self.cursor(s) for s in self.durable)
            cutoff = self.clock.now() - self.retention
            last: dict[str, Any] | None = None
            count, start = 0, 1
            while start <= confirmed:
                events = self.store.audit_events(start, TRIM_PAGE)
                for event in events:
                    if event['seq'] > confirmed or event['time'] >= cutoff:
                        events = []
                        break
                    last, count = event, count + 1
                if not events or len(events) < TRIM_PAGE:
                    break
                start = events[-1]['seq'] + 1
            if last is None:
                return 0
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(f'{self.store.prefix}audit:trimmed', mapping={'seq': last['seq'], 'hash': last['hash']})
            pipe.xtrim(f'{self.store.prefix}audit', minid=f'{last["seq"] + 1}-0', approximate=False)
            pipe.execute()
            log.info('audit.trimmed', up_to=last['seq'], events=count, confirmed=confirmed)
            return count
        finally:
            self.store.release_lease('audit-trim')

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.pump_once()
                if self.retention is not None and time.monotonic() - self._trimmed_at >= TRIM_EVERY:
                    self._trimmed_at = time.monotonic()
                    self.trim_once()
            except redis.RedisError as exc:
                log.warning('audit.redis_unavailable', error=str(exc))
            except Exception:
                log.exception('audit.pump_failed')


def build_sinks(settings: Settings, *, clock: Clock, s3_client: Any = None) -> list[AuditSink]:
    """The sinks the settings ask for (none: an empty list)."""
    sinks: list[AuditSink] = []
    if settings.audit_file:
        sinks.append(FileSink(settings.audit_file))
    if settings.audit_webhook_url and settings.audit_webhook_secret:
        sinks.append(WebhookSink(settings.audit_webhook_url, settings.audit_webhook_secret))
    if settings.audit_s3_bucket and settings.audit_digest_key:
        if s3_client is None:
            import boto3  # type: ignore[import-untyped,unused-ignore]
            from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]

            s3_client = boto3.client('s3', endpoint_url=settings.audit_s3_endpoint_url, config=Config(
                connect_timeout=5, read_timeout=30, retries={'max_attempts': 3, 'mode': 'standard'}))  # fmt: skip
        sinks.append(S3Sink(client=s3_client, bucket=settings.audit_s3_bucket, prefix=settings.audit_s3_prefix,
                            signer=archive.load_private_key(settings.audit_digest_key), clock=clock,
                            retention_days=settings.audit_s3_retention_days))  # fmt: skip
    return sinks


def build_audit_pump(settings: Settings, *, store: RedisStore, clock: Clock) -> AuditPump | None:
    """The pump of ``jit worker``, or None when no sink is configured (the refusal to trim is logged then too)."""
    sinks = build_sinks(settings, clock=clock)
    pump = AuditPump(store=store, sinks=sinks, clock=clock, retention=settings.audit_retention)
    return pump if sinks else None
