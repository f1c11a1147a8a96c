"""Approvals count only from people who are approvers under the policy in force.

A pull request that removes someone from a rule's approvers takes their approvals of open requests with it:
when the next approver decides, and in the worker's re-check before the grant. Real use cases, on either store.
"""

from __future__ import annotations

import pytest

from bot.core.model import Principal, RequestStatus
from bot.core.policy_loader import build_policy
from bot.deps import SystemClock
from bot.usecases.decide_request import ApproveRequest
from bot.usecases.grant_access import GrantAccess
from bot.usecases.submit_request import SubmitRequest
from tests.core.policy_fixtures import ALEX, SAM
from tests.support.fakes import IgnoringQueue
from tests.support.redis_server import own_redis_url
from tests.support.stores import new_store

S = RequestStatus
URL = own_redis_url(17)
KIM = Principal(slack_id='U0KIM', email='kim@example.com')
LEE = Principal(slack_id='U0LEE', email='lee@example.com')
POLICY = """
groups:
  devops: [alex@example.com]
  leads: [{leads}]
resources:
  app:
    provider: webhook
    roles: [read]
requests:
  - name: app-read
    resources: [app]
    requesters: [group:devops]
    approvers: [group:leads]
    approvals: {approvals}
    timeout: 2h
"""


class Target:
    def __init__(self) -> None:
        self.granted: list[str] = []

    def grant(self, request, *, settings, params):
        self.granted.append(request.id)
        return {}

    def revoke(self, request, *, settings, params):
        pass


class Jit:
    def __init__(self, kind: str) -> None:
        clock = SystemClock()
        self.store = new_store(kind, clock, url=URL)
        self.target = Target()
        self.policy = self.make_policy('sam@example.com, kim@example.com, lee@example.com', 2)
        kw = {'store': self.store, 'queue': IgnoringQueue(), 'policy': lambda: self.policy, 'clock': clock}
        self.submit = SubmitRequest(**kw)
        self.approve = ApproveRequest(**kw)
        self.grant = GrantAccess(**kw, provider=lambda name: self.target, on_details=lambda r, d: None)

    @staticmethod
    def make_policy(leads: str, approvals: int):
        return build_policy({'p.yaml': POLICY.format(leads=leads, approvals=approvals)})

    def file(self) -> str:
        return self.submit.execute(requester=ALEX, resource='app', role='read', duration=600, reason='x').id


@pytest.fixture(name='jit')
def _jit(store_kind):
    return Jit(store_kind)


def test_an_approval_from_someone_removed_does_not_count_towards_the_quorum(jit):
    """Two approvals needed; sam approves, then leaves the leads; kim's approval is the first that counts."""
    request_id = jit.file()
    jit.approve.execute(request_id, SAM)
    jit.policy = jit.make_policy('kim@example.com, lee@example.com', 2)
    assert jit.approve.execute(request_id, KIM).status is S.PENDING
    assert jit.approve.execute(request_id, LEE).status is S.APPROVED


def test_the_worker_refuses_a_grant_whose_approvals_no_longer_count(jit):
    """Approved by sam and kim; kim leaves the leads before the worker grants: nothing is granted."""
    request_id = jit.file()
    jit.approve.execute(request_id, SAM)
    assert jit.approve.execute(request_id, KIM).status is S.APPROVED
    jit.policy = jit.make_policy('sam@example.com, lee@example.com', 2)
    assert jit.grant.execute(request_id) == 'failed'
    request = jit.store.get(request_id)
    assert request.status is S.FAILED and 'no longer' in request.error and jit.target.granted == []


def test_a_higher_quorum_is_required_of_an_approved_request(jit):
    """The rule now needs three approvals: a request approved by two is not granted."""
    request_id = jit.file()
    jit.approve.execute(request_id, SAM)
    jit.approve.execute(request_id, KIM)
    jit.policy = jit.make_policy('sam@example.com, kim@example.com, lee@example.com', 3)
    assert jit.grant.execute(request_id) == 'failed' and jit.target.granted == []


def test_approvals_that_still_count_are_granted(jit):
    """An unrelated policy change (lee added) leaves the approvals standing: granted."""
    request_id = jit.file()
    jit.approve.execute(request_id, SAM)
    jit.approve.execute(request_id, KIM)
    jit.policy = jit.make_policy('sam@example.com, kim@example.com, lee@example.com, pat@example.com', 2)
    assert jit.grant.execute(request_id) == 'granted' and jit.target.granted == [request_id]
