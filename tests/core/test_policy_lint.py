"""Policy lint: each check fires on the policy it is about, at that rule's line, and not on a close variant."""

import pathlib
import subprocess
import sys

import pytest

from bot.core.policy import Source
from bot.core.policy_lint import LINT_RULES, Finding, lint
from bot.core.policy_loader import build_policy

ROOT = pathlib.Path(__file__).resolve().parents[2]

HEAD = """\
groups:
  devops: [alex@example.com, dana@example.com]
  leads: [sam@example.com, lee@example.com]
  security: [sec@example.com, U0SEC]
  empty: []
resources:
  db:
    provider: webhook
    settings: {url: "http://127.0.0.1:1/x", SETTINGS}
    roles: [read, write]
  app:
    provider: webhook
    roles: [read, deploy]
requests:
  - name: db-write
    resources: [db]
    roles: [write]
    requesters: [group:devops]
    approvers: [group:security]
"""


def text(rule, settings='secret: env:S'):
    """A policy whose first rule (db-write) is clean, followed by ``rule`` (YAML lines of one more rule)."""
    return HEAD.replace('SETTINGS', settings) + rule


def rule(name, **keys):
    """One rule as YAML lines, keys in the given order (``None`` leaves a key out)."""
    lines = [f'  - name: {name}'] + [f'    {k}: {v}' for k, v in keys.items() if v is not None]
    return '\n'.join(lines) + '\n'


#: A Teams channel, as the last top-level key (after the rules).
TEAMS = 'teams:\n  sec: {webhook: env:TEAMS_SEC_WEBHOOK}\n'
READ = {'resources': '[db]', 'roles': '[read]', 'requesters': '[group:devops]'}

# (id, code, policy that triggers it, the line it starts with, a close variant that triggers nothing)
CASES = [
    (
        'requester-is-sole-step-approver',
        'self-approval',
        text(rule('r', **{**READ, 'requesters': '[group:devops, sam@example.com]'}, approvers='[group:leads]')),
        '  - name: r',
        text(rule('r', **READ, approvers='[group:leads]')),
    ),
    (
        'more-approvals-than-approvers',
        'unapprovable',
        text(rule('r', **READ, approvers='[group:leads]', approvals=3)),
        '  - name: r',
        text(rule('r', **READ, approvers='[group:leads]', approvals=2)),
    ),
    (
        'empty-approver-group',
        'unapprovable',
        text(rule('r', **READ, approvers='[group:empty]')),
        '  - name: r',
        text(rule('r', **READ, approvers='[group:leads]')),
    ),
    (
        'two-steps-one-person',
        'unapprovable',
        text(rule('r', **READ, steps='[{approvers: [sam@example.com]}, {approvers: [SAM@example.com]}]')),
        '  - name: r',
        text(rule('r', **READ, steps='[{approvers: [sam@example.com]}, {approvers: [sec@example.com]}]')),
    ),
    (
        'requester-leaves-too-few-approvers',
        'unapprovable',
        text(rule('r', **{**READ, 'requesters': '[sam@example.com]'}, approvers='[group:leads]', approvals=2)),
        '  - name: r',
        text(rule('r', **{**READ, 'requesters': '[alex@example.com]'}, approvers='[group:leads]', approvals=2)),
    ),
    (
        'timeout-over-12h',
        'duration-cap',
        text(rule('r', **READ, approvers='[group:leads]', timeout='13h')),
        '  - name: r',
        text(rule('r', **READ, approvers='[group:leads]', timeout='12h')),
    ),
    (
        'auto-approve-write',
        'auto-approve-privileged',
        text(rule('r', **{**READ, 'roles': '[write]', 'requesters': '[group:leads]'}, auto_approve='true')),
        '  - name: r',
        text(rule('r', **READ, auto_approve='true')),
    ),
    (
        'auto-approve-all-roles',
        'auto-approve-privileged',
        text(rule('r', **{**READ, 'roles': None}, auto_approve='true')),
        '  - name: r',
        text(rule('r', **{**READ, 'resources': '[app]', 'roles': None}, auto_approve='true')),
    ),
    (
        'earlier-rule-covers-a-subset-of-requesters',
        'shadowed',
        text(rule('r', **{**READ, 'roles': '[write]', 'requesters': '[alex@example.com]'}, approvers='[group:leads]')),
        '  - name: r',
        text(
            rule(
                'r',
                **{**READ, 'roles': '[write]', 'requesters': '[alex@example.com, lee@example.com]'},
                approvers='[group:security]',
            )
        ),
    ),
    (
        'earlier-rule-any-trigger',
        'shadowed',
        text(
            rule('a', **READ, trigger='any', approvers='[group:leads]')
            + rule('r', **READ, approvers='[group:security]')
        ),
        '  - name: r',
        text(
            rule('a', **READ, trigger='pipeline', approvers='[group:leads]')
            + rule('r', **READ, approvers='[group:security]')
        ),
    ),
    (
        'inline-webhook-secret',
        'inline-secret',
        text(rule('r', **READ, approvers='[group:leads]'), settings='secret: hunter2'),
        '  db:',
        text(rule('r', **READ, approvers='[group:leads]'), settings='secret: env:S'),
    ),
    (
        'ticket-pattern-repeat-in-repeat',
        'nested-quantifier',
        text(rule('r', **READ, approvers='[group:leads]', ticket_pattern="'^([A-Z0-9]+-?)+$'")),
        '  - name: r',
        text(rule('r', **READ, approvers='[group:leads]', ticket_pattern="'^[A-Z0-9]+(-[A-Z0-9]+)*$'")),
    ),
    (
        'break-glass-no-reason',
        'break-glass-without-reason',
        text(rule('r', **READ, break_glass='true')),
        '  - name: r',
        text(rule('r', **READ, break_glass='true', require_reason='true')),
    ),
    (
        'no-requesters',
        'open-requesters',
        text(rule('r', **{**READ, 'requesters': None}, approvers='[group:leads]')),
        '  - name: r',
        text(rule('r', **READ, approvers='[group:leads]')),
    ),
    (
        'no-resources',
        'open-resources',
        text(rule('r', **{**READ, 'resources': None}, approvers='[group:leads]')),
        '  - name: r',
        text(rule('r', **READ, approvers='[group:leads]')),
    ),
    (
        'email-to-a-slack-id',
        'email-approver-without-address',
        text(rule('r', **READ, approvers='[group:security]', ask='[slack, email]')),
        '  - name: r',
        text(rule('r', **READ, approvers='[group:leads]', ask='[slack, email]')),
    ),
    (
        'teams-link-to-a-slack-id',
        'teams-without-email',
        text(rule('r', **READ, approvers='[group:security]', ask='[teams:sec]') + TEAMS),
        '  - name: r',
        text(rule('r', **READ, approvers='[group:leads]', ask='[teams:sec]') + TEAMS),
    ),
]


def line_of(policy_text, start):
    """The 1-based line of ``policy_text`` that begins with ``start``."""
    return next(i for i, line in enumerate(policy_text.splitlines(), 1) if line.startswith(start))


@pytest.mark.parametrize(('case', 'code', 'bad', 'where', 'good'), CASES, ids=[c[0] for c in CASES])
def test_lint_rule_fires_on_its_policy_only(case, code, bad, where, good):
    """The bad policy gives one finding, with this code, at the rule's (or resource's) line; the variant none."""
    findings = lint(build_policy({'p.yaml': bad}))
    assert [(f.code, f.source.file, f.source.line) for f in findings] == [(code, 'p.yaml', line_of(bad, where))]
    name = where.split()[-1].rstrip(':')
    assert f'`{name}`' in findings[0].message
    assert str(findings[0]).startswith(f'p.yaml:{line_of(bad, where)}:')
    assert lint(build_policy({'p.yaml': good})) == []


def test_every_lint_rule_has_a_case():
    """LINT_RULES lists exactly the codes the table exercises, each with a one-line description."""
    assert set(LINT_RULES) == {c[1] for c in CASES}
    assert all(desc and '\n' not in desc for desc in LINT_RULES.values())


def test_self_approval_names_the_overlapping_people():
    """The warning says who could approve their own request."""
    findings = lint(build_policy({'p.yaml': CASES[0][2]}))
    assert 'sam@example.com' in findings[0].message and 'alex@example.com' not in findings[0].message


def test_self_approval_is_not_reported_for_two_approvals_or_two_steps():
    """With a second approver or a second step, a requester-approver cannot decide alone."""
    two = rule(
        'r',
        **{**READ, 'requesters': '[sam@example.com, alex@example.com]'},
        approvers='[group:leads, group:security]',
        approvals=2,
    )
    steps = rule(
        'r',
        **{**READ, 'requesters': '[sam@example.com]'},
        steps='[{approvers: [group:leads]}, {approvers: [group:security]}]',
    )
    assert lint(build_policy({'p.yaml': text(two)})) == []
    assert lint(build_policy({'p.yaml': text(steps)})) == []


def test_shadowing_by_several_earlier_rules_together():
    """Two earlier rules, each for some of the requesters, together hide a later rule."""
    policy_text = text(
        rule('a', **{**READ, 'requesters': '[alex@example.com]'}, approvers='[group:leads]')
        + rule('b', **{**READ, 'requesters': '[dana@example.com]'}, approvers='[group:leads]')
        + rule('r', **READ, approvers='[group:security]')
    )
    findings = lint(build_policy({'p.yaml': policy_text}))
    assert [f.code for f in findings] == ['shadowed']
    assert '`a`, `b`' in findings[0].message


def test_a_pipeline_event_rule_is_shadowed_by_a_broader_event_rule():
    """{pipeline: pr_merge} before {pipeline: pr_merge, branch: main} matches every request of the latter."""
    broad = rule('a', **READ, trigger='{pipeline: pr_merge}', auto_approve='true')
    narrow = rule('r', **READ, trigger='{pipeline: pr_merge, branch: main}', auto_approve='true')
    findings = lint(build_policy({'p.yaml': text(broad + narrow)}))
    assert [(f.code, f.source.line) for f in findings] == [('shadowed', line_of(text(broad + narrow), '  - name: r'))]
    assert lint(build_policy({'p.yaml': text(narrow + broad)})) == []


def test_approvers_without_address_are_named_once_per_rule():
    """The Slack IDs of every step are named, emails are not; a rule asking by email and in Teams warns once."""
    steps = '[{approvers: [group:security]}, {approvers: [U0LEAD, lee@example.com]}]'
    both = text(rule('r', **READ, steps=steps, ask='[email, teams:sec]') + TEAMS)
    findings = lint(build_policy({'p.yaml': both}))
    assert [f.code for f in findings] == ['email-approver-without-address']
    assert 'U0LEAD, U0SEC are Slack user IDs' in findings[0].message and '@' not in findings[0].message
    teams = text(rule('r', **READ, steps=steps, ask='teams:sec') + TEAMS)
    findings = lint(build_policy({'p.yaml': teams}))
    assert [f.code for f in findings] == ['teams-without-email']
    assert 'asks in Teams (sec)' in findings[0].message and 'U0LEAD, U0SEC' in findings[0].message
    slack_only = text(rule('r', **READ, steps=steps, ask='[slack]'))
    assert lint(build_policy({'p.yaml': slack_only})) == []


def test_duration_cap_follows_max_duration():
    """--max-duration moves the cap: a 2h rule is fine under 12h and warned about under 1h."""
    policy = build_policy({'p.yaml': text(rule('r', **READ, approvers='[group:leads]', timeout='2h'))})
    assert lint(policy) == []
    assert [f.code for f in lint(policy, max_duration=3600)] == ['duration-cap']


def test_findings_are_sorted_by_file_and_line_and_print_as_warnings():
    """Findings from two files come file by file, line by line, as file:line:column: warning[code]: message."""
    open_rule = rule('r', roles='[read]', approvers='[group:leads]')
    other = open_rule.replace('name: r', 'name: rb') + '    trigger: pipeline\n'
    policy = build_policy({'b.yaml': 'requests:\n' + other, 'a.yaml': text(open_rule)})
    findings = lint(policy)
    assert [(f.source.file, f.code) for f in findings] == [
        ('a.yaml', 'open-requesters'),
        ('a.yaml', 'open-resources'),
        ('b.yaml', 'open-requesters'),
        ('b.yaml', 'open-resources'),
    ]
    finding = Finding('open-requesters', 'rule `r` has no `requesters`', Source('a.yaml', 3, 5))
    assert str(finding) == 'a.yaml:3:5: warning[open-requesters]: rule `r` has no `requesters`'


def test_the_core_fixture_policy_warns_about_what_it_really_has():
    """The test fixture: sam (oncall) can never get prod-write (sam is its only lead), demo-all is open to all."""
    from tests.core.policy_fixtures import policy

    assert [f.code for f in lint(policy())] == ['unapprovable', 'open-requesters']


def validate(*argv):
    """Run `python -m bot policy validate ...` from the project root."""
    return subprocess.run(
        [sys.executable, '-m', 'bot', 'policy', 'validate', *argv], capture_output=True, text=True, cwd=ROOT
    )


def test_cli_warnings_exit_0_unless_strict(tmp_path):
    """Warnings print as file:line:column: warning[code] and exit 0; --strict makes them exit 1."""
    (tmp_path / 'p.yaml').write_text(text(rule('r', **{**READ, 'requesters': None}, approvers='[group:leads]')))
    relaxed = validate(str(tmp_path))
    assert relaxed.returncode == 0, relaxed.stdout + relaxed.stderr
    assert f'{tmp_path}/p.yaml:20:5: warning[open-requesters]: rule `r`' in relaxed.stdout
    assert '1 warning(s)' in relaxed.stdout.splitlines()[-1]
    strict = validate('--strict', str(tmp_path))
    assert strict.returncode == 1
    assert 'warning[open-requesters]' in strict.stdout and 'Traceback' not in strict.stderr


def test_cli_shipped_policies_have_no_warnings():
    """The example policy under policies/ passes --strict: no lint warnings."""
    shipped = validate('--strict', 'policies')
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    assert 'warning[' not in shipped.stdout


def test_cli_max_duration():
    """--max-duration 1h warns about the example's 2-hour rule; a bad duration is a usage error (exit 2)."""
    capped = validate('--max-duration', '1h', 'policies')
    assert capped.returncode == 0 and 'warning[duration-cap]: rule `demo-read`' in capped.stdout
    bad = validate('--max-duration', 'soon', 'policies')
    assert bad.returncode == 2 and 'not a duration' in bad.stderr and 'Traceback' not in bad.stderr


@pytest.mark.parametrize(('pattern', 'warned'), [
    (r'^([A-Z0-9]+-?)+$', True),
    (r'(a+)+', True),
    (r'^(\w+\s?)*$', True),
    (r'(x+x+)+y', True),
    (r'(?:[a-z]*){2,}', True),
    (r'^(INC|(CH(G|ANGE))+)-(\d+)+$', True),
    (r'^(INC|CHG)-[0-9]+$', False),
    (r'^[A-Z0-9]+(-[A-Z0-9]+)*$', False),  # each repetition starts with `-`, which the one before cannot end with
    (r'^(?:[A-Z]{2}-){3}[0-9]+$', False),  # a fixed count inside: one way to match
    (r'^(\d{1,3}\.){3}\d{1,3}$', False),
    (r'^(ab)+$', False),
    (r'^INC-\pN+$', False),  # not Python syntax (RE2 reads it): not analysed, never an error
])  # fmt: skip
def test_nested_quantifier_warns_where_repetitions_can_split_a_word_many_ways(pattern, warned):
    """A repeat whose body holds a variable repeat and can end with what it starts with (`(x+)+`) backtracks
    exponentially in most engines; jit matches in linear time, so this is a warning for the pattern's other uses."""
    policy = build_policy({'p.yaml': text(rule('r', **READ, approvers='[group:leads]', ticket_pattern=f"'{pattern}'"))})
    codes = [f.code for f in lint(policy)]
    assert codes == (['nested-quantifier'] if warned else []), codes
