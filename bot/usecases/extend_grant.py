"""More time on an active grant: at once within the rule's ``self_extend``, otherwise through the rule's
approval flow, as an extension request that approvers decide like any other.

The total (granted so far plus the extra) never exceeds the rule's ``timeout``. Once applied, the
grant's end moves: the due-for-revoke index follows ``expires_at`` in the same atomic step, the
revoke job is scheduled again under its stable ID, and a job moves the provider's own expiry.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.core import transitions
from bot.core.durations import format_duration
from bot.core.errors import InvalidTransition, NotAnApprover, PolicyDenied, RequestNotFound
from bot.core.model import AccessRequest, Principal, RequestStatus
from bot.core.policy import Policy
from bot.core.ports import Clock, JobQueue, RequestStore

S = RequestStatus


class ExtendGrant:
    """``/jit extend ID DURATION`` and the Extend button."""

    def __init__(
        self, *, store: RequestStore, queue: JobQueue, policy: Callable[[], Policy], clock: Clock,
        new_id: Callable[[], str],
    ) -> None:  # fmt: skip
        self.store, self.queue, self.policy, self.clock, self.new_id = store, queue, policy, clock, new_id

    def execute(self, request_id: str, who: Principal, extra: int, reason: str = '') -> AccessRequest:
        """Extend, or file an extension request.

        Returns:
            The extended grant (status ``active``), or the new extension request (status ``pending``).

        Raises:
            NotAnApprover: ``who`` is not the grantee. InvalidTransition: no active grant.
            PolicyDenied: the total would exceed the rule's ``timeout``.
        """
        request = self.store.get(request_id)
        if request is None:
            raise RequestNotFound(f'No request has the ID `{request_id}`.')
        if not who.same_as(request.requester):
            raise NotAnApprover('Only the grantee can extend a grant.')
        if request.status is not S.ACTIVE or request.expires_at is None or request.granted_at is None:
            raise InvalidTransition(f'Request `{request_id}` has no active grant to extend (it is {request.status}).')
        policy = self.policy()
        rule = policy.rule_named(request.rule)
        if rule is None:
            raise InvalidTransition(f'The rule `{request.rule}` is no longer in the policy: file a new request.')
        total = int(request.expires_at - request.granted_at) + extra
        if total > rule.timeout:
            raise PolicyDenied(f'Not extended: {format_duration(total)} in all is longer than rule `{rule.name}` '
                               f'allows (at most {format_duration(rule.timeout)}).')  # fmt: skip
        if rule.auto_approve or (rule.self_extend and total <= rule.self_extend):
            new, seq = self.store.transition(request_id, lambda r: transitions.extend(
                r, by=extra, actor=who, now=self.clock.now()))  # fmt: skip
            assert new.expires_at is not None
            self.queue.schedule_revoke(request_id, new.expires_at)
            self.queue.schedule_warning(request_id, new.warning_at() or new.expires_at)
            self.queue.enqueue_push_expiry(request_id)
            self.queue.enqueue_notify(seq)
            return new
        extension = AccessRequest(
            id=self.new_id(), requester=request.requester, resource=request.resource, role=request.role,
            duration=extra, reason=reason or f'extend {request_id}', rule=rule.name, policy_version=policy.version,
            created_at=self.clock.now(), trigger=request.trigger, ticket=request.ticket, extends=request_id,
            decision=f'extending a grant of rule `{rule.name}` needs its approval',
            pending_until=self.clock.now() + rule.pending_timeout if rule.pending_timeout else None,
        )  # fmt: skip
        _, event = transitions.created(extension, detail={'decision': extension.decision, 'extends': request_id})
        self.queue.enqueue_notify(self.store.create(extension, event))
        return extension
