"""Granting: re-check, record the revoke's deadline, call the provider, start the clock.

Run by a worker after approval. The order is what makes a revoke impossible to lose: the
request moves to ``granting`` - which puts it in the due-for-revoke index with a deadline that
bounds any grant this attempt or its retries could make - *before* the provider is called.

What makes a grant impossible to lose is :meth:`GrantAccess.recover`: the sweeper's check on an
approved request whose grant job vanished or whose worker was killed mid-call. It queues the
grant again (providers are idempotent by request ID) until ``GRANT_RETRY_WINDOW`` is spent, then
fails the request closed, which leaves a clean-up revoke behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import structlog

from bot.core import transitions
from bot.core.errors import InvalidTransition, PolicyDenied, ProviderError, TransientProviderError
from bot.core.model import AccessRequest, RequestStatus
from bot.core.policy import DecisionKind, Policy, evaluate
from bot.core.ports import (
    ACTIVATION_SLACK,
    NO_METER,
    Clock,
    Extends,
    GrantIndex,
    JobQueue,
    Leases,
    Meter,
    Provider,
    Requests,
)
from bot.usecases.lease import access_turn, backoff, held_lease
from bot.usecases.outcomes import ExpiryOutcome, GrantOutcome
from bot.usecases.target import Target, recorded_target


class GrantStore(Requests, GrantIndex, Leases, Protocol):
    """What granting touches: the request, its watch entry, and the provider turn (a lease)."""


log = structlog.get_logger(__name__)
S = RequestStatus

#: Grant retries stop after this long; the request then fails and the requester is told.
GRANT_RETRY_WINDOW = 300.0
#: The grant lease lapses this long after its worker stops renewing it (killed, or hung).
GRANT_LEASE = 10.0


#: Tries to move a provider's own expiry after an extension before telling the grantee it did not move.
PUSH_ATTEMPTS = 5
#: How long a grant or revoke waits for another call on the same person's same access to finish.
ACCESS_WAIT = 15.0


class GrantAccess:
    """Grant one approved request at its provider."""

    def __init__(
        self, *, store: GrantStore, queue: JobQueue, policy: Callable[[], Policy], clock: Clock,
        provider: Callable[[str], Provider], on_details: Callable[[AccessRequest, dict[str, Any]], None],
        meter: Meter = NO_METER,
    ) -> None:  # fmt: skip
        self.store, self.meter = store, meter
        self.queue, self.policy, self.clock, self.provider = queue, policy, clock, provider
        self.on_details = on_details

    def execute(self, request_id: str) -> GrantOutcome:
        """Grant ``request_id`` if it is (still) approved. Returns what happened, for the job log."""
        with held_lease(self.store, f'grant:{request_id}', GRANT_LEASE, beat=lambda: self._watch(request_id)) as mine:
            return self._grant(request_id) if mine else GrantOutcome.BUSY

    def recover(self, request_id: str) -> GrantOutcome:
        """The sweeper's check on an approved request that is not active in time: grant it again, or fail closed.

        Its grant job was lost, or the worker running it was killed (its lease lapsed, so no
        attempt is running now). Within the retry window the grant is queued again; after it, the
        request fails and the requester is told - and a ``granting`` one leaves a revoke behind,
        since the killed call may have reached the provider.
        """
        with held_lease(self.store, f'grant:{request_id}', GRANT_LEASE) as mine:
            if not mine:
                return GrantOutcome.BUSY  # an attempt is running and renewing its lease
            request = self.store.get(request_id)
            if request is None or request.status not in (S.APPROVED, S.GRANTING):
                self.store.unwatch(request_id)
                return GrantOutcome.NOTHING_TO_DO
            now = self.clock.now()
            if now >= self._retry_until(request):
                log.error('grant.stalled', request_id=request_id, status=request.status, attempts=request.attempts)
                return self._fail(request_id, 'the grant did not finish in time')
            self.store.watch(request_id, now + 3 * GRANT_LEASE)
        # Queued once the lease is let go: a free worker takes the job at once, and one that found this
        # check's lease still held would answer `busy` and leave the request to the next check, 30 s on.
        self.queue.enqueue_grant(request_id, attempt=request.attempts + 1)
        log.warning('grant.requeued', request_id=request_id, status=request.status, attempts=request.attempts)
        return GrantOutcome.REQUEUED

    def _watch(self, request_id: str, *, after: float = 0) -> None:
        """While an attempt runs (or waits to retry), the sweeper leaves the request alone."""
        self.store.watch(request_id, self.clock.now() + after + GRANT_LEASE)

    @staticmethod
    def _retry_until(request: AccessRequest) -> float:
        """Grants are tried until ``GRANT_RETRY_WINDOW`` after the first attempt (or the approval)."""
        if request.grant_deadline is not None:
            return request.grant_deadline - request.duration - GRANT_LEASE
        approved = max([request.created_at] + [a.at for a in request.approvals])
        return approved + GRANT_RETRY_WINDOW

    def _grant(self, request_id: str) -> GrantOutcome:
        request = self.store.get(request_id)
        if request is None or request.status not in (S.APPROVED, S.GRANTING):
            log.info('grant.skipped', request_id=request_id, status=str(request.status) if request else 'missing')
            return GrantOutcome.SKIPPED
        policy = self.policy()
        resource = policy.resources.get(request.resource)
        outcome = self._attempt(policy, request)
        provider = (request.granted_with or {}).get('provider') or (resource.provider if resource else '-')
        seconds = None
        if outcome is GrantOutcome.GRANTED:  # from the approval that completed it to active (just now)
            seconds = self.clock.now() - max([request.created_at] + [a.at for a in request.approvals])
        self.meter.granted(str(provider), outcome, seconds)
        return outcome

    def _attempt(self, policy: Policy, request: AccessRequest) -> GrantOutcome:
        request_id = request.id
        refusal = self._recheck(policy, request)
        if refusal:
            return self._fail(request_id, refusal)
        now = self.clock.now()
        try:
            record = None if request.extends else recorded_target(policy, request, self.provider)
        except ProviderError as exc:  # a setting the record cannot hold: refused before anything is granted
            return self._fail(request_id, exc.user_message)
        request, _ = self.store.transition(request_id, lambda r: transitions.start_grant(
            r, now=now, deadline=now + GRANT_RETRY_WINDOW + GRANT_LEASE + r.duration, granted_with=record))  # fmt: skip
        self._watch(request_id)
        if request.extends:
            return self._extend(request)
        target = Target.of(request, policy)
        assert target is not None  # recorded by start_grant just above
        bound = log.bind(request_id=request_id, provider=target.provider, attempt=request.attempts)
        provider = self.provider(target.provider)
        called = self.clock.now()  # the target is told this plus the duration plus ACTIVATION_SLACK, or later
        try:
            with access_turn(self.store, provider, target.settings, request, ttl=GRANT_LEASE, wait=ACCESS_WAIT) as mine:
                if not mine:
                    raise TransientProviderError('another grant or revoke of the same access is still running')
                details = provider.grant(request, settings=target.settings, params=target.params)
        except ProviderError as exc:
            if exc.retryable and self.clock.now() < self._retry_until(request):
                delay = backoff(request.attempts)
                bound.warning('grant.retry', error=str(exc), delay=round(delay, 1))
                self._watch(request_id, after=delay)
                self.queue.enqueue_grant(request_id, delay=delay, attempt=request.attempts)
                return GrantOutcome.RETRYING
            bound.error('grant.failed', error=str(exc))
            return self._fail(request_id, f'{target.provider}: {exc.user_message}')
        if details:
            # Before the request reads `active`: a pipeline that sees `active` finds its details waiting.
            try:
                self.on_details(request, details)
            except Exception as exc:  # unsealable, unsendable: whatever it was, nobody can use this access
                return self._undelivered(request_id, exc, bound)
        request, _ = self.store.transition(request_id, lambda r: transitions.activate(r, now=self.clock.now()))
        assert request.expires_at is not None
        bound.info('grant.active', expires_at=request.expires_at, duration=request.duration)
        if request.expires_at > called + request.duration + ACTIVATION_SLACK and isinstance(provider, Extends):
            # Confirmed later than the slack allowed for: the target may end the access before jit shows it
            # ending. Its expiry is moved to jit's end, as after an extension.
            bound.warning('grant.confirmed_late', late=round(self.clock.now() - called, 1))
            self.queue.enqueue_push_expiry(request_id)
        return GrantOutcome.GRANTED

    def _undelivered(self, request_id: str, exc: Exception, bound: Any) -> GrantOutcome:
        """The provider granted, but the details cannot reach the requester: fail closed and revoke now.

        Left ``granting``, the access would stay at the target until the retry window ran out, and a
        retry would grant again into the same failure. ``failed`` from ``granting`` keeps the request
        due for a clean-up revoke (the sweeper's backstop); the revoke is also queued at once. Only the
        exception's type is logged and recorded: its text may quote the details.
        """
        kind = type(exc).__name__
        bound.error('grant.details_undelivered', error=kind)
        outcome = self._fail(request_id, f'the access details could not be handed over ({kind}), '
                                         'so the grant failed and its access is revoked')  # fmt: skip
        self.queue.enqueue_revoke_now(request_id)
        return outcome

    def push_expiry(self, request_id: str, *, attempt: int = 0) -> ExpiryOutcome:
        """Move the provider's own expiry (``VALID UNTIL``, certificate validity, IAM condition) to the new end.

        Under the grant's revoke lease, so that a revoke and this cannot cross: an extension pushed
        after the revoke would bring the access back. A failure here only makes the target end the
        access earlier than jit would; the grantee is told, since it is still the revoke that counts.
        """
        with held_lease(self.store, f'revoke:{request_id}', GRANT_LEASE, wait=5.0) as mine:
            if not mine:
                return ExpiryOutcome.ENDING  # a revoke is running
            request = self.store.get(request_id)
            if request is None or request.status is not S.ACTIVE:
                return ExpiryOutcome.NOT_ACTIVE
            if request.extends:
                return ExpiryOutcome.NOTHING_TO_MOVE  # an extension holds nothing at the provider: its grant does
            target = Target.of(request, self.policy())
            provider = self.provider(target.provider) if target else None
            if target is None or not isinstance(provider, Extends):
                return ExpiryOutcome.NOTHING_TO_MOVE
            try:
                details = provider.extend(request, settings=target.settings, params=target.params)
            except ProviderError as exc:
                if exc.retryable and attempt < PUSH_ATTEMPTS:
                    self.queue.enqueue_push_expiry(request_id, delay=backoff(attempt + 1), attempt=attempt + 1)
                    return ExpiryOutcome.RETRYING
                log.error('grant.expiry_not_moved', request_id=request_id, error=str(exc))
                self.on_details(request, {'note': f'{target.provider} kept the old end ({exc.user_message}): '
                                                  'access there may end before jit shows it ending'})  # fmt: skip
                return ExpiryOutcome.FAILED
        if details:
            self.on_details(request, details)
        return ExpiryOutcome.MOVED

    def _extend(self, extension: AccessRequest) -> GrantOutcome:
        """An approved extension moves the original grant's end; nothing new is granted at the provider.

        The rule's ``timeout`` is checked again here, inside the atomic step, on the grant as it is now: two
        extensions approved side by side cannot add up past it, and an end asked for meanwhile wins.
        """
        assert extension.extends is not None
        rule = self.policy().rule_named(extension.rule)
        if rule is None:
            return self._fail(extension.id, f'the rule `{extension.rule}` is no longer in the policy')
        try:
            original, _ = self.store.transition(
                extension.extends,
                lambda r: transitions.extend(
                    r,
                    by=extension.duration,
                    actor=extension.decided_by or 'jit',
                    now=self.clock.now(),
                    via=extension.id,
                    max_total=rule.max_duration,
                ),
            )
        except PolicyDenied as exc:
            return self._fail(extension.id, exc.user_message)
        except InvalidTransition as exc:
            ending = 'already ending' in exc.user_message
            return self._fail(extension.id, f'the grant `{extension.extends}` '
                                            f'{"was already ending" if ending else "ended"} '
                                            'before the extension was applied')  # fmt: skip
        assert original.expires_at is not None
        self.queue.enqueue_push_expiry(original.id)
        # The extension itself is active as long as the grant it extends: the audit trail shows both.
        extension, _ = self.store.transition(extension.id, lambda r: transitions.activate(
            r, now=self.clock.now(), until=original.expires_at))  # fmt: skip
        return GrantOutcome.EXTENDED

    def _recheck(self, policy: Policy, request: AccessRequest) -> str | None:
        """The approval binds to the request and the rule; the current policy must still allow both."""
        if request.approved_digest != request.digest():
            return 'the request changed after it was approved'
        if request.pending_until is not None and any(a.at > request.pending_until for a in request.approvals):
            return 'it was approved after it had expired undecided'
        decision = evaluate(policy, request.requester, request.resource, request.role, request.duration,
                            reason=request.reason, ticket=request.ticket, trigger=request.trigger,
                            context=request.context)  # fmt: skip
        if decision.denied:
            return f'the policy no longer allows it: {decision.reason}'
        if decision.rule is None or decision.rule.name != request.rule:
            return f'the policy changed: rule `{decision.rule.name if decision.rule else "?"}` now decides it'
        if decision.kind is DecisionKind.NEEDS_APPROVAL:
            step, counted = transitions.approval_progress(request, policy=policy, rule=decision.rule)
            if step < len(decision.rule.steps):
                return (f'its approvals no longer meet rule `{decision.rule.name}` under the policy in force '
                        f'({counted} of {decision.rule.approvals_needed} still count: an approver was removed, '
                        'or more approvals are needed)')  # fmt: skip
        return None

    def _fail(self, request_id: str, error: str) -> GrantOutcome:
        try:
            self.store.transition(request_id, lambda r: transitions.fail(r, error=error, now=self.clock.now()))
        except InvalidTransition:
            return GrantOutcome.SKIPPED
        return GrantOutcome.FAILED
