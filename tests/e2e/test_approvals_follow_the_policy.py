"""Approvals count under the policy in force, end to end over the signed HTTP edge.

A pull request takes sam out of the leads while alex's request waits for two approvals (sam's and sec's):
sam's approval no longer counts, whether the change lands before the second approval (the approve step counts
again) or after both, while the worker is down (the worker's check before granting counts again).
"""

from __future__ import annotations

import time

import pytest

from bot.core.model import RequestStatus
from tests.e2e.test_request_flow import SAM, SEC, approval_copy, file_request
from tests.support.policies import E2E_POLICY
from tests.support.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
S = RequestStatus
#: demo-read needs two approvals: of its approvers (leads and security) that is sam and sec.
TWO_APPROVALS = E2E_POLICY.replace('    approvals: 1\n', '    approvals: 2\n', 1)
#: The same, with sam no longer in the leads (dana is): sec and dana are demo-read's approvers.
SAM_REMOVED = TWO_APPROVALS.replace('  leads: [sam@example.com]\n', '  leads: [dana@example.com]\n', 1)


def put_policy(store, tmp_path, text: str) -> None:
    """Write the policy file and wait until the running processes have it in force."""
    assert text != (tmp_path / 'policies' / 'policy.yaml').read_text()

    def loads() -> int:
        return len([e for e in store.audit_events() if e['event'] == 'policy.loaded' and e['outcome'] == 'loaded'])

    before = loads()
    (tmp_path / 'policies' / 'policy.yaml').write_text(text)
    wait_until(lambda: loads() > before, timeout=15, what='the new policy in force')
    time.sleep(2.5)  # the other process looks at the files at most every 2 s


def test_an_approval_from_someone_removed_meanwhile_does_not_complete_the_request(jit, slack, webhook, store, tmp_path):
    put_policy(store, tmp_path, TWO_APPROVALS)
    request_id, _ = file_request(slack, text='request demo-app read 5m needs two')
    sam_copy, sec_copy = approval_copy(slack, SAM, request_id), approval_copy(slack, SEC, request_id)
    assert slack.driver.click(SAM, sam_copy, 'jit.approve').status == 200
    wait_until(lambda: len(store.get(request_id).approvals) == 1, timeout=10, what="sam's approval")
    put_policy(store, tmp_path, SAM_REMOVED)
    assert slack.driver.click(SEC, sec_copy, 'jit.approve').status == 200
    wait_until(lambda: len(store.get(request_id).approvals) == 2, timeout=10, what="sec's approval")
    time.sleep(2)  # a grant of an approved request would have reached the webhook by now
    request = store.get(request_id)
    assert request.status is S.PENDING, request
    assert webhook.grants_for(request_id) == []
    approved = [
        e for e in store.audit_events() if e['event'] == 'request.approved' and e['request']['id'] == request_id
    ]
    assert [(e['actor'], e['outcome'], e['detail']['progress']) for e in approved] == [
        (SAM, 'pending', '1 of 2'),
        (SEC, 'pending', '1 of 2'),
    ]


def test_the_worker_does_not_grant_on_approvals_that_no_longer_count(jit, slack, webhook, store, tmp_path):
    put_policy(store, tmp_path, TWO_APPROVALS)
    request_id, _ = file_request(slack, text='request demo-app read 5m approved while the worker is down')
    sam_copy, sec_copy = approval_copy(slack, SAM, request_id), approval_copy(slack, SEC, request_id)
    jit.kill_worker()
    assert slack.driver.click(SAM, sam_copy, 'jit.approve').status == 200
    assert slack.driver.click(SEC, sec_copy, 'jit.approve').status == 200
    wait_until(lambda: store.get(request_id).status is S.APPROVED, timeout=10, what='approved')
    put_policy(store, tmp_path, SAM_REMOVED)
    jit.start_worker()
    done = wait_until(lambda: (r := store.get(request_id)).status in (S.FAILED, S.ACTIVE) and r, timeout=20,
                      what='the worker to decide')  # fmt: skip
    assert done.status is S.FAILED and 'no longer meet rule `demo-read`' in (done.error or ''), done
    assert webhook.grants_for(request_id) == []
