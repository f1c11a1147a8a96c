"""The request state machine, as pure functions from a request to (new request, audit event).

::

    pending --approve (enough approvals)--> approved --> granting --> active --> revoked
       |-- deny --> denied                         |           |         ^  |  |         ^
       |-- pending_timeout --> expired             '-----------+-> failed '--'  |         |
       '-- requester cancels --> cancelled                         extend     '--> revoke_failed
                                                                               (admins alerted; tried again)

Each function checks that the step is allowed from the current state and raises
:class:`~bot.core.errors.InvalidTransition` otherwise; the store applies the result atomically
together with its audit event, so two clicks at once produce one transition. A revoke is not
a state of its own: the grant stays ``active`` (and in the expiry index) until the provider has
confirmed the revoke, so a crash half-way leaves it where the sweeper will find it again; after repeated
failures it is marked ``revoke_failed`` (the admins are alerted) and the revoke keeps being tried.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from typing import Any

from bot.core.characters import is_blank
from bot.core.durations import format_duration
from bot.core.errors import InvalidTransition, NotAnApprover, NotPermitted, NotThisChannel, PolicyDenied
from bot.core.model import AccessRequest, Approval, AuditEvent, AuditName, Principal, RequestStatus, bounded_reason
from bot.core.policy import Policy, Rule

S = RequestStatus


class Step(StrEnum):
    """The steps of the state machine, one function each below."""

    APPROVE = 'approve'
    DENY = 'deny'
    EXPIRE = 'expire'
    CANCEL = 'cancel'
    START_GRANT = 'start_grant'
    ACTIVATE = 'activate'
    FAIL = 'fail'
    REVOKE = 'revoke'
    REVOKE_FAILED = 'revoke_failed'
    EXTEND = 'extend'


#: Which states each step may start from.
ALLOWED: dict[Step, frozenset[RequestStatus]] = {
    Step.APPROVE: frozenset({S.PENDING}),
    Step.DENY: frozenset({S.PENDING}),
    Step.EXPIRE: frozenset({S.PENDING}),
    Step.CANCEL: frozenset({S.PENDING}),
    Step.START_GRANT: frozenset({S.APPROVED, S.GRANTING}),
    Step.ACTIVATE: frozenset({S.GRANTING}),
    Step.FAIL: frozenset({S.APPROVED, S.GRANTING}),
    Step.REVOKE: frozenset({S.ACTIVE, S.REVOKE_FAILED}),
    Step.REVOKE_FAILED: frozenset({S.ACTIVE}),
    Step.EXTEND: frozenset({S.ACTIVE}),
}


def _check(request: AccessRequest, step: Step) -> None:
    if request.status not in ALLOWED[step]:
        if request.status in (S.PENDING,):
            raise InvalidTransition(f'Request {request.id} is still pending.')
        raise InvalidTransition(f'Request {request.id} was already {request.status}.')


def _event(request: AccessRequest, name: str, actor: Principal | str, **kw: Any) -> AuditEvent:
    return AuditEvent.about(request, name, actor, **kw)


def created(request: AccessRequest, *, detail: dict[str, object] | None = None) -> tuple[AccessRequest, AuditEvent]:
    """The filing itself: a new pending request and its ``request.created`` event."""
    return request, _event(
        request, AuditName.REQUEST_CREATED, request.requester, outcome='pending', detail=detail or {}
    )


def approval_progress(request: AccessRequest, *, policy: Policy, rule: Rule) -> tuple[int, int]:
    """``(step, counted)``: the first step of ``rule`` whose quorum is not met, and how many approvals count.

    Only approvals from people who are approvers of their step under ``policy`` (the policy in force, not the
    one at filing) count, each person once, never the requester: a pull request that removes an approver
    takes their approvals of open requests with it. ``step`` is ``len(rule.steps)`` when every step is met.
    """
    counted, current = 0, len(rule.steps)
    voters: list[Principal] = []
    for index, step in enumerate(rule.steps):
        allowed = policy.step_approvers(rule, index)
        here = 0
        for approval in request.approvals:
            who = approval.by
            if approval.step != index or not who.ids() & allowed or who.same_as(request.requester):
                continue
            if any(who.same_as(v) for v in voters):
                continue
            voters.append(who)
            here += 1
        counted += min(here, step.approvals)
        if here < step.approvals and current == len(rule.steps):
            current = index
    return current, counted


def _check_channel(rule: Rule, via: str, request: AccessRequest) -> None:
    """A decision through ``via`` counts under ``rule``, and for ``request``.

    A link decides as the email address it was sent to, so self-approval is told apart by address: a person who
    filed with no address jit knows (a Slack app without ``users:read.email``) could hold a link to their own
    request, named once by Slack ID and once by address. No link decides such a request; Slack clicks do.
    """
    if not rule.decides_via(via):
        raise NotThisChannel(f'The rule `{rule.name}` takes decisions in Slack only, not by {via} link.')
    if via != 'slack' and request.requester.pipeline is None and not request.requester.email:
        raise NotThisChannel(f'Request {request.id} must be decided in Slack: jit does not know its requester\'s '
                             'email address, so a link cannot show that you are not the requester.')  # fmt: skip


def approve(
    request: AccessRequest, approver: Principal, *, policy: Policy, rule: Rule, now: float, via: str = 'slack'
) -> tuple[AccessRequest, AuditEvent]:
    """Record one approval; the request becomes ``approved`` when every step has its quorum.

    Earlier approvals are counted again under ``policy`` (see :func:`approval_progress`), so the step this
    approval lands in, and whether it completes the request, follow the policy in force.

    Raises:
        NotAnApprover: the approver is the requester, is not in the current step's approvers,
            or already approved this request (approvals are by distinct people).
        InvalidTransition: the request is no longer pending.
    """
    _check(request, Step.APPROVE)
    _check_channel(rule, via, request)
    if request.pending_until is not None and now > request.pending_until:
        # Expiring undecided requests is the sweeper's; a click that comes first (no worker running) is late.
        raise InvalidTransition(f'Request {request.id} expired undecided; ask the requester to file it again.')
    if approver.same_as(request.requester):
        raise NotAnApprover('You cannot approve your own request.')
    step, _ = approval_progress(request, policy=policy, rule=rule)
    step = min(step, len(rule.steps) - 1)  # every step met already (a lowered quorum): this one completes it
    if not approver.ids() & policy.step_approvers(rule, step):
        raise NotAnApprover('You are not an approver of this request.')
    if any(approver.same_as(a.by) for a in request.approvals):
        raise NotAnApprover('You already approved this request; it needs a different approver.')
    approvals = (*request.approvals, Approval(approver, step, now))
    candidate = replace(request, approvals=approvals)
    after, counted = approval_progress(candidate, policy=policy, rule=rule)
    done = after >= len(rule.steps)
    new = replace(candidate, step=after if not done else len(rule.steps), status=S.APPROVED if done else S.PENDING,
                  decided_by=approver if done else None,
                  approved_digest=request.digest() if done else None)  # fmt: skip
    progress = f'{counted} of {rule.approvals_needed}'
    return new, _event(new, AuditName.REQUEST_APPROVED, approver, outcome='approved' if done else 'pending',
                       detail={'progress': progress, 'step': step, 'via': via})  # fmt: skip


def auto_approve(request: AccessRequest, *, reason: str) -> tuple[AccessRequest, AuditEvent]:
    """A rule with ``auto_approve`` (or break-glass) approves at filing time."""
    _check(request, Step.APPROVE)
    new = replace(request, status=S.APPROVED, approved_digest=request.digest())
    return new, _event(new, AuditName.REQUEST_APPROVED, 'policy', outcome='approved', detail={'why': reason})


def deny(
    request: AccessRequest, approver: Principal, *, policy: Policy, rule: Rule, reason: str, via: str = 'slack'
) -> tuple[AccessRequest, AuditEvent]:
    """An approver of the current step says no; the request ends ``denied``."""
    _check(request, Step.DENY)
    _check_channel(rule, via, request)
    if approver.same_as(request.requester):
        raise NotAnApprover('You cannot decide your own request. (To withdraw it, cancel it.)')
    step, _ = approval_progress(request, policy=policy, rule=rule)
    if not approver.ids() & policy.step_approvers(rule, min(step, len(rule.steps) - 1)):
        raise NotAnApprover('You are not an approver of this request.')
    bounded_reason(reason)
    if rule.require_deny_reason and is_blank(reason):
        raise InvalidTransition('This rule requires a reason to deny.')
    new = replace(request, status=S.DENIED, decided_by=approver, deny_reason=reason or None)
    return new, _event(new, AuditName.REQUEST_DENIED, approver, outcome='denied', detail={'why': reason, 'via': via})


def expire(request: AccessRequest, *, now: float) -> tuple[AccessRequest, AuditEvent]:
    """Nobody decided within ``pending_timeout``."""
    _check(request, Step.EXPIRE)
    new = replace(request, status=S.EXPIRED, ended_at=now)
    return new, _event(new, AuditName.REQUEST_EXPIRED, 'jit', outcome='expired')


def cancel(request: AccessRequest, who: Principal, *, now: float) -> tuple[AccessRequest, AuditEvent]:
    """The requester withdraws a pending request."""
    _check(request, Step.CANCEL)
    if not who.same_as(request.requester):
        raise NotPermitted('Only the requester can cancel a request.')
    new = replace(request, status=S.CANCELLED, ended_at=now)
    return new, _event(new, AuditName.REQUEST_CANCELLED, who, outcome='cancelled')


def start_grant(
    request: AccessRequest, *, now: float, deadline: float, granted_with: dict[str, Any] | None = None
) -> tuple[AccessRequest, AuditEvent]:
    """The worker begins granting. ``deadline`` bounds when the grant must end even if the worker dies.

    ``granted_with`` (provider, settings, role parameters) is recorded by the first attempt and kept by every
    retry: the revoke must reach whatever an earlier attempt may have created, with what created it.
    """
    _check(request, Step.START_GRANT)
    new = replace(request, status=S.GRANTING, attempts=request.attempts + 1,
                  grant_deadline=request.grant_deadline or deadline,
                  granted_with=request.granted_with or granted_with)  # fmt: skip
    return new, _event(new, AuditName.GRANT_STARTED, 'jit', outcome='granting', detail={'attempt': new.attempts})


def activate(request: AccessRequest, *, now: float, until: float | None = None) -> tuple[AccessRequest, AuditEvent]:
    """The provider confirmed: the clock starts now, and the grant ends ``duration`` later.

    An approved extension is active ``until`` the extended grant's new end instead.
    """
    _check(request, Step.ACTIVATE)
    new = replace(request, status=S.ACTIVE, granted_at=now, expires_at=until or now + request.duration)
    return new, _event(new, AuditName.GRANT_ACTIVE, 'jit', outcome='active', detail={'expires_at': new.expires_at})


def extended_total(request: AccessRequest, by: int) -> int:
    """The grant's whole length (from the moment access started) once ``by`` seconds are added.

    Raises:
        InvalidTransition: the request cannot be extended: no active grant, an applied extension (extend the grant
            it extends), or a grant already ending (release, admin revoke, idle: an end asked for wins).
    """
    if request.extends:
        raise InvalidTransition(f'`{request.id}` is an extension of `{request.extends}`: '
                                f'extend `{request.extends}` instead.')  # fmt: skip
    if request.status not in ALLOWED[Step.EXTEND] or request.expires_at is None:
        raise InvalidTransition(f'Request `{request.id}` has no active grant to extend (it is {request.status}).')
    if request.ending:
        why = request.ending.get('why', 'ended')
        raise InvalidTransition(f'The grant of `{request.id}` is already ending ({why}); it cannot be extended.')
    return int(request.expires_at - (request.granted_at or request.expires_at - request.duration)) + by


def extend(
    request: AccessRequest, *, by: int, actor: Principal | str, now: float, max_total: int, via: str | None = None
) -> tuple[AccessRequest, AuditEvent]:
    """More time on an active grant: ``expires_at`` moves ``by`` seconds later.

    Checked here, inside the store's atomic step, so that no interleaving of extensions gets past either check:
    the grant's total (from the moment access started) stays within ``max_total`` (the rule's ``timeout``, or
    ``self_extend`` for an extension without approval), and an end already asked for (release, admin revoke,
    idle) wins: it is never pushed back.

    Raises:
        InvalidTransition: not active, or already ending. PolicyDenied: over ``max_total``.
    """
    total = extended_total(request, by)
    assert request.expires_at is not None  # extended_total refused anything but an active grant
    if total > max_total:
        raise PolicyDenied(f'Not extended: {format_duration(total)} in all is longer than rule `{request.rule}` '
                           f'allows (at most {format_duration(max_total)}).')  # fmt: skip
    new = replace(request, expires_at=request.expires_at + by, duration=request.duration + by,
                  extensions=(*request.extensions, via) if via else request.extensions)  # fmt: skip
    detail: dict[str, object] = {'from': request.expires_at, 'to': new.expires_at, 'by': by}
    if via:
        detail['extension'] = via
    return new, _event(new, AuditName.GRANT_EXTENDED, actor, outcome='active', detail=detail)


def fail(request: AccessRequest, *, error: str, now: float) -> tuple[AccessRequest, AuditEvent]:
    """The grant could not be made (or was refused by the re-check); nothing is granted."""
    _check(request, Step.FAIL)
    new = replace(request, status=S.FAILED, error=error, ended_at=now)
    return new, _event(new, AuditName.GRANT_FAILED, 'jit', outcome='failed', error=error)


def revoke_failed(request: AccessRequest, *, error: str, failures: int) -> tuple[AccessRequest, AuditEvent]:
    """The revoke failed ``failures`` times in a row: the grant is marked, the admins are alerted, retries go on."""
    _check(request, Step.REVOKE_FAILED)
    new = replace(request, status=S.REVOKE_FAILED, error=error)
    return new, _event(new, AuditName.GRANT_REVOKE_FAILED, 'jit', outcome='revoke_failed', error=error,
                       detail={'failures': failures})  # fmt: skip


def revoke(
    request: AccessRequest, *, now: float, actor: Principal | str = 'jit', why: str = 'expired',
    kept_for: list[str] | None = None,
) -> tuple[AccessRequest, AuditEvent]:  # fmt: skip
    """The provider confirmed the revoke. ``why``: expired, released, revoked by an admin.

    ``kept_for``: the access is one shared object at the provider (a group membership) that these
    overlapping grants still hold, so this grant ended without removing it.
    """
    _check(request, Step.REVOKE)
    new = replace(request, status=S.REVOKED, ended_at=now)
    late = round(now - request.expires_at, 3) if request.expires_at else None
    detail: dict[str, object] = {'why': why, 'lateness': late}
    if kept_for:
        detail['kept_for'] = kept_for
    return new, _event(new, AuditName.GRANT_REVOKED, actor, outcome='revoked', detail=detail)
