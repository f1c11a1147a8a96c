"""Is Redis there? One place that waits for it and says so in one line, for every process of jit.

A Redis that does not answer at start, or goes away later, is an outage to ride out, not a reason to exit
with a traceback: the web process answers ``/readyz`` with 503 meanwhile, the worker waits to start its job
loop again (``workers/supervise.py``).
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import structlog

log = structlog.get_logger(__name__)

#: Longest wait between two pings of an unreachable Redis.
MAX_WAIT = 5.0
#: How often the wait for Redis says it is still waiting.
SAY_EVERY = 30.0


def redacted(url: str) -> str:
    """The Redis URL without its password (``redis://:***@host:6379/0``), fit for a log line."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return 'redis://?'
    if parts.password is None:
        return url
    user = parts.username or ''
    host = parts.hostname or ''
    netloc = f'{user}:***@{host}' + (f':{parts.port}' if parts.port else '')
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def wait_for_redis(client: Any, url: str, *, stop: threading.Event | None = None) -> bool:
    """Ping until Redis answers; True when it does, False when ``stop`` was set meanwhile.

    Says so in one line when Redis does not answer (which URL, what failed), then every :data:`SAY_EVERY`.
    """
    delay, said, first = 0.25, 0.0, True
    while True:
        if stop is not None and stop.is_set():
            return False
        try:
            client.ping()
        except (redis.RedisError, OSError) as exc:
            now = time.monotonic()
            if first or now - said >= SAY_EVERY:
                log.warning('redis.unreachable', url=redacted(url), error=f'{type(exc).__name__}: {exc}'[:200],
                            retry_in=round(delay, 2))  # fmt: skip
                said, first = now, False
            if stop is not None and stop.wait(delay):
                return False  # asked to stop while waiting: at once, not after the wait
            if stop is None:
                time.sleep(delay)
            delay = min(MAX_WAIT, delay * 2)
            continue
        if not first:
            log.info('redis.reachable', url=redacted(url))
        return True
