"""The store in memory: the :class:`~bot.core.ports.RequestStore` port without Redis, for use-case tests.

It keeps what :class:`~bot.adapters.redis_store.RedisStore` keeps, as plain dicts under one lock: the requests
as JSON (so every read is a fresh object, as from Redis), the hash-chained audit trail, and the indexes that
the Redis store writes in the same atomic step as the request (due revokes, pending, watch, holders; not the
"ends soon" index, which only the notify follower reads). ``tests/contract/test_store_contract.py`` holds
both to one contract, so a use-case test that passes here means the same with the real store.

It is not a Redis emulator: only the port's methods exist, and sorted sets are dicts read in score order
(members with equal scores in byte order, as Redis does). Leases lapse in real time, as Redis' ``PX`` does,
whatever the clock the store was given says.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

from bot.core.errors import RequestNotFound
from bot.core.model import GENESIS_HASH, LIVE_STATUSES, AccessRequest, AuditEvent, RequestStatus, chain_hash
from bot.core.ports import Clock, Transition

S = RequestStatus
HOLDING = frozenset({S.GRANTING, S.ACTIVE, S.REVOKE_FAILED})
#: As :data:`bot.adapters.redis_store.WATCH_AFTER` (a test asserts they agree).
WATCH_AFTER = 30.0


def _upto(index: dict[str, float], high: float, limit: int, *, low: float = float('-inf')) -> list[str]:
    """Members scored in [low, high], lowest score first, ties in byte order (``ZRANGEBYSCORE ... LIMIT``)."""
    members = sorted((score, member) for member, score in index.items() if low <= score <= high)
    return [member for _score, member in members[:limit]]


class MemoryStore:
    """Everything :class:`~bot.core.ports.RequestStore` promises, in this process's memory."""

    def __init__(self, *, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.RLock()  # one step at a time: the atomicity Redis gives the real store
        self._requests: dict[str, str] = {}
        self._audit: list[str] = []
        self._head = GENESIS_HASH
        self._user: dict[str, dict[str, float]] = {}
        self._pending: dict[str, float] = {}
        self._pending_expiry: dict[str, float] = {}
        self._due: dict[str, float] = {}
        self._watch: dict[str, float] = {}
        self._warnings: dict[str, float] = {}
        self._holds: dict[tuple[str, str, str], set[str]] = {}
        self._seen: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._keys: dict[str, str] = {}
        self._slots: dict[str, list[float]] = {}
        self._leases: dict[str, tuple[str, float]] = {}  # name -> (token, lapses at, monotonic)
        self._tokens: dict[str, str] = {}
        self._policy_in_force: str | None = None

    # -- requests ------------------------------------------------------------------------------

    def get(self, request_id: str) -> AccessRequest | None:
        with self._lock:
            raw = self._requests.get(request_id)
        return AccessRequest.from_json(raw) if raw else None

    def _many(self, ids: list[str]) -> list[AccessRequest]:
        return [AccessRequest.from_json(self._requests[i]) for i in ids if i in self._requests]

    def for_user(self, slack_id: str, limit: int = 50) -> list[AccessRequest]:
        with self._lock:
            index = self._user.get(slack_id, {})
            newest = sorted(((score, member) for member, score in index.items()), reverse=True)[:limit]
            return self._many([member for _score, member in newest])

    def pending(self, limit: int = 200) -> list[AccessRequest]:
        with self._lock:
            return self._many(_upto(self._pending, float('inf'), limit))

    def create(self, request: AccessRequest, event: AuditEvent) -> int:
        with self._lock:
            if request.id in self._requests:
                raise ValueError(f'request {request.id} exists')
            return self._write(request, None, event)

    def transition(self, request_id: str, step: Transition) -> tuple[AccessRequest, int]:
        with self._lock:
            raw = self._requests.get(request_id)
            if raw is None:
                raise RequestNotFound(f'No request has the ID {request_id}.')
            old = AccessRequest.from_json(raw)
            new, event = step(old)  # raises: nothing written
            return new, self._write(new, old, event)

    def mark_end(self, request_id: str, *, at: float, actor: str, why: str) -> bool:
        with self._lock:
            raw = self._requests.get(request_id)
            if raw is None:
                return False
            request = AccessRequest.from_json(raw)
            if request.status not in LIVE_STATUSES or request_id not in self._due:
                return False
            if not request.ending:
                self._requests[request_id] = replace(request, ending={'at': at, 'actor': actor, 'why': why}).to_json()
            self._due[request_id] = min(self._due[request_id], at)
            return True

    def holders(self, request: AccessRequest) -> set[str]:
        with self._lock:
            return set(self._holds.get(self._holds_key(request), set()))

    @staticmethod
    def _holds_key(request: AccessRequest) -> tuple[str, str, str]:
        return request.resource, request.role, request.requester.access_key

    # -- audit ---------------------------------------------------------------------------------

    def record(self, event: AuditEvent) -> int:
        with self._lock:
            return self._chain(event)

    def audit_event(self, seq: int) -> dict[str, Any] | None:
        with self._lock:
            return json.loads(self._audit[seq - 1]) if 0 < seq <= len(self._audit) else None

    def audit_events(self, start: int = 1, count: int = 1000) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(raw) for raw in self._audit[max(start, 1) - 1 :][:count]]

    # -- the grant indexes ---------------------------------------------------------------------

    def due_for_revoke(self, now: float, limit: int = 100) -> list[str]:
        with self._lock:
            return _upto(self._due, now, limit)

    def due_at(self, request_id: str) -> float | None:
        with self._lock:
            return self._due.get(request_id)

    def get_with_due(self, request_id: str) -> tuple[AccessRequest | None, float | None]:
        with self._lock:
            return self.get(request_id), self._due.get(request_id)

    def postpone_revoke(self, request_id: str, until: float) -> None:
        with self._lock:
            if request_id in self._due:
                self._due[request_id] = until

    def clear_due(self, request_id: str) -> None:
        with self._lock:
            self._due.pop(request_id, None)

    def note_revoke_failure(self, request_id: str) -> int:
        with self._lock:
            self._failures[request_id] = self._failures.get(request_id, 0) + 1
            return self._failures[request_id]

    def pending_expired(self, now: float, limit: int = 100) -> list[str]:
        with self._lock:
            return _upto(self._pending_expiry, now, limit)

    def stalled_grants(self, now: float, limit: int = 100) -> list[str]:
        with self._lock:
            return _upto(self._watch, now, limit)

    def watch(self, request_id: str, at: float) -> None:
        with self._lock:
            if request_id in self._watch:
                self._watch[request_id] = at

    def unwatch(self, request_id: str) -> None:
        with self._lock:
            self._watch.pop(request_id, None)

    def live_grants(self, limit: int = 10_000) -> list[AccessRequest]:
        with self._lock:
            ids = _upto(self._due, float('inf'), limit, low=self.clock.now())
            return [r for r in self._many(ids) if r.status is S.ACTIVE]

    def note_seen(self, request_id: str, at: float) -> float:
        with self._lock:
            self._seen[request_id] = max(self._seen.get(request_id, at), at)
            return self._seen[request_id]

    # -- leases, limits, keys ------------------------------------------------------------------

    def swap_policy_in_force(self, version: str) -> bool:
        with self._lock:
            old, self._policy_in_force = self._policy_in_force, version
            return old != version

    def lease(self, name: str, seconds: float) -> bool:
        with self._lock:
            held = self._leases.get(name)
            if held is not None and held[1] > time.monotonic():
                return False
            token = uuid.uuid4().hex
            self._leases[name] = (token, time.monotonic() + seconds)
            self._tokens[name] = token
            return True

    def renew_lease(self, name: str, seconds: float) -> bool:
        with self._lock:
            token, held = self._tokens.get(name), self._leases.get(name)
            if token is None or held is None or held[0] != token or held[1] <= time.monotonic():
                return False
            self._leases[name] = (token, time.monotonic() + seconds)
            return True

    def release_lease(self, name: str) -> None:
        with self._lock:
            token, held = self._tokens.pop(name, None), self._leases.get(name)
            if token is not None and held is not None and held[0] == token and held[1] > time.monotonic():
                del self._leases[name]

    def take_slot(self, name: str, *, now: float, window: float, limit: int) -> float | None:
        with self._lock:
            uses = [t for t in self._slots.get(name, []) if t > now - window]
            self._slots[name] = uses
            if len(uses) >= limit:
                return min(uses) + window - now
            uses.append(now)
            return None

    def ssh_key(self, slack_id: str) -> str | None:
        with self._lock:
            return self._keys.get(slack_id)

    def set_ssh_key(self, slack_id: str, key: str) -> None:
        with self._lock:
            self._keys[slack_id] = key

    def overwrite(self, request: AccessRequest) -> None:
        """Replace a stored request as it is, indexes untouched (``tests/support/stores.overwrite``)."""
        with self._lock:
            self._requests[request.id] = request.to_json()

    # -- one step: the request, its indexes, its event -------------------------------------------

    def _write(self, new: AccessRequest, old: AccessRequest | None, event: AuditEvent) -> int:
        self._requests[new.id] = new.to_json()
        self._index(new, old)
        return self._chain(event)

    def _chain(self, event: AuditEvent) -> int:
        seq = len(self._audit) + 1
        record = {'seq': seq, 'time': self.clock.now(), **event.to_dict(), 'prev_hash': self._head}
        record['hash'] = chain_hash(record, self._head)
        self._audit.append(json.dumps(record, sort_keys=True))
        self._head = record['hash']
        return seq

    def _index(self, new: AccessRequest, old: AccessRequest | None) -> None:
        """What ``RedisStore._index`` writes, rule for rule."""
        if old is None and new.requester.owner_key:
            self._user.setdefault(new.requester.owner_key, {})[new.id] = new.created_at
        if new.status is S.PENDING:
            self._pending[new.id] = new.created_at
            if new.pending_until:
                self._pending_expiry[new.id] = new.pending_until
        else:
            self._pending.pop(new.id, None)
            self._pending_expiry.pop(new.id, None)
        holds = self._holds.setdefault(self._holds_key(new), set())
        if new.status in HOLDING and not new.extends:
            holds.add(new.id)
        elif old is not None and old.status in HOLDING:
            holds.discard(new.id)
        if new.status is S.APPROVED:
            self._watch[new.id] = self.clock.now() + WATCH_AFTER
        elif new.status is S.GRANTING:
            self._watch.setdefault(new.id, self.clock.now() + WATCH_AFTER)
        else:
            self._watch.pop(new.id, None)
        if new.status is S.GRANTING and new.grant_deadline:
            self._due.setdefault(new.id, new.grant_deadline)
        elif new.status is S.ACTIVE and new.expires_at:
            self._due[new.id] = min(new.expires_at, float(new.ending['at'])) if new.ending else new.expires_at
        elif new.status is S.FAILED and old is not None and old.status is S.GRANTING:
            self._due[new.id] = new.ended_at or 0
        elif new.status is S.REVOKED:
            self._due.pop(new.id, None)
            self._failures.pop(new.id, None)
