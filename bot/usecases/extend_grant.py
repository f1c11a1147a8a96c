"""More time on an active grant: at once within the rule's ``self_extend``, otherwise through the rule's
approval flow, as an extension request that approvers decide like any other.

The total (granted so far plus the extra) never exceeds the rule's ``timeout``, and an end already asked
for (release, admin revoke, idle) is never pushed back: both are checked again inside the atomic step, and
an approved extension is checked again when it is applied (``GrantAccess``). Once applied, the
grant's end moves: the due-for-revoke index (what the revoker reads) follows ``expires_at`` in the same
atomic step, and a job moves the provider's own expiry.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.core import transitions
from bot.core.durations import format_duration
from bot.core.errors import InvalidTransition, NotPermitted, PolicyDenied, RequestNotFound
from bot.core.model import AccessRequest, Principal, RequestStatus, bounded_reason
from bot.core.policy import Policy, Rule, evaluate
from bot.core.ports import Clock, JobQueue, Transition
from bot.usecases.limits import LimitStore, RequestLimits

S = RequestStatus


class ExtendGrant:
    """``/jit extend ID DURATION`` and the Extend button."""

    def __init__(
        self, *, store: LimitStore, queue: JobQueue, policy: Callable[[], Policy], clock: Clock,
        new_id: Callable[[], str], per_hour: int = 0, max_open: int = 0,
    ) -> None:  # fmt: skip
        self.store, self.queue, self.policy, self.clock, self.new_id = store, queue, policy, clock, new_id
        self.limits = RequestLimits(store=store, per_hour=per_hour, max_open=max_open)

    def execute(self, request_id: str, who: Principal, extra: int, reason: str = '') -> AccessRequest:
        """Extend, or file an extension request.

        The checks here give the user an early, clear answer; the ones that hold under concurrency are
        repeated inside the atomic step (:func:`bot.core.transitions.extend`). When that step finds the grant
        moved meanwhile (another extension won), the decision is taken again on what the grant is now.

        Returns:
            The extended grant (status ``active``), or the new extension request (status ``pending``).

        Raises:
            NotPermitted: ``who`` is not the grantee. InvalidTransition: no active grant, or it is already
            ending. PolicyDenied: the total would exceed the rule's ``timeout``. TooManyRequests: an extension
            request over the per-person limits. UsageError: a reason longer than ``MAX_REASON``.
        """
        bounded_reason(reason)
        for attempt in range(3):
            request, rule, total = self._check(request_id, who, extra)
            if not (rule.auto_approve or (rule.self_extend and total <= rule.self_extend)):
                return self._file(request, rule, extra, reason)
            limit = rule.max_duration if rule.auto_approve else min(rule.max_duration, rule.self_extend or 0)
            try:
                new, _ = self.store.transition(request_id, self._step(who, extra, limit))
            except PolicyDenied:
                if attempt == 2:
                    raise
                continue  # another extension moved the grant meanwhile: decide again
            assert new.expires_at is not None
            self.queue.enqueue_push_expiry(request_id)
            return new
        raise AssertionError('unreachable')  # pragma: no cover

    def _step(self, who: Principal, extra: int, limit: int) -> Transition:
        return lambda r: transitions.extend(r, by=extra, actor=who, now=self.clock.now(), max_total=limit)

    def _check(self, request_id: str, who: Principal, extra: int) -> tuple[AccessRequest, Rule, int]:
        request = self.store.get(request_id)
        if request is None:
            raise RequestNotFound(f'No request has the ID `{request_id}`.')
        if not who.same_as(request.requester):
            raise NotPermitted('Only the grantee can extend a grant.')
        total = transitions.extended_total(request, extra)  # checked again inside the atomic step
        policy = self.policy()
        rule = policy.rule_named(request.rule)
        if rule is None:
            raise InvalidTransition(f'The rule `{request.rule}` is no longer in the policy: file a new request.')
        # Still someone this rule lets have this access? (A pull request may have removed the grantee.)
        decision = evaluate(policy, request.requester, request.resource, request.role, request.duration,
                            reason=request.reason, ticket=request.ticket, trigger=request.trigger,
                            context=request.context)  # fmt: skip
        if decision.denied or decision.rule is None or decision.rule.name != rule.name:
            raise PolicyDenied(f'Not extended: the policy no longer gives you this access under rule `{rule.name}`'
                               f' ({decision.reason}).')  # fmt: skip
        if total > rule.max_duration:
            raise PolicyDenied(f'Not extended: {format_duration(total)} in all is longer than rule `{rule.name}` '
                               f'allows (at most {format_duration(rule.max_duration)}).')  # fmt: skip
        return request, rule, total

    def _file(self, request: AccessRequest, rule: Rule, extra: int, reason: str) -> AccessRequest:
        """An extension request, for the rule's approvers; it counts in the grantee's limits like any request."""
        now = self.clock.now()
        with self.limits.filing(request.requester, now):
            extension = AccessRequest(
                id=self.new_id(), requester=request.requester, resource=request.resource, role=request.role,
                duration=extra, reason=reason or f'extend {request.id}', rule=rule.name,
                policy_version=self.policy().version, created_at=now, trigger=request.trigger, ticket=request.ticket,
                extends=request.id, decision=f'extending a grant of rule `{rule.name}` needs its approval',
                pending_until=now + rule.pending_timeout if rule.pending_timeout else None,
            )  # fmt: skip
            _, event = transitions.created(extension, detail={'decision': extension.decision, 'extends': request.id})
            self.store.create(extension, event)
        return extension
