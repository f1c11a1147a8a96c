"""Requests, their indexes and the audit trail in Redis, each change one atomic step.

Keys (all under a prefix, ``jit:`` by default):

=============================  ==========================================================
``req:<id>``                   the request, JSON
``audit``                      the audit stream; entry ID ``<seq>-1``, field ``event`` JSON
``audit:head``                 hash ``{seq, hash}``: the last event, what the next one chains to
``grants:due``                 sorted set: when each grant's revoke is due (see below)
``pending``                    sorted set of pending request IDs by filing time
``pending:expiry``             sorted set: when each pending request expires undecided
``user:<slack id>``            sorted set of a user's request IDs by filing time (``user:pipeline:<name>``
                               for a pipeline's)
``details:<id>``               a grant's access details sealed to the pipeline's key (ciphertext only jit
                               cannot read), handed out on every read until the grant ends (released,
                               revoked, failed) or expires (the key's TTL)
``idem:<pipeline>:<key>``      what a pipeline's ``Idempotency-Key`` filed (:meth:`claim_idempotency`)
``req:<id>:messages``          hash channel -> ts of the approval messages (to update them)
``req:<id>:reminders``         hash step -> reminders sent to that step's approvers (one sweeper sends each)
``req:<id>:seen``              when the grant was last seen in use (``revoke_on_idle``)
``revoke_failures:<id>``       failed revoke tries of a grant, ended by its revoke (alerts from the eighth)
``notify:cursor``              the last audit seq shown in Slack (:mod:`workers.notify_follower`)
``grants:watch``               sorted set: when to check on an approved grant that is not active yet
``warnings:due``               sorted set: when to DM a grantee that the grant ends soon (moved by extensions)
``sshkey:<slack id>``          a user's OpenSSH public key (``/jit ssh-key``), for the ssh provider
``holds:<res>:<role>:<who>``   set of the requests holding that access now (granting or active); ``<who>``
                               is ``Principal.access_key``
``lease:<name>``               short locks so two sweepers do not revoke the same grant at once
``slots:<name>``               sorted set of recent uses (a sliding-window rate limit)
``policy:in_force``            the policy version the audit trail last recorded as loaded (``policy.loaded``)
=============================  ==========================================================

Kept by others under the same prefix: ``claim:revoke:<id>`` (:mod:`workers.revoker`), ``replay:*``
(:mod:`bot.adapters.replay_guard`), ``audit:sink:<key>`` and ``audit:trimmed`` (:mod:`workers.audit_pump`).

The module is the one place that knows every key above, so it runs a little over 300 lines: the key table,
the reads and the index rules a step writes (:meth:`RedisStore._index`) are read together.

A transition reads the request and the audit head, applies the pure step from
``bot.core.transitions``, and writes the request, the indexes and the hash-chained audit event
in one Lua step that first checks that neither moved; if one did it starts again, and then the
step itself sees the new state (``already decided``). The audit chain's SHA-256 is computed here
rather than in Lua because Redis' Lua has no SHA-256.

``grants:due`` is written *before* a grant is attempted (at ``granting``, scored with a deadline
that bounds the grant), so a worker that dies mid-grant still leaves a revoke behind; once the
provider confirms, the score becomes ``expires_at``.

``grants:watch`` holds every ``approved`` or ``granting`` request, scored with when the sweeper
should look at it: a grant job that was lost, or a worker killed mid-call, leaves its request
there until the sweeper queues the grant again (or, out of time, fails it closed). A live grant
attempt keeps pushing its score forward with its lease.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import redis

from bot.adapters._notify_feed import NotifyFeed
from bot.adapters._pipeline_keys import PipelineKeys
from bot.adapters._redis_scripts import FREE, RENEW, TAKE_SLOT
from bot.adapters.group_commit import GroupCommit, Writes
from bot.core.errors import RequestNotFound
from bot.core.model import FINAL_STATUSES, LIVE_STATUSES, AccessRequest, AuditEvent, RequestStatus, chain_hash
from bot.core.ports import Clock, Transition

S = RequestStatus

#: States in which a request holds (or is getting) its access at the provider.
HOLDING = frozenset({S.GRANTING, S.ACTIVE, S.REVOKE_FAILED})
#: How long an approved request may wait for its grant job before the sweeper queues it again.
WATCH_AFTER = 30.0


class RedisStore(NotifyFeed, PipelineKeys):
    """The :class:`~bot.core.ports.RequestStore` over a ``redis.Redis`` (``decode_responses=True``); what the notify
    follower reads is in :class:`~bot.adapters._notify_feed.NotifyFeed`."""

    def __init__(
        self, connection: redis.Redis, *, clock: Clock, prefix: str = 'jit:', replica_wait: Any = None
    ) -> None:
        """``replica_wait``: each step waits until a replica has it (``bot.adapters.redis_connect.ReplicaWait``)."""
        # redis-py types every answer as a union over bytes/str and sync/async; with
        # decode_responses=True they are str, so the client is used untyped here.
        self.redis: Any = connection
        self.clock = clock
        self.prefix = prefix
        self._tokens: dict[str, str] = {}  # the leases this process holds, name -> token
        self._commits = GroupCommit(self.redis, head=self._key('audit', 'head'), replica_wait=replica_wait)

    # -- reads -------------------------------------------------------------------------------

    def get(self, request_id: str) -> AccessRequest | None:
        raw = self.redis.get(self._key('req', request_id))
        return AccessRequest.from_json(raw) if raw else None

    def get_many(self, ids: list[str]) -> list[AccessRequest]:
        if not ids:
            return []
        raws = self.redis.mget([self._key('req', i) for i in ids])
        return [AccessRequest.from_json(raw) for raw in raws if raw]

    def for_user(self, slack_id: str, limit: int = 50) -> list[AccessRequest]:
        ids = self.redis.zrevrange(self._key('user', slack_id), 0, limit - 1)
        return self.get_many(list(ids))

    def pending(self, limit: int = 200) -> list[AccessRequest]:
        return self.get_many(list(self.redis.zrange(self._key('pending'), 0, limit - 1)))

    def due_for_revoke(self, now: float, limit: int = 100) -> list[str]:
        return list(self.redis.zrangebyscore(self._key('grants:due'), '-inf', now, start=0, num=limit))

    def pending_expired(self, now: float, limit: int = 100) -> list[str]:
        """IDs of pending requests past their rule's ``pending_timeout``."""
        return list(self.redis.zrangebyscore(self._key('pending:expiry'), '-inf', now, start=0, num=limit))

    def claim_reminder(self, request_id: str, step: int, since: float, now: float, first_after: float) -> int | None:
        """Claim the next reminder of a pending request's current step, if one is due.

        Reminders come ``first_after`` seconds after the step started, then after doubling waits (15 min,
        30 min, 1 h...). The count per (request, step) lives in Redis so that several sweepers send each
        reminder once. Returns the reminder's number, or None when none is due.
        """
        key = self._key('req', request_id, 'reminders')
        sent = int(self.redis.hget(key, str(step)) or 0)
        due = since + first_after * (2 ** (sent + 1) - 1)
        if now < due:
            return None
        pipe = self.redis.pipeline()
        pipe.hincrby(key, str(step), 1)
        pipe.expire(key, 7 * 86400)
        claimed = int(pipe.execute()[0])
        return claimed if claimed == sent + 1 else None

    def stalled_grants(self, now: float, limit: int = 100) -> list[str]:
        """IDs of approved requests whose grant should have started or finished by ``now``."""
        return list(self.redis.zrangebyscore(self._key('grants:watch'), '-inf', now, start=0, num=limit))

    def watch(self, request_id: str, at: float) -> None:
        """Look at this approved request again at ``at`` (only while it is approved or granting)."""
        self.redis.zadd(self._key('grants:watch'), {request_id: at}, xx=True)

    def unwatch(self, request_id: str) -> None:
        self.redis.zrem(self._key('grants:watch'), request_id)

    def live_grants(self, limit: int = 10_000) -> list[AccessRequest]:
        ids = self.redis.zrangebyscore(self._key('grants:due'), self.clock.now(), '+inf', start=0, num=limit)
        return [r for r in self.get_many(list(ids)) if r.status is S.ACTIVE]

    def note_seen(self, request_id: str, at: float) -> float:
        key = self._key('req', request_id, 'seen')
        pipe = self.redis.pipeline()
        pipe.zadd(key, {'last': at}, gt=True)  # GT: an older observation never moves it back
        pipe.zscore(key, 'last')
        pipe.expire(key, 7 * 86400)
        return float(pipe.execute()[1] or at)

    def ssh_key(self, slack_id: str) -> str | None:
        return self.redis.get(self._key('sshkey', slack_id))  # type: ignore[no-any-return]

    def set_ssh_key(self, slack_id: str, key: str) -> None:
        self.redis.set(self._key('sshkey', slack_id), key)

    def holders(self, request: AccessRequest) -> set[str]:
        """The requests (this one included, if it holds) granting or holding the same access to the same person."""
        return set(self.redis.smembers(self._holds_key(request)))

    def _holds_key(self, request: AccessRequest) -> str:
        return self._key('holds', request.resource, request.role, request.requester.access_key)

    def due_at(self, request_id: str) -> float | None:
        score = self.redis.zscore(self._key('grants:due'), request_id)
        return float(score) if score is not None else None

    def get_with_due(self, request_id: str) -> tuple[AccessRequest | None, float | None]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self._key('req', request_id))
        pipe.zscore(self._key('grants:due'), request_id)
        raw, score = pipe.execute()
        return (AccessRequest.from_json(raw) if raw else None), (float(score) if score is not None else None)

    def postpone_revoke(self, request_id: str, until: float) -> None:
        # XX: only while it is still due; a revoke that finished meanwhile stays finished.
        self.redis.zadd(self._key('grants:due'), {request_id: until}, xx=True)

    def mark_end(self, request_id: str, *, at: float, actor: str, why: str) -> bool:
        """Bring a grant's end forward to ``at`` (release, admin revoke, idle), remembering who and why.

        The end is written on the request itself (``ending``), in a transaction that watches it, so it and an
        extension cannot cross: an extension that comes later is refused by ``transitions.extend``, and one that
        was applied first is simply overtaken (the due score only moves earlier, ``LT``). The first end asked
        for stays on the record. Returns False when there is no live grant left to end (True for one already
        ending, so that a caller may queue its revoke once more). The revoke itself still goes through the
        provider first; this only makes it due, for the job and the sweeper alike, so a lost job cannot lose
        the end.
        """
        key, due = self._key('req', request_id), self._key('grants:due')

        def write(pipe: Any) -> bool:
            raw = pipe.get(key)
            if raw is None:
                return False
            request = AccessRequest.from_json(raw)
            if request.status not in LIVE_STATUSES or pipe.zscore(due, request_id) is None:
                return False
            pipe.multi()
            if not request.ending:
                pipe.set(key, replace(request, ending={'at': at, 'actor': actor, 'why': why}).to_json())
            pipe.zadd(due, {request_id: at}, xx=True, lt=True)
            pipe.delete(self._key('details', request_id))  # given back: the details are not handed out again
            return True

        return bool(self.redis.transaction(write, key, due, value_from_callable=True))

    def clear_due(self, request_id: str) -> None:
        self.redis.zrem(self._key('grants:due'), request_id)

    def audit_event(self, seq: int) -> dict[str, Any] | None:
        entries = self.redis.xrange(self._key('audit'), f'{seq}-1', f'{seq}-1')
        return json.loads(entries[0][1]['event']) if entries else None

    def audit_events(self, start: int = 1, count: int = 1000) -> list[dict[str, Any]]:
        entries = self.redis.xrange(self._key('audit'), f'{start}-1', '+', count=count)
        return [json.loads(fields['event']) for _id, fields in entries]

    # -- approval message references (for chat.update) ---------------------------------------

    def add_message(self, request_id: str, channel: str, ts: str) -> None:
        self.redis.hset(self._key('req', request_id, 'messages'), channel, ts)

    def messages(self, request_id: str) -> dict[str, str]:
        return dict(self.redis.hgetall(self._key('req', request_id, 'messages')))

    # -- leases --------------------------------------------------------------------------------

    def lease(self, name: str, seconds: float) -> bool:
        """Take a short lock; False when someone else holds it. It lapses by itself."""
        token = uuid.uuid4().hex
        if not self.redis.set(self._key('lease', name), token, nx=True, px=int(seconds * 1000)):
            return False
        self._tokens[name] = token
        return True

    def renew_lease(self, name: str, seconds: float) -> bool:
        """Keep a lease this process holds for ``seconds`` more; False when it lapsed (and may be another's)."""
        token = self._tokens.get(name)
        return bool(token and self.redis.eval(RENEW, 1, self._key('lease', name), token, int(seconds * 1000)))

    def release_lease(self, name: str) -> None:
        token = self._tokens.pop(name, None)
        if token:
            self.redis.eval(FREE, 1, self._key('lease', name), token)

    # -- the policy in force ---------------------------------------------------------------------

    def swap_policy_in_force(self, version: str) -> bool:
        """``SET ... GET``: the new version and the old one read in one step, so one process sees the change."""
        old: str | None = self.redis.set(self._key('policy', 'in_force'), version, get=True)
        return old != version

    def take_slot(self, name: str, *, now: float, window: float, limit: int) -> float | None:
        # One script, so two requests at the same instant cannot both take the last slot.
        key = self._key('slots', name)
        wait = self.redis.eval(TAKE_SLOT, 1, key, repr(now), repr(window), str(limit), secrets.token_hex(8))
        return None if wait is None else float(wait)

    def note_revoke_failure(self, request_id: str) -> int:
        """Count one more failed revoke of this grant; the count lives a day past the last failure."""
        key = self._key('revoke_failures', request_id)
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, 86400)
        return int(pipe.execute()[0])

    # -- writes --------------------------------------------------------------------------------

    def create(self, request: AccessRequest, event: AuditEvent) -> int:
        def write(writes: Writes, raw: str | None) -> int:
            if raw is not None:
                raise ValueError(f'request {request.id} exists')
            return self._write(writes, request, None, event)

        return int(self._apply(self._key('req', request.id), write))

    def record(self, event: AuditEvent) -> int:
        """Append an audit event that changes no request (an alert, a policy load); returns its seq."""
        return int(self._apply(None, lambda writes, _raw: self._chain(writes, event)))

    def transition(self, request_id: str, step: Transition) -> tuple[AccessRequest, int]:
        def write(writes: Writes, raw: str | None) -> tuple[AccessRequest, int]:
            if raw is None:
                raise RequestNotFound(f'No request has the ID {request_id}.')
            old = AccessRequest.from_json(raw)
            new, event = step(old)
            return new, self._write(writes, new, old, event)

        return self._apply(self._key('req', request_id), write)  # type: ignore[no-any-return]

    def _apply(self, key: str | None, write: Callable[[Writes, str | None], Any]) -> Any:
        """One atomic step on a request (``key``) and the audit chain (see :class:`GroupCommit`)."""
        return self._commits.apply(key, write)

    def _write(self, writes: Writes, new: AccessRequest, old: AccessRequest | None, event: AuditEvent) -> int:
        """The request, its indexes and the chained audit event."""
        writes.set(self._key('req', new.id), new.to_json())
        self._index(writes, new, old)
        return self._chain(writes, event)

    def _chain(self, writes: Writes, event: AuditEvent) -> int:
        """The next event of the chain, after the head that was read."""
        seq = writes.seq + 1
        record = {'seq': seq, 'time': self.clock.now(), **event.to_dict()}
        record['prev_hash'] = writes.hash
        record['hash'] = chain_hash(record, record['prev_hash'])
        writes.events.append(['XADD', self._key('audit'), f'{seq}-1', 'event', json.dumps(record, sort_keys=True)])
        writes.hset(self._key('audit', 'head'), mapping={'seq': seq, 'hash': record['hash']})
        writes.seq, writes.hash = seq, record['hash']
        return seq

    def _index(self, pipe: Writes, new: AccessRequest, old: AccessRequest | None) -> None:
        if old is None and new.requester.owner_key:
            pipe.zadd(self._key('user', new.requester.owner_key), {new.id: new.created_at})
        if new.status is S.PENDING:
            pipe.zadd(self._key('pending'), {new.id: new.created_at})
            if new.pending_until:
                pipe.zadd(self._key('pending:expiry'), {new.id: new.pending_until})
        else:
            pipe.zrem(self._key('pending'), new.id)
            pipe.zrem(self._key('pending:expiry'), new.id)
        if new.status in HOLDING and not new.extends:
            pipe.sadd(self._holds_key(new), new.id)
        elif old is not None and old.status in HOLDING:
            pipe.srem(self._holds_key(new), new.id)
        watch = self._key('grants:watch')
        if new.status is S.APPROVED:
            pipe.zadd(watch, {new.id: self.clock.now() + WATCH_AFTER})
        elif new.status is S.GRANTING:
            pipe.zadd(watch, {new.id: self.clock.now() + WATCH_AFTER}, nx=True)  # the attempt sets its own
        else:
            pipe.zrem(watch, new.id)
        due = self._key('grants:due')
        if new.status is S.GRANTING and new.grant_deadline:
            pipe.zadd(due, {new.id: new.grant_deadline}, nx=True)
        elif new.status is S.ACTIVE and new.expires_at:
            # Earliest wins: an end asked for (release, admin revoke, idle) is never moved back by a later write.
            end = min(new.expires_at, float(new.ending['at'])) if new.ending else new.expires_at
            pipe.zadd(due, {new.id: end})
        elif new.status is S.FAILED and old is not None and old.status is S.GRANTING:
            # The provider may have half-granted before failing: keep it due for a clean-up revoke.
            pipe.zadd(due, {new.id: new.ended_at or 0})
        elif new.status in (S.REVOKED,):
            pipe.zrem(due, new.id)
            pipe.delete(self._key('revoke_failures', new.id))  # the count of failed tries ends with the grant
        if new.status in FINAL_STATUSES:
            pipe.delete(self._key('details', new.id))  # the grant is over: its details are not handed out again
        warnings = self._key('warnings:due')
        warn_at = new.warning_at() if new.status is S.ACTIVE and not new.extends and new.requester.slack_id else None
        if warn_at is not None:
            # Only when it moves (granted, extended): a warning sent is not sent again by a write that keeps the end.
            if old is None or old.status is not S.ACTIVE or old.warning_at() != warn_at:
                pipe.zadd(warnings, {new.id: warn_at})
        elif old is not None and old.status is S.ACTIVE:
            pipe.zrem(warnings, new.id)
