"""Filing a request: the policy decides, then the request is stored ``pending`` (or approved at once).

Nothing is stored when the policy says no: the caller shows the denial's reason and what the
user may request instead. Nor when the requester is over a limit: a number of requests per hour, and of
requests waiting for a decision at once, so that a script in a loop cannot flood the approvers.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from bot.core import transitions
from bot.core.durations import format_duration
from bot.core.errors import PolicyDenied, TooManyRequests
from bot.core.model import AccessRequest, AuditEvent, Principal, RequestStatus
from bot.core.policy import DecisionKind, Policy, evaluate
from bot.core.ports import Clock, JobQueue, RequestStore

# Unambiguous in any font: people read these IDs out and type them into /jit release.
_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789'


def new_request_id() -> str:
    """A short ID people can type: ``r-`` and 8 characters (31^8 ≈ 8.5e11 values)."""
    return 'r-' + ''.join(secrets.choice(_ALPHABET) for _ in range(8))


class SubmitRequest:
    """Decide and file one request."""

    def __init__(
        self, *, store: RequestStore, queue: JobQueue, policy: Callable[[], Policy], clock: Clock,
        new_id: Callable[[], str] = new_request_id, per_hour: int = 0, max_open: int = 0,
    ) -> None:  # fmt: skip
        self.store, self.queue, self.policy, self.clock, self.new_id = store, queue, policy, clock, new_id
        self.per_hour, self.max_open = per_hour, max_open

    def execute(
        self, *, requester: Principal, resource: str, role: str | None, duration: int | None, reason: str,
        ticket: str | None = None, trigger: str = 'slack', context: Mapping[str, Any] | None = None,
        recipient_key: str | None = None,
    ) -> AccessRequest:  # fmt: skip
        """File the request.

        Returns:
            The stored request: ``pending``, or ``approved`` when the rule approves automatically.

        Raises:
            PolicyDenied: the policy refuses; its ``decision`` says why and what is allowed.
            TooManyRequests: over the hourly limit or the cap on waiting requests (checked after the
                policy, so a refused request costs nothing).
        """
        policy = self.policy()
        now = self.clock.now()
        decision = evaluate(policy, requester, resource, role, duration, reason=reason, ticket=ticket,
                            trigger=trigger, context=context)  # fmt: skip
        if decision.kind is DecisionKind.DENIED or decision.rule is None:
            raise PolicyDenied(f'Not filed: {decision.reason}.', decision)
        assert decision.role is not None and decision.duration is not None
        self._within_limits(requester, now)
        request = AccessRequest(
            id=self.new_id(), requester=requester, resource=resource, role=decision.role,
            duration=decision.duration, reason=reason, ticket=decision.ticket, rule=decision.rule.name,
            policy_version=policy.version, created_at=now, trigger=trigger, decision=decision.reason,
            pending_until=now + decision.rule.pending_timeout if decision.rule.pending_timeout else None,
            recipient_key=recipient_key, context=dict(context) if context else None,
        )  # fmt: skip
        _, event = transitions.created(request, detail={'decision': decision.reason})
        self.queue.enqueue_notify(self.store.create(request, event))
        if decision.kind in (DecisionKind.AUTO_APPROVED, DecisionKind.BREAK_GLASS):
            request, seq = self.store.transition(
                request.id, lambda r: transitions.auto_approve(r, reason=decision.reason)
            )
            self.queue.enqueue_notify(seq)
            if decision.kind is DecisionKind.BREAK_GLASS:
                # Self-approved in an emergency: said loudly, to the audit channel, the admins and the approvers.
                alarm = AuditEvent(event='breakglass.used', actor=requester.slack_id or requester.label,
                                   request=request.summary(), rule=request.rule, policy_version=request.policy_version,
                                   outcome='approved', detail={'reason': reason})  # fmt: skip
                self.queue.enqueue_notify(self.store.record(alarm))
            if request.status is RequestStatus.APPROVED:
                self.queue.enqueue_grant(request.id)
        return request

    def _within_limits(self, requester: Principal, now: float) -> None:
        """Refuse a requester with too many waiting requests, or too many filed in the last hour."""
        who = requester.slack_id or requester.label
        if self.max_open and requester.owner_key:
            waiting = [r for r in self.store.for_user(requester.owner_key) if r.status is RequestStatus.PENDING]
            if len(waiting) >= self.max_open:
                ids = ', '.join(f'`{r.id}`' for r in waiting[: self.max_open])
                raise TooManyRequests(f'Not filed: you already have {len(waiting)} requests waiting for a decision '
                                      f'({ids}). Cancel one (`/jit cancel ID`) or wait for the approvers.')  # fmt: skip
        if self.per_hour:
            wait = self.store.take_slot(f'requests:{who}', now=now, window=3600, limit=self.per_hour)
            if wait is not None:
                raise TooManyRequests(f'Not filed: you have filed {self.per_hour} requests in the last hour, the '
                                      f'most jit takes. Try again in {format_duration(60 * math.ceil(wait / 60))}.',
                                      retry_after=wait)  # fmt: skip
