"""The request form as `/jit` opens it in the local Slack, with a policy of 142 resource·role pairs: every pair
is offered (Slack's static select holds 100 options, so they come in groups by resource), the local Slack
accepts the form (it refuses a select past Slack's limits, as Slack does), and the last pair, demo-app, is
filed from it; the reason field says it is required, because every rule here requires one."""

from __future__ import annotations

import pytest

from tests.support.processes import launch_jit
from tests.support.reports import stop_and_show_logs
from tests.support.slack import SIGNING_SECRET, demo_webhook_env

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
ALEX = 'U0ALEX'
APPS = [f'app-{i:02}' for i in range(47)]
WEBHOOK = 'provider: webhook\n    settings: {url: env:DEMO_WEBHOOK_URL, secret: env:DEMO_WEBHOOK_SECRET}'
POLICY = (
    'groups:\n  devops: [alex@example.com]\n  leads: [sam@example.com]\nresources:\n'
    + ''.join(f'  {app}:\n    {WEBHOOK}\n    roles: [read, deploy, admin]\n' for app in APPS)
    + f'  demo-app:\n    {WEBHOOK}\n    roles: [read]\n'
    + 'requests:\n  - name: everything\n    requesters: [group:devops]\n    approvers: [group:leads]\n'
    + '    timeout: 1h\n    require_reason: true\n'
)


@pytest.fixture(name='jit')
def _jit(tmp_path, redis_url, slack, webhook, request):
    procs = launch_jit(tmp_path, slack=slack, signing_secret=SIGNING_SECRET, redis_url=redis_url, policy=POLICY,
                       **demo_webhook_env(webhook))  # fmt: skip
    yield procs
    stop_and_show_logs(procs, request)


def test_every_one_of_142_pairs_is_offered_and_the_last_is_filed(jit, slack, store):
    assert slack.driver.slash(ALEX, '').status == 200
    view = slack.workspace.wait_for(lambda: next(iter(slack.workspace.views_for(ALEX)), None), timeout=10)
    blocks = {b.get('block_id'): b for b in view.blocks}
    groups = blocks['access']['element']['option_groups']
    assert [g['label']['text'] for g in groups] == [*APPS, 'demo-app']
    offered = [o['value'] for g in groups for o in g['options']]
    expected = [f'{app}:{role}' for app in APPS for role in ('read', 'deploy', 'admin')] + ['demo-app:read']
    assert len(offered) == 142 and offered == expected
    assert blocks['reason']['optional'] is False and '(required' in blocks['reason']['label']['text']
    ok = slack.driver.submit_view(ALEX, view, {'access': 'demo-app:read', 'reason': 'from the grouped form'})
    assert ok.status == 200 and not ok.errors, ok.body
    [filed] = store.for_user(ALEX)
    assert (filed.resource, filed.role, filed.reason) == ('demo-app', 'read', 'from the grouped form')
