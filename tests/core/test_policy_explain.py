"""`jit policy explain`: the rule walk, the decision and its reason, and what else may be requested."""

import subprocess
import sys

from bot.core.policy import evaluate
from bot.core.policy_explain import explain
from bot.core.policy_loader import build_policy
from tests.core.policy_fixtures import ALEX, EVE, POLICY_YAML, policy


def test_walks_rules_until_the_one_that_decides():
    """Rules before the deciding one say why they do not apply; the decision line repeats evaluate's reason."""
    lines = explain(policy(), ALEX, 'prod-db', 'write', 1800)
    assert lines[0] == 'alex@example.com is in groups: devops, oncall'
    assert lines[1].startswith('- rule `prod-read` (policies/main.yaml:')
    assert 'covers roles read, not write' in lines[1]
    assert 'rule `prod-write`' in lines[2] and 'applies and decides' in lines[2]
    reason = evaluate(policy(), ALEX, 'prod-db', 'write', 1800, reason='explain').reason
    assert f'Decision: needs_approval - {reason}' in lines
    assert any(line.startswith('Step 2: 2 of group:security') for line in lines)


def test_says_where_approvers_are_asked_when_not_just_in_slack():
    """A rule's ask, in words, after its steps; nothing is said of a rule that asks in Slack only."""
    assert not any(line.startswith('Approvers are asked') for line in explain(policy(), ALEX, 'prod-db', 'write'))
    teams = POLICY_YAML + 'teams:\n  sec-approvals: {webhook: env:TEAMS_SEC}\n'
    for ask, said in [
        ('[slack, email, teams:sec-approvals]', 'Approvers are asked in Slack, by email and in Teams channel '
                                                'sec-approvals.'),
        ('email', 'Approvers are asked by email (a decision in Slack counts too).'),
    ]:  # fmt: skip
        text = teams.replace('      - {approvers: [group:security], approvals: 2}\n',
                             f'      - {{approvers: [group:security], approvals: 2}}\n    ask: {ask}\n')  # fmt: skip
        lines = explain(build_policy({'p.yaml': text}), ALEX, 'prod-db', 'write')
        assert lines[lines.index(said) - 1].startswith('Step 2: 2 of group:security'), lines


def test_denied_user_is_told_what_they_may_request():
    lines = explain(policy(), EVE, 'prod-db', 'read')
    assert 'Decision: denied - no rule lets you request `prod-db` `read`' in lines
    assert lines[-1] == 'May request: demo read (rule demo-all)'


def test_cli_explain():
    """The command line resolves ROLE and DURATION and prints the same lines."""
    out = subprocess.run([sys.executable, '-m', 'bot', 'policy', 'explain', 'alex@example.com', 'demo-app', 'read',
                          '3h', '--dir', 'policies'], capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert 'Decision: denied - 3h is longer than rule `demo-read` allows (at most 2h)' in out.stdout
