"""Memory of the Slack deliveries already taken, so that one delivered twice is acted on once.

A signed HTTP request stays valid for Slack's 5 minutes: anyone who has a copy of one (a proxy log, a
captured request) can post it again, and its signature still checks out. Slack itself never sends the
same (timestamp, signature) twice: its retries of events are signed again. Over Socket Mode, Slack sends an
envelope again, with the same ``envelope_id``, when it got no ack in time.

Keys (under the store's prefix, ``jit:`` by default), one per delivery, each deleted by Redis on its own:

======================================  ===================================================================
``replay:<sha256>``                     a signed request taken: SHA-256 of its timestamp and signature
``replay:envelope:<sha256>``            a Socket Mode envelope taken: SHA-256 of its ``envelope_id``
======================================  ===================================================================

Only digests are kept: neither a body nor a signature is stored. ``SET NX`` makes the first of two copies
arriving at once the one that is taken, on any number of ``jit serve`` processes sharing the Redis.
"""

from __future__ import annotations

import hashlib
import math

import redis

#: How long a Socket Mode envelope is remembered; Slack sends one again for a minute or so at most.
ENVELOPE_MEMORY = 6 * 60
#: Added to every memory: clocks of several ``jit serve`` processes differ a little.
MARGIN = 60


class ReplayGuard:
    """Say whether a delivery is the first of its kind (``redis.RedisError`` when Redis does not answer)."""

    def __init__(self, connection: redis.Redis, *, prefix: str = 'jit:') -> None:
        self.redis, self.prefix = connection, prefix

    def _take(self, key: str, seconds: float) -> bool:
        return bool(self.redis.set(key, '1', nx=True, ex=max(1, math.ceil(seconds) + MARGIN)))

    def first_signed(self, timestamp: str, signature: str, *, valid_for: float) -> bool:
        """True the first time a signed request is seen; False for a copy of one seen before.

        Args:
            timestamp: its ``X-Slack-Request-Timestamp``.
            signature: its ``X-Slack-Signature`` (an HMAC over the timestamp and the body).
            valid_for: seconds from now until the edge refuses that timestamp as stale: the request is
                remembered that long (and a little more).
        """
        digest = hashlib.sha256(f'{timestamp}:{signature}'.encode()).hexdigest()
        return self._take(f'{self.prefix}replay:{digest}', valid_for)

    def first_envelope(self, envelope_id: str) -> bool:
        """True the first time a Socket Mode envelope is seen; False when Slack sends it again."""
        digest = hashlib.sha256(envelope_id.encode()).hexdigest()
        return self._take(f'{self.prefix}replay:envelope:{digest}', ENVELOPE_MEMORY)
