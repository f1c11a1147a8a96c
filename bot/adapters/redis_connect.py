"""Every Redis connection jit's processes make is built here: from ``REDIS_URL``, or through Redis Sentinel.

With ``REDIS_SENTINELS`` set, a client is ``Sentinel(...).master_for(REDIS_SENTINEL_MASTER)``: redis-py's
``SentinelConnectionPool`` asks the sentinels for the primary each time it opens a connection, so after a
failover every client (the store's, RQ's, the worker's loops, RQ's scheduler, which copies RQ's pool) finds the
new primary on its next reconnect. ``REDIS_URL`` then supplies only the db, the password and TLS (``rediss://``).
Without sentinels, clients are built from ``REDIS_URL`` exactly as before.

Replication is asynchronous, so a failover can lose the last writes the old primary had acknowledged. With
sentinels, :class:`ReplicaWait` makes each step on a request and the audit chain wait (``WAIT 1``) until a
replica has it, before jit acts on it: the ``granting`` step is on a replica before a provider is called, an
``active`` grant's revoke time before anyone is told. See the README's "Scaling and high availability".
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
import structlog
from redis.connection import SSLConnection, parse_url
from redis.sentinel import Sentinel

from bot.adapters.redis_health import redacted
from bot.settings import Settings

log = structlog.get_logger(__name__)

#: How long a step waits for a replica to acknowledge it; on a healthy network a replica answers within a ms.
REPLICA_TIMEOUT_MS = 250
#: After a wait that timed out (no replica in sync), steps go on without waiting this long before trying again.
REPLICA_RETRY_AFTER = 10.0


def redis_client(settings: Settings, *, decode_responses: bool, **options: Any) -> redis.Redis:
    """A client of jit's Redis (the primary, with sentinels); ``options``: redis-py's socket and retry options.

    ``decode_responses``: True for the store (``str``), False for RQ (which needs bytes).
    """
    if not settings.redis_sentinels:
        return redis.Redis.from_url(settings.redis_url, decode_responses=decode_responses, **options)
    data: dict[str, Any] = parse_url(settings.redis_url)  # type: ignore[no-untyped-call]
    tls = data.pop('connection_class', None) is SSLConnection
    for key in ('host', 'port', 'path'):
        data.pop(key, None)
    sentinel_options: dict[str, Any] = {
        key: options[key] for key in ('socket_timeout', 'socket_connect_timeout') if key in options
    }
    if settings.redis_sentinel_password:
        sentinel_options['password'] = settings.redis_sentinel_password
    sentinel = Sentinel(list(settings.redis_sentinels), sentinel_kwargs=sentinel_options)
    assert settings.redis_sentinel_master is not None  # load_settings requires it with sentinels
    client: redis.Redis = sentinel.master_for(
        settings.redis_sentinel_master, redis_class=redis.Redis, decode_responses=decode_responses, ssl=tls,
        **data, **options,
    )  # fmt: skip
    return client


def redis_location(settings: Settings) -> str:
    """Where jit's Redis is, for log lines: the URL without its password, or the sentinels and the service."""
    if not settings.redis_sentinels:
        return redacted(settings.redis_url)
    sentinels = ','.join(f'{host}:{port}' for host, port in settings.redis_sentinels)
    return f'sentinel://{sentinels}/{settings.redis_sentinel_master}'


class ReplicaWait:
    """Whether a committed step waits for a replica (``WAIT 1``, sent by ``GroupCommit`` on the step's own
    connection: WAIT counts the writes of the connection it is sent on), and what to do with the answer.

    When no replica acknowledges within :data:`REPLICA_TIMEOUT_MS` (the replica is down or far behind, or the
    primary has none since a failover), it says so and lets steps go on without waiting for
    :data:`REPLICA_RETRY_AFTER`: jit stays available, and a failover in that window may lose the latest steps (the
    reconciler revokes any access a provider holds that jit no longer knows as active). A Redis error raises: the
    step's caller treats it like a commit whose answer was lost, which it already recovers from.
    """

    def __init__(self, *, timeout_ms: int = REPLICA_TIMEOUT_MS, retry_after: float = REPLICA_RETRY_AFTER) -> None:
        self.timeout_ms, self.retry_after = timeout_ms, retry_after
        self._skip_until = 0.0
        self._lock = threading.Lock()

    def wanted(self) -> bool:
        """Wait for a replica on this commit (not while a recent wait found none in sync)."""
        return time.monotonic() >= self._skip_until

    def acked(self, replicas: int) -> None:
        """WAIT's answer: how many replicas have the step."""
        if replicas >= 1:
            return
        with self._lock:
            if time.monotonic() >= self._skip_until:
                self._skip_until = time.monotonic() + self.retry_after
                log.warning('redis.no_replica_in_sync', waited_ms=self.timeout_ms,
                            action=f'not waiting for replicas for {self.retry_after:g} s')  # fmt: skip
