"""What the notify follower reads from the store (:mod:`workers.notify_follower`): the audit stream as it grows,
the cursor of what was shown in Slack, and the "ends soon" warnings as they fall due.

A part of :class:`~bot.adapters.redis_store.RedisStore` (it inherits this), kept apart because only the notify
process uses it; the keys are in the store's key table.
"""

from __future__ import annotations

import json
from typing import Any

from bot.adapters._redis_scripts import FORWARD, TAKE_DUE
from bot.core.ports import Clock


class NotifyFeed:
    """The notify follower's reads and cursor, over the store's client, prefix and clock."""

    redis: Any
    prefix: str
    clock: Clock

    def _key(self, *parts: str) -> str:
        return self.prefix + ':'.join(parts)

    def take_due_warnings(self, now: float, limit: int = 100) -> list[str]:
        """The grants whose "ends soon" DM is due, taken off the index in the same step (each is sent once)."""
        return list(self.redis.eval(TAKE_DUE, 1, self._key('warnings:due'), repr(now), str(limit)))

    def put_back_warning(self, request_id: str, at: float) -> None:
        """A warning that could not be sent: due again at ``at`` (unless the grant ended or moved meanwhile)."""
        self.redis.zadd(self._key('warnings:due'), {request_id: at}, nx=True)

    def wait_for_events(self, after: int, timeout: float) -> bool:
        """Block until the stream holds an event after seq ``after``, at most ``timeout`` seconds; True if it does."""
        return bool(self.redis.xread({self._key('audit'): f'{after}-1'}, count=1, block=max(1, int(timeout * 1000))))

    def notify_cursor(self, window: float) -> int:
        """The last audit seq shown in Slack (``notify:cursor``); when there is none yet, set to just before the
        events of the last ``window`` seconds (:meth:`recent_cursor`)."""
        return self.follower_cursor('notify', window)

    def advance_notify_cursor(self, seq: int) -> None:
        """Move the cursor to ``seq``, only forward: a follower that took over during a long batch may be further."""
        self.advance_follower_cursor('notify', seq)

    def follower_cursor(self, name: str, window: float) -> int:
        """The cursor of the follower ``name`` (``notify``, ``outbox``): the last audit seq it handled."""
        key = self._key(name, 'cursor')
        value = self.redis.get(key)
        if value is None:
            self.redis.set(key, self.recent_cursor(window), nx=True)  # two followers starting at once: one wins
            value = self.redis.get(key)
        return int(value or 0)

    def advance_follower_cursor(self, name: str, seq: int) -> None:
        self.redis.eval(FORWARD, 1, self._key(name, 'cursor'), seq)

    def recent_cursor(self, window: float, scan: int = 1000) -> int:
        """The seq before the events of the last ``window`` seconds (of the latest ``scan``): where to start
        following the stream when nothing followed it before."""
        entries = self.redis.xrevrange(self._key('audit'), '+', '-', count=scan)
        since = self.clock.now() - window
        cursor = 0
        for _id, fields in entries:
            seq = int(_id.split('-')[0])
            if json.loads(fields['event'])['time'] < since:
                return seq
            cursor = seq - 1
        return cursor
