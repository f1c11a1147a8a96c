"""What is to be sent outside Slack (approval emails, Teams cards), kept in Redis until it is sent.

Each delivery has a key that says what it is: ``kind|request ID|to|step`` (``to`` an email address or a Teams
channel's name). The key is its identity: added twice, it is queued once; sent, it is remembered for the
request (``sent``), so a follower that shows the same events again sends nothing twice.

=============================  ====================================================================
``{prefix}outbox:due``         sorted set: delivery keys by when to try them next
``{prefix}outbox:attempts``    hash: delivery key -> failed attempts so far
``{prefix}outbox:sent:{id}``   set: the keys sent for request ``id`` (expires with the request's record)
``{prefix}outbox:cursor``      the outbox follower's position in the audit stream (kept by the store)
``{prefix}outbox:asked:…``     links asked for on a Teams page: when the last was, how many so far
=============================  ====================================================================

The web process adds deliveries too (the Teams page's "send me my link", :meth:`OutboxStore.ask_link`); only the
worker's follower sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

#: How long the record of what was sent for a request is kept: longer than any request stays pending.
SENT_KEPT = 30 * 86400
#: A link asked for on a Teams page (KEYS: the last one's time, the count, the due queue; ARGV: whether the address
#: may have one, the spacing in ms, the most, how long the count is kept in s, the delivery key but its step (the
#: count is), its score). One round trip whatever the address: the page's timing does not tell who may decide.
_ASK_LINK = '''
if ARGV[1] ~= '1' or redis.call('exists', KEYS[1]) == 1 then return 0 end
if tonumber(redis.call('get', KEYS[2]) or '0') >= tonumber(ARGV[3]) then return 0 end
redis.call('set', KEYS[1], '1', 'PX', ARGV[2])
local n = redis.call('incr', KEYS[2])
redis.call('expire', KEYS[2], ARGV[4])
return redis.call('zadd', KEYS[3], 'NX', ARGV[6], ARGV[5] .. n)
'''


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to send: ``kind`` (``ask-email``, ``ask-teams``, ``link-email``, ``notice-email``,
    ``notice-teams``, ``outcome-teams``), the request, the address or channel, and the step (or a tag)."""

    kind: str
    request_id: str
    to: str
    step: str = ''

    @property
    def key(self) -> str:
        return '|'.join((self.kind, self.request_id, self.to, self.step))

    @classmethod
    def from_key(cls, key: str) -> Delivery:
        kind, request_id, to, step = [*key.split('|'), '', '', '', ''][:4]
        return cls(kind, request_id, to, step)

    @property
    def channel(self) -> str:
        """``email`` or ``teams``: how it goes out (the audit event's ``channel``)."""
        return 'teams' if self.kind.endswith('-teams') else 'email'


class OutboxStore:
    """The outbox's Redis keys (see the module docstring)."""

    def __init__(self, conn: redis.Redis, *, prefix: str) -> None:
        self.redis, self.prefix = conn, prefix
        self._due, self._attempts = f'{prefix}outbox:due', f'{prefix}outbox:attempts'

    def _sent(self, request_id: str) -> str:
        return f'{self.prefix}outbox:sent:{request_id}'

    def add(self, delivery: Delivery, at: float) -> bool:
        """Queue ``delivery`` for ``at``, unless it is queued or was sent already; True when queued now."""
        key = delivery.key
        if self.redis.sismember(self._sent(delivery.request_id), key):
            return False
        return bool(self.redis.zadd(self._due, {key: at}, nx=True))

    def ask_link(self, request_id: str, to: str, at: float, *, may: bool, every: float, most: int, keep: float) -> bool:
        """Queue a ``link-email`` to ``to`` for ``at`` if ``may``, none went there for the request in the last
        ``every`` seconds, and fewer than ``most`` did in all (counted for ``keep`` seconds; the count is the
        delivery's step). The same one round trip whether or not ``may``. True when queued now."""
        asked = f'{self.prefix}outbox:asked:{request_id}:{to}'
        keys = (f'{asked}:last', f'{asked}:count', self._due)
        key = Delivery('link-email', request_id, to).key
        args = ('1' if may else '0', max(1, int(every * 1000)), most, max(1, int(keep)), key, repr(at))
        return bool(self.redis.eval(_ASK_LINK, len(keys), *keys, *args))

    def due(self, now: float, limit: int = 50) -> list[Delivery]:
        keys: Any = self.redis.zrangebyscore(self._due, '-inf', now, start=0, num=limit)
        return [Delivery.from_key(k if isinstance(k, str) else k.decode()) for k in keys]

    def sent(self, delivery: Delivery) -> None:
        key, sent = delivery.key, self._sent(delivery.request_id)
        pipe = self.redis.pipeline()
        pipe.sadd(sent, key)
        pipe.expire(sent, SENT_KEPT)
        pipe.zrem(self._due, key)
        pipe.hdel(self._attempts, key)
        pipe.execute()

    def was_sent(self, delivery: Delivery) -> bool:
        return bool(self.redis.sismember(self._sent(delivery.request_id), delivery.key))

    def failed(self, delivery: Delivery) -> int:
        """One more failed attempt; returns the attempts so far."""
        return int(self.redis.hincrby(self._attempts, delivery.key, 1))

    def retry_at(self, delivery: Delivery, at: float) -> None:
        self.redis.zadd(self._due, {delivery.key: at}, xx=True)

    def drop(self, delivery: Delivery) -> None:
        """Given up on (or no longer needed): off the queue, not marked sent."""
        pipe = self.redis.pipeline()
        pipe.zrem(self._due, delivery.key)
        pipe.hdel(self._attempts, delivery.key)
        pipe.execute()

    def queued(self) -> int:
        return int(self.redis.zcard(self._due))
