"""Granting: re-check, record the revoke's deadline, call the provider, start the clock.

Run by a worker after approval. The order is what makes a revoke impossible to lose: the
request moves to ``granting`` - which puts it in the due-for-revoke index with a deadline that
bounds any grant this attempt or its retries could make - *before* the provider is called.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import structlog

from bot.core import transitions
from bot.core.errors import InvalidTransition, ProviderError
from bot.core.model import AccessRequest, RequestStatus
from bot.core.policy import Policy, evaluate
from bot.core.ports import Clock, JobQueue, Provider, RequestStore

log = structlog.get_logger(__name__)
S = RequestStatus

#: Grant retries stop after this long; the request then fails and the requester is told.
GRANT_RETRY_WINDOW = 300.0
#: A grant call (and its lease) may take this long before another worker may try again.
GRANT_LEASE = 150.0


def backoff(attempt: int, *, base: float = 2.0, cap: float = 60.0) -> float:
    """Exponential backoff with full jitter in its upper half: 1-2 s, 2-4 s, ... up to ``cap``."""
    delay = min(cap, base ** max(1, attempt))
    return delay / 2 + random.random() * delay / 2


class GrantAccess:
    """Grant one approved request at its provider."""

    def __init__(
        self, *, store: RequestStore, queue: JobQueue, policy: Callable[[], Policy], clock: Clock,
        provider: Callable[[str], Provider], on_details: Callable[[AccessRequest, dict[str, Any]], None],
    ) -> None:  # fmt: skip
        self.store = store
        self.queue, self.policy, self.clock, self.provider = queue, policy, clock, provider
        self.on_details = on_details

    def execute(self, request_id: str) -> str:
        """Grant ``request_id`` if it is (still) approved. Returns what happened, for the job log."""
        if not self.store.lease(f'grant:{request_id}', GRANT_LEASE):
            return 'busy'
        try:
            return self._grant(request_id)
        finally:
            self.store.release_lease(f'grant:{request_id}')

    def _grant(self, request_id: str) -> str:
        request = self.store.get(request_id)
        if request is None or request.status not in (S.APPROVED, S.GRANTING):
            return f'skipped ({request.status if request else "missing"})'
        policy = self.policy()
        refusal = self._recheck(policy, request)
        if refusal:
            return self._fail(request_id, refusal)
        now = self.clock.now()
        request, seq = self.store.transition(request_id, lambda r: transitions.start_grant(
            r, now=now, deadline=now + GRANT_RETRY_WINDOW + GRANT_LEASE + r.duration))  # fmt: skip
        self.queue.enqueue_notify(seq)
        if request.extends:
            return self._extend(request)
        resource = policy.resources[request.resource]
        bound = log.bind(request_id=request_id, provider=resource.provider, attempt=request.attempts)
        try:
            details = self.provider(resource.provider).grant(
                request, settings=dict(resource.settings), params=dict(resource.roles[request.role].params)
            )
        except ProviderError as exc:
            retry_until = (request.grant_deadline or now) - request.duration - GRANT_LEASE
            if exc.retryable and self.clock.now() < retry_until:
                delay = backoff(request.attempts)
                bound.warning('grant.retry', error=str(exc), delay=round(delay, 1))
                self.queue.enqueue_grant(request_id, delay=delay, attempt=request.attempts)
                return 'retrying'
            bound.error('grant.failed', error=str(exc))
            return self._fail(request_id, f'{resource.provider}: {exc.user_message}')
        request, seq = self.store.transition(request_id, lambda r: transitions.activate(r, now=self.clock.now()))
        assert request.expires_at is not None
        self.queue.schedule_revoke(request_id, request.expires_at)
        self.queue.schedule_warning(request_id, request.warning_at() or request.expires_at)
        self.queue.enqueue_notify(seq)
        if details:
            self.on_details(request, details)
        bound.info('grant.active', expires_at=request.expires_at, duration=request.duration)
        return 'granted'

    def _extend(self, extension: AccessRequest) -> str:
        """An approved extension moves the original grant's end; nothing new is granted at the provider."""
        assert extension.extends is not None
        try:
            original, seq = self.store.transition(
                extension.extends,
                lambda r: transitions.extend(
                    r,
                    by=extension.duration,
                    actor=extension.decided_by or 'jit',
                    now=self.clock.now(),
                    via=extension.id,
                ),
            )
        except InvalidTransition:
            return self._fail(extension.id, f'the grant `{extension.extends}` ended before the extension was approved')
        assert original.expires_at is not None
        self.queue.schedule_revoke(original.id, original.expires_at)
        self.queue.schedule_warning(original.id, original.warning_at() or original.expires_at)
        self.queue.enqueue_notify(seq)
        # The extension itself is active as long as the grant it extends: the audit trail shows both.
        extension, seq = self.store.transition(extension.id, lambda r: transitions.activate(
            r, now=self.clock.now(), until=original.expires_at))  # fmt: skip
        self.queue.schedule_revoke(extension.id, original.expires_at)
        self.queue.enqueue_notify(seq)
        return 'extended'

    def _recheck(self, policy: Policy, request: AccessRequest) -> str | None:
        """The approval binds to the request and the rule; the current policy must still allow both."""
        if request.approved_digest != request.digest():
            return 'the request changed after it was approved'
        decision = evaluate(policy, request.requester, request.resource, request.role, request.duration,
                            reason=request.reason, ticket=request.ticket, trigger=request.trigger)  # fmt: skip
        if decision.denied:
            return f'the policy no longer allows it: {decision.reason}'
        if decision.rule is None or decision.rule.name != request.rule:
            return f'the policy changed: rule `{decision.rule.name if decision.rule else "?"}` now decides it'
        return None

    def _fail(self, request_id: str, error: str) -> str:
        try:
            _, seq = self.store.transition(request_id, lambda r: transitions.fail(r, error=error, now=self.clock.now()))
        except InvalidTransition:
            return 'skipped'
        self.queue.enqueue_notify(seq)
        return 'failed'
