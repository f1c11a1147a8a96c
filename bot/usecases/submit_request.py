"""Filing a request: the policy decides, then the request is stored ``pending`` (or approved at once).

Nothing is stored when the policy says no: the caller shows the denial's reason and what the
user may request instead. Nor when the requester is over a limit: a number of requests per hour, and of
requests waiting for a decision at once, so that a script in a loop cannot flood the approvers.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from bot.core import transitions
from bot.core.errors import IdentityRefused, PolicyDenied
from bot.core.model import AccessRequest, AuditEvent, AuditName, Principal, RequestStatus, bounded_reason
from bot.core.policy import Decision, DecisionKind, Policy, Rule, evaluate
from bot.core.ports import NO_METER, AuditLog, Clock, JobQueue, Leases, Limits, Meter, Requests
from bot.usecases._metering import refusals_counted
from bot.usecases.limits import RequestLimits


class SubmitStore(Requests, AuditLog, Leases, Limits, Protocol):
    """What filing touches: the new request, alarms (break-glass), and the filing limits."""


# Unambiguous in any font: people read these IDs out and type them into /jit release.
_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789'


def new_request_id() -> str:
    """A short ID people can type: ``r-`` and 8 characters (31^8 ≈ 8.5e11 values)."""
    return 'r-' + ''.join(secrets.choice(_ALPHABET) for _ in range(8))


class SubmitRequest:
    """Decide and file one request."""

    def __init__(
        self, *, store: SubmitStore, queue: JobQueue, policy: Callable[[], Policy], clock: Clock,
        new_id: Callable[[], str] = new_request_id, per_hour: int = 0, max_open: int = 0, meter: Meter = NO_METER,
    ) -> None:  # fmt: skip
        self.store, self.queue, self.policy, self.clock, self.new_id = store, queue, policy, clock, new_id
        self.meter = meter
        self.limits = RequestLimits(store=store, per_hour=per_hour, max_open=max_open)

    def execute(
        self, *, requester: Principal, resource: str, role: str | None, duration: int | None, reason: str,
        ticket: str | None = None, trigger: str = 'slack', context: Mapping[str, Any] | None = None,
        recipient_key: str | None = None,
    ) -> AccessRequest:  # fmt: skip
        """File the request.

        Returns:
            The stored request: ``pending``, or ``approved`` when the rule approves automatically.

        Raises:
            UsageError: a reason longer than ``MAX_REASON``.
            PolicyDenied: the policy refuses; its ``decision`` says why and what is allowed.
            TooManyRequests: over the hourly limit or the cap on waiting requests (checked after the
                policy, so a refused request costs nothing).
        """
        surface = 'api' if trigger == 'pipeline' else 'slack'
        with refusals_counted(lambda outcome: self.meter.filed(surface, outcome)):
            bounded_reason(reason)
            policy = self.policy()
            now = self.clock.now()
            decision = evaluate(policy, requester, resource, role, duration, reason=reason, ticket=ticket,
                                trigger=trigger, context=context)  # fmt: skip
            if decision.kind is DecisionKind.DENIED or decision.rule is None:
                raise PolicyDenied(f'Not filed: {decision.reason}.', decision)
            assert decision.role is not None and decision.duration is not None
            _decidable(decision.rule, requester)
            with self.limits.filing(requester, now):
                request = self._file(policy, decision, now, requester=requester, resource=resource, reason=reason,
                                     trigger=trigger, context=context, recipient_key=recipient_key)  # fmt: skip
            if decision.kind in (DecisionKind.AUTO_APPROVED, DecisionKind.BREAK_GLASS):
                request = self._approve_at_once(request, decision, requester, reason)
        self.meter.filed(surface, str(request.status))
        return request

    def _file(
        self, policy: Policy, decision: Decision, now: float, *, requester: Principal, resource: str, reason: str,
        trigger: str, context: Mapping[str, Any] | None, recipient_key: str | None,
    ) -> AccessRequest:  # fmt: skip
        assert decision.rule is not None and decision.role is not None and decision.duration is not None
        request = AccessRequest(
            id=self.new_id(), requester=requester, resource=resource, role=decision.role,
            duration=decision.duration, reason=reason, ticket=decision.ticket, rule=decision.rule.name,
            policy_version=policy.version, created_at=now, trigger=trigger, decision=decision.reason,
            pending_until=now + decision.rule.pending_timeout if decision.rule.pending_timeout else None,
            recipient_key=recipient_key, context=dict(context) if context else None,
        )  # fmt: skip
        _, event = transitions.created(request, detail={'decision': decision.reason})
        self.store.create(request, event)
        return request

    def _approve_at_once(
        self, request: AccessRequest, decision: Decision, requester: Principal, reason: str
    ) -> AccessRequest:
        request, _ = self.store.transition(request.id, lambda r: transitions.auto_approve(r, reason=decision.reason))
        if decision.kind is DecisionKind.BREAK_GLASS:
            # Self-approved in an emergency: said loudly, to the audit channel, the admins and the approvers.
            self.store.record(AuditEvent.about(request, AuditName.BREAKGLASS_USED, requester, outcome='approved',
                                               detail={'reason': reason}))  # fmt: skip
        if request.status is RequestStatus.APPROVED:
            self.queue.enqueue_grant(request.id)
        return request


def _decidable(rule: Rule, requester: Principal) -> None:
    """A rule whose approvers decide by link (email, Teams) needs the requester's address, to keep a link from
    approving the requester's own request (:func:`bot.core.transitions.approve` refuses such links too)."""
    if (rule.asks_email or rule.teams_channels) and requester.pipeline is None and not requester.email:
        raise IdentityRefused(
            f'Not filed: rule `{rule.name}` asks its approvers by email or in Teams, and Slack did not tell jit '
            'your email address, so jit could not keep a link from approving your own request. An admin can '
            'give the Slack app the `users:read.email` scope.'
        )
