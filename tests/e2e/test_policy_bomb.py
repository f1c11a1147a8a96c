"""A YAML alias bomb dropped into the policy directory of running ``jit serve`` and ``jit worker``.

It once took gigabytes in both processes, left ``/jit resources`` unanswered and a due revoke two minutes
late. Now both refuse it at once (``policy.rejected`` with ``file:line:col``), keep the last good policy,
answer Slack within a second and revoke on time.
"""

from __future__ import annotations

import json
import time

import pytest

from bot.core.model import RequestStatus
from tests.core.test_policy_loader_limits import BOMB
from tests.e2e.test_request_flow import ALEX, SAM, approval_copy, file_request
from tests.support.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


def rejections(jit, command):
    """The ``policy.rejected`` log lines of the ``serve`` or ``worker`` process."""
    found = []
    for path in jit.logs.glob(f'{command}-*.log'):
        for line in path.read_text(errors='replace').splitlines():
            if '"policy.rejected"' in line:
                found.append(json.loads(line))
    return found


def test_a_bomb_in_the_policy_dir_is_refused_and_slack_and_revokes_go_on(jit, slack, webhook, store, tmp_path):
    (tmp_path / 'policies' / 'zz-bomb.yaml').write_text(BOMB)
    # The web process checks every 2 s; the worker's watcher too.
    for command in ('serve', 'worker'):
        lines = wait_until(lambda c=command: rejections(jit, c), timeout=15, what=f'{command} policy.rejected')
        assert any('zz-bomb.yaml:1:4: anchors (&a) and aliases (*a) are not allowed' in p
                   for p in lines[0]['problems']), lines  # fmt: skip
    started = time.perf_counter()
    reply = slack.driver.slash(ALEX, 'resources')
    assert reply.status == 200 and time.perf_counter() - started < 1.0, reply
    assert 'demo-app' in (reply.text or json.dumps(reply.body))

    # The last good policy stays in force for the whole path: request, approval, grant, revoke on time.
    request_id, _ = file_request(slack, text='request demo-app read 10s the bomb is refused')
    assert slack.driver.click(SAM, approval_copy(slack, SAM, request_id), 'jit.approve').status == 200
    active = wait_until(lambda: (r := store.get(request_id)).status is RequestStatus.ACTIVE and r, timeout=15,
                        what='active')  # fmt: skip
    revoke = wait_until(lambda: webhook.revokes_for(request_id), timeout=30, what='webhook revoke')[0]
    assert -0.5 <= revoke.time - active.expires_at <= 5.0
