"""The request state machine: approvals, quorum, steps, refusals, and which states allow what."""

import pytest

from bot.core import transitions as t
from bot.core.errors import InvalidTransition, NotAnApprover, PolicyDenied
from bot.core.model import AccessRequest, RequestStatus
from tests.core.policy_fixtures import ALEX, DANA, EVE, SAM, SEC, SEC2, policy

S = RequestStatus


def make(rule='prod-read', role='read', requester=ALEX, **kw):
    return AccessRequest(
        id='r-test',
        requester=requester,
        resource='prod-db',
        role=role,
        duration=600,
        reason='INC-1',
        rule=rule,
        policy_version='v',
        created_at=0.0,
        **kw,
    )


def test_one_approval_completes_a_quorum_of_one():
    """prod-read needs 1 of leads/security: sam's approval makes it approved, decided by sam."""
    p = policy()
    new, event = t.approve(make(), SAM, policy=p, rule=p.rule_named('prod-read'), now=1.0)
    assert new.status is S.APPROVED and new.decided_by == SAM
    assert event.event == 'request.approved' and event.outcome == 'approved'
    assert event.detail['progress'] == '1 of 1'


def test_steps_in_order_each_by_a_different_person():
    """prod-write: a lead, then two distinct security people; the same person twice does not count."""
    p = policy()
    rule = p.rule_named('prod-write')
    req = make(rule='prod-write', role='write')
    with pytest.raises(NotAnApprover):
        t.approve(req, SEC, policy=p, rule=rule, now=1)  # security is step 2, not step 1
    req, _ = t.approve(req, SAM, policy=p, rule=rule, now=1)
    assert (req.status, req.step) == (S.PENDING, 1)
    req, event = t.approve(req, SEC, policy=p, rule=rule, now=2)
    assert (req.status, event.outcome) == (S.PENDING, 'pending')
    with pytest.raises(NotAnApprover, match='already approved'):
        t.approve(req, SEC2, policy=p, rule=rule, now=3)  # same email, other user ID: same person


@pytest.mark.parametrize('approver', [ALEX, EVE, DANA])
def test_requester_and_strangers_cannot_approve(approver):
    """The requester never approves their own request; people outside the approver set neither."""
    p = policy()
    with pytest.raises(NotAnApprover):
        t.approve(make(), approver, policy=p, rule=p.rule_named('prod-read'), now=1)


def test_requester_who_is_an_approver_still_cannot_approve():
    """sam is a lead: his own request needs someone else."""
    p = policy()
    with pytest.raises(NotAnApprover, match='own request'):
        t.approve(make(requester=SAM), SAM, policy=p, rule=p.rule_named('prod-read'), now=1)


@pytest.mark.parametrize('status', [S.APPROVED, S.DENIED, S.EXPIRED, S.ACTIVE, S.REVOKED, S.FAILED])
def test_decisions_happen_once(status):
    """Approve and deny after a decision raise 'already ...'; nothing changes."""
    p = policy()
    rule = p.rule_named('prod-read')
    req = make(status=status)
    with pytest.raises(InvalidTransition, match='already'):
        t.approve(req, SAM, policy=p, rule=rule, now=1)
    with pytest.raises(InvalidTransition):
        t.deny(req, SAM, policy=p, rule=rule, reason='no')


def test_deny_records_who_and_why():
    p = policy()
    new, event = t.deny(make(), SEC, policy=p, rule=p.rule_named('prod-read'), reason='not during the freeze')
    assert (new.status, new.decided_by, new.deny_reason) == (S.DENIED, SEC, 'not during the freeze')
    assert event.event == 'request.denied' and event.actor == 'U0SEC'


def test_grant_life_clock_starts_at_activation():
    """expires_at = the moment the provider confirmed + duration, not the request or approval time."""
    req = make(status=S.APPROVED)
    req, ev = t.start_grant(req, now=100, deadline=1000)
    assert (req.status, req.grant_deadline, ev.event) == (S.GRANTING, 1000, 'grant.started')
    req, ev = t.activate(req, now=150)
    assert (req.status, req.granted_at, req.expires_at) == (S.ACTIVE, 150, 750)
    req, ev = t.revoke(req, now=751.5)
    assert req.status is S.REVOKED and ev.detail['lateness'] == 1.5
    with pytest.raises(InvalidTransition):
        t.revoke(req, now=800)


def test_a_failing_revoke_is_marked_and_still_revocable():
    """revoke_failed keeps the grant live in the record (it is) and a later revoke still closes it."""
    req = make(status=S.ACTIVE, granted_at=100.0, expires_at=700.0)
    req, ev = t.revoke_failed(req, error='webhook: answered HTTP 500', failures=8)
    assert (req.status, ev.event, ev.outcome, ev.detail['failures']) == (S.REVOKE_FAILED, 'grant.revoke_failed',
                                                                        'revoke_failed', 8)  # fmt: skip
    with pytest.raises(InvalidTransition):
        t.extend(req, by=60, actor=ALEX, now=710, max_total=3600)
    req, ev = t.revoke(req, now=790)
    assert req.status is S.REVOKED and ev.detail['lateness'] == 90


@pytest.mark.parametrize(('step', 'allowed'), sorted(t.ALLOWED.items()))
def test_every_step_refuses_every_other_state(step, allowed):
    """The table is the whole truth: each step from a state outside its set raises."""
    calls = {
        'approve': lambda r: t.approve(r, SAM, policy=policy(), rule=policy().rule_named('prod-read'), now=1),
        'deny': lambda r: t.deny(r, SAM, policy=policy(), rule=policy().rule_named('prod-read'), reason=''),
        'expire': lambda r: t.expire(r, now=1),
        'cancel': lambda r: t.cancel(r, ALEX, now=1),
        'start_grant': lambda r: t.start_grant(r, now=1, deadline=2),
        'activate': lambda r: t.activate(r, now=1),
        'fail': lambda r: t.fail(r, error='x', now=1),
        'revoke': lambda r: t.revoke(r, now=1),
        'revoke_failed': lambda r: t.revoke_failed(r, error='x', failures=8),
        'extend': lambda r: t.extend(r, by=60, actor=ALEX, now=1, max_total=3600),
    }
    for status in S:
        req = make(status=status, expires_at=1.0)
        if status in allowed:
            _new, event = calls[step](req)
            assert event.event
        else:
            with pytest.raises(InvalidTransition):
                calls[step](req)


def test_extend_moves_the_end_and_counts_the_time():
    """An extension moves expires_at and the total duration; the event says from, to and through which request."""
    req = make(status=S.ACTIVE, granted_at=100.0, expires_at=700.0)
    new, event = t.extend(req, by=300, actor=ALEX, now=650, via='r-ext', max_total=900)
    assert (new.expires_at, new.duration, new.status) == (1000.0, 900, S.ACTIVE)
    assert event.event == 'grant.extended' and event.detail == {'from': 700.0, 'to': 1000.0, 'by': 300,
                                                                'extension': 'r-ext'}  # fmt: skip


def test_extend_refuses_past_the_total_it_is_given():
    """The cap is checked in the step itself (inside the store's atomic write): 600 s granted + 301 > 900."""
    req = make(status=S.ACTIVE, granted_at=100.0, expires_at=700.0)
    with pytest.raises(PolicyDenied, match='at most 15m'):
        t.extend(req, by=301, actor=ALEX, now=650, max_total=900)


def test_extend_refuses_a_grant_that_is_already_ending():
    """A pending end (release, admin revoke, idle) wins over a later extension."""
    req = make(status=S.ACTIVE, granted_at=100.0, expires_at=700.0,
               ending={'at': 650.0, 'actor': 'U0SEC', 'why': 'revoked by an admin'})  # fmt: skip
    with pytest.raises(InvalidTransition, match='already ending'):
        t.extend(req, by=60, actor=ALEX, now=660, max_total=3600)


def test_start_grant_records_what_the_grant_is_made_with_once():
    """The first attempt records provider, settings and params; a retry keeps that record."""
    req = make(status=S.APPROVED)
    first = {'provider': 'webhook', 'settings': {'url': 'env:A'}, 'params': {}}
    req, _ = t.start_grant(req, now=1, deadline=2, granted_with=first)
    req, _ = t.start_grant(req, now=3, deadline=4, granted_with={**first, 'settings': {'url': 'env:B'}})
    assert req.granted_with == first
