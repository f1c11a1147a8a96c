"""The policy decision, table-driven: who may ask for what, and who must approve."""

import pytest

from bot.core.model import Principal
from bot.core.policy import DecisionKind, evaluate
from tests.core.policy_fixtures import ALEX, DANA, EVE, PIPE, SAM, policy

D = DecisionKind
# Known to the policy only by Slack ID (security has U0SEC): not in oncall, so prod-write is not theirs.
SEC_ID_ONLY = Principal(slack_id='U0SEC')
CASES = [
    # who, resource, role, duration, reason, trigger/context, expected kind, rule, words in the reason
    (ALEX, 'prod-db', 'read', None, 'debugging INC-4711', None, D.NEEDS_APPROVAL, 'prod-read', 'needs approval'),
    (DANA, 'prod-db', 'read', 3600, 'fix CHG-9', None, D.NEEDS_APPROVAL, 'prod-read', ''),  # email case-insensitive
    (ALEX, 'prod-db', 'read', 3 * 3600, 'INC-1', None, D.DENIED, 'prod-read', 'at most 2h'),
    (ALEX, 'prod-db', 'read', 5, 'INC-1', None, D.DENIED, 'prod-read', 'shorter than the minimum'),
    (ALEX, 'prod-db', 'read', None, '', None, D.DENIED, 'prod-read', 'requires a reason'),
    (ALEX, 'prod-db', 'read', None, 'debugging', None, D.DENIED, 'prod-read', 'requires a ticket'),
    (EVE, 'prod-db', 'read', None, 'INC-1', None, D.DENIED, None, 'no rule lets you'),
    (ALEX, 'nope', 'read', None, 'x', None, D.DENIED, None, 'no resource called'),
    (ALEX, 'prod-db', 'admin', None, 'x', None, D.DENIED, None, 'has no role'),
    (ALEX, 'prod-db', None, None, 'x', None, D.DENIED, None, 'several roles'),
    (SAM, 'prod-db', 'write', None, '', None, D.NEEDS_APPROVAL, 'prod-write', '1 of group:leads then 2 of'),
    (ALEX, 'prod-db', 'write', None, '', None, D.NEEDS_APPROVAL, 'prod-write', ''),  # nested group oncall
    (SAM, 'demo', None, None, '', None, D.AUTO_APPROVED, 'demo-self', 'automatically'),
    (SEC_ID_ONLY, 'prod-db', 'write', None, 'db on fire', None, D.BREAK_GLASS, 'prod-break-glass', 'break-glass'),
    (SEC_ID_ONLY, 'prod-db', 'write', None, '', None, D.DENIED, 'prod-break-glass', 'requires a reason'),
    (SEC_ID_ONLY, 'prod-db', 'write', 3600, 'x', None, D.DENIED, 'prod-break-glass', 'at most 30m'),
    (SAM, 'demo', None, 3600, '', None, D.DENIED, 'demo-self', 'at most 20m'),  # first match decides
    (EVE, 'demo', None, 3600, '', None, D.NEEDS_APPROVAL, 'demo-all', ''),  # no requesters: everyone
    (
        PIPE,
        'deploy-hook',
        'deploy',
        None,
        '',
        ('pipeline', {'event': 'pr_merge', 'branch': 'production'}),
        D.AUTO_APPROVED,
        'deploy-main',
        '',
    ),
    (
        PIPE,
        'deploy-hook',
        'deploy',
        None,
        '',
        ('pipeline', {'event': 'pr_merge', 'branch': 'main'}),
        D.DENIED,
        None,
        'no rule',
    ),
    (PIPE, 'deploy-hook', 'deploy', None, '', None, D.DENIED, None, 'no rule'),  # pipeline rule, slack trigger
]


@pytest.mark.parametrize(('who', 'resource', 'role', 'duration', 'reason', 'trig', 'kind', 'rule', 'words'), CASES)
def test_decision(who, resource, role, duration, reason, trig, kind, rule, words):
    """Each row: the kind of decision, the rule that made it, and words of its reason."""
    trigger, context = trig or ('slack', None)
    decision = evaluate(policy(), who, resource, role, duration, reason=reason, trigger=trigger, context=context)
    assert decision.kind is kind, decision.reason
    assert (decision.rule.name if decision.rule else None) == rule
    assert words in decision.reason


def test_default_duration_and_ticket_are_filled_in():
    """No duration means the rule's default; the ticket is found in the reason."""
    decision = evaluate(policy(), ALEX, 'prod-db', 'read', reason='debugging INC-4711 now')
    assert decision.duration == 1800
    assert decision.ticket == 'INC-4711'


def test_denial_says_what_would_be_allowed():
    """A refused user is told what they may request instead."""
    decision = evaluate(policy(), EVE, 'prod-db', 'read', reason='x')
    assert decision.denied
    assert decision.allowed == ('demo read (up to 4h)',)


def test_single_role_resource_needs_no_role():
    """ROLE may be left out when the resource has exactly one."""
    decision = evaluate(policy(), EVE, 'demo')
    assert decision.role == 'read' and decision.kind is D.NEEDS_APPROVAL
