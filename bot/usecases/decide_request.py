"""Approving and denying: an approver's click, checked against the rule and applied atomically.

The approver is the user ID of the signed Slack request (with its email from ``users.info``),
never anything written in a button. Two approvers at once, or one click replayed, give one
transition; the losers get :class:`~bot.core.errors.InvalidTransition` ("already decided").
"""

from __future__ import annotations

from collections.abc import Callable

from bot.core import transitions
from bot.core.errors import InvalidTransition
from bot.core.model import AccessRequest, AuditEvent, Principal, RequestStatus
from bot.core.policy import Policy, Rule
from bot.core.ports import NO_METER, Clock, JobQueue, Meter, Requests
from bot.usecases._metering import refusals_counted

#: The rule label of a refused click: the request may not exist, and a refusal is counted whatever it is about.
UNKNOWN_RULE = '-'


def _rule(policy: Policy, request: AccessRequest) -> Rule:
    rule = policy.rule_named(request.rule)
    if rule is None:
        raise InvalidTransition(f'The rule `{request.rule}` of this request is no longer in the policy; '
                                'ask the requester to file it again.')  # fmt: skip
    return rule


class ApproveRequest:
    """One approval; when it completes the rule's quorum, the grant job is queued."""

    def __init__(self, *, store: Requests, queue: JobQueue, policy: Callable[[], Policy], clock: Clock,
                 meter: Meter = NO_METER) -> None:  # fmt: skip
        self.store, self.queue, self.policy, self.clock, self.meter = store, queue, policy, clock, meter

    def execute(self, request_id: str, approver: Principal, *, via: str = 'slack') -> AccessRequest:
        """Record ``approver``'s approval, given through ``via`` (``slack``, ``email``, ``teams``).

        Raises:
            NotAnApprover, InvalidTransition, RequestNotFound: nothing was changed.
        """
        policy = self.policy()

        def step(request: AccessRequest) -> tuple[AccessRequest, AuditEvent]:
            return transitions.approve(request, approver, policy=policy, rule=_rule(policy, request),
                                       now=self.clock.now(), via=via)  # fmt: skip

        with refusals_counted(lambda outcome: self.meter.decided(UNKNOWN_RULE, outcome)):
            request, _ = self.store.transition(request_id, step)
        approved = request.status is RequestStatus.APPROVED
        self.meter.decided(request.rule, 'approved' if approved else 'pending')
        if approved:
            self.queue.enqueue_grant(request.id)
        return request


class DenyRequest:
    """An approver says no, with a reason (optional unless the rule requires one)."""

    def __init__(self, *, store: Requests, queue: JobQueue, policy: Callable[[], Policy],
                 meter: Meter = NO_METER) -> None:  # fmt: skip
        self.store, self.queue, self.policy, self.meter = store, queue, policy, meter

    def execute(self, request_id: str, approver: Principal, reason: str = '', *, via: str = 'slack') -> AccessRequest:
        policy = self.policy()

        def step(request: AccessRequest) -> tuple[AccessRequest, AuditEvent]:
            return transitions.deny(request, approver, policy=policy, rule=_rule(policy, request), reason=reason,
                                    via=via)  # fmt: skip

        with refusals_counted(lambda outcome: self.meter.decided(UNKNOWN_RULE, outcome)):
            request, _ = self.store.transition(request_id, step)
        self.meter.decided(request.rule, 'denied')
        return request

    def check(self, request_id: str, approver: Principal) -> AccessRequest:
        """Would ``approver`` be allowed to deny? Asked before opening the reason modal; returns the request."""
        request = self.store.get(request_id)
        if request is None or request.status is not RequestStatus.PENDING:
            raise InvalidTransition(f'Request {request_id} was already decided.')
        policy = self.policy()
        transitions.deny(request, approver, policy=policy, rule=_rule(policy, request), reason='-')
        return request
