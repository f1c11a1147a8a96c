"""A store of either kind for a test: :class:`MemoryStore`, or :class:`RedisStore` on a flushed database."""

from __future__ import annotations

import redis

from bot.adapters.redis_store import RedisStore
from bot.core.model import AccessRequest
from bot.core.ports import Clock
from tests.support.memory_store import MemoryStore


def new_store(kind: str, clock: Clock, *, url: str) -> MemoryStore | RedisStore:
    """``kind`` 'memory' or 'redis' (database ``url``, emptied first: the test's own, see ``own_redis_url``)."""
    if kind == 'memory':
        return MemoryStore(clock=clock)
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    return RedisStore(client, clock=clock)


def overwrite(store: MemoryStore | RedisStore, request: AccessRequest) -> None:
    """Put ``request`` as it is, past every transition and index: a state no step can reach, set up by a test."""
    if isinstance(store, MemoryStore):
        store.overwrite(request)
    else:
        store.redis.set(f'{store.prefix}req:{request.id}', request.to_json())
