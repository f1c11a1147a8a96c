"""What the pipeline API keeps in the store: a grant's sealed access details, and what each ``Idempotency-Key``
filed. A part of :class:`~bot.adapters.redis_store.RedisStore` (it inherits this), kept apart because only the API
and the worker's details delivery use it; the keys are in the store's key table.
"""

from __future__ import annotations

import json
from typing import Any

import redis


class PipelineKeys:
    """Sealed details and idempotency keys, over the store's client and prefix."""

    redis: Any
    prefix: str

    def _key(self, *parts: str) -> str:
        return self.prefix + ':'.join(parts)

    def put_sealed_details(self, request_id: str, sealed: str, ttl: float) -> None:
        """Keep a sealed box for its pipeline (:meth:`sealed_details`), at most ``ttl`` seconds.

        Only the pipeline's private key opens it, so it is handed out on every read, not once: an answer lost
        on the way does not lose the details. It goes when the grant ends (:meth:`mark_end`, :meth:`_index`).
        """
        self.redis.set(self._key('details', request_id), sealed, ex=max(1, int(ttl)))

    def sealed_details(self, request_id: str) -> str | None:
        """The sealed details, left in place for the next read (until the grant ends or they expire)."""
        return self.redis.get(self._key('details', request_id))  # type: ignore[no-any-return]

    def claim_idempotency(self, pipeline: str, key: str, fingerprint: str, *, ttl: float) -> dict[str, Any] | None:
        """Take ``Idempotency-Key`` ``key`` of ``pipeline`` for a body (``fingerprint``) about to be filed.

        None: taken (SET NX, so of two concurrent retries exactly one files); it holds ``ttl`` seconds unless
        :meth:`settle_idempotency` records what was filed. Otherwise what the key holds already,
        ``{"body": FINGERPRINT, "id": REQUEST_ID or None while it is being filed}``.
        """
        name = self._key('idem', pipeline, key)
        mine = json.dumps({'body': fingerprint, 'id': None})
        for _ in range(3):  # the holder may let go between the two calls (its filing was refused)
            if self.redis.set(name, mine, nx=True, ex=max(1, int(ttl))):
                return None
            held = self.redis.get(name)
            if held is not None:
                return dict(json.loads(held))
        raise redis.RedisError('the idempotency key keeps changing hands')

    def settle_idempotency(self, pipeline: str, key: str, fingerprint: str, request_id: str, *, ttl: float) -> None:
        """The key filed ``request_id``: a retry with it gets that request for ``ttl`` seconds."""
        record = json.dumps({'body': fingerprint, 'id': request_id})
        self.redis.set(self._key('idem', pipeline, key), record, ex=max(1, int(ttl)))

    def forget_idempotency(self, pipeline: str, key: str) -> None:
        """Nothing was filed with the key (refused, or an error): a retry with it may file."""
        self.redis.delete(self._key('idem', pipeline, key))
