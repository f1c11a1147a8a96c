"""Policy files that do not load: one precise ``file:line`` problem each, never a traceback."""

import subprocess
import sys
import textwrap

import pytest

from bot.core.errors import PolicyConfigError
from bot.core.policy_loader import build_policy

GOOD_HEAD = """\
groups:
  devops: [alex@example.com]
  leads: [sam@example.com]
resources:
  db:
    provider: webhook
    roles: [read]
"""

BAD = [
    # (name, YAML after GOOD_HEAD or whole file, expected line:column, words)
    ('yaml syntax', 'groups: [a, b\nresources: {}\n', '2:10', 'YAML syntax error'),
    ('unknown top key', GOOD_HEAD + 'rulez: []\n', '8:1', 'unknown key `rulez`'),
    ('unknown provider', GOOD_HEAD.replace('webhook', 'telnet'), '6:5', 'unknown provider `telnet`'),
    ('resource without roles', 'resources:\n  db:\n    provider: webhook\n', '2:3', 'needs `roles`'),
    ('unknown resource key', GOOD_HEAD + '    owner: me\n', '8:5', 'unknown key `owner`'),
    (
        'undefined group in rule',
        GOOD_HEAD + 'requests:\n  - name: r\n    approvers: [group:sec]\n',
        '10:17',
        'unknown group `sec`',
    ),
    (
        'bare unknown group',
        GOOD_HEAD + 'requests:\n  - name: r\n    approvers: [team-lead]\n',
        '10:17',
        'unknown group `team-lead`',
    ),
    (
        'undefined resource',
        GOOD_HEAD + 'requests:\n  - name: r\n    resources: [db, web]\n    approvers: [leads]\n',
        '10:21',
        'unknown resource `web`',
    ),
    (
        'unknown role',
        GOOD_HEAD + 'requests:\n  - name: r\n    roles: [write]\n    approvers: [leads]\n',
        '10:5',
        'role `write`',
    ),
    (
        'bad duration',
        GOOD_HEAD + 'requests:\n  - name: r\n    approvers: [leads]\n    timeout: two hours\n',
        '11:5',
        '`timeout`',
    ),
    (
        'duration a decimal number',
        GOOD_HEAD + 'requests:\n  - name: r\n    approvers: [leads]\n    timeout: 1.5\n',
        '11:5',
        '`timeout`: 1.5 is not a duration',
    ),
    (
        'duration a list',
        GOOD_HEAD + 'requests:\n  - name: r\n    approvers: [leads]\n    default_duration: [' + '1, ' * 60 + '1]\n',
        '11:5',
        '`default_duration`: a list is not a duration',
    ),
    (
        'duration a mapping',
        GOOD_HEAD + 'requests:\n  - name: r\n    approvers: [leads]\n    revoke_on_idle: {minutes: 30}\n',
        '11:5',
        '`revoke_on_idle`: a mapping is not a duration',
    ),
    (
        'unknown rule key',
        GOOD_HEAD + 'requests:\n  - name: r\n    approvers: [leads]\n    aprovals: 2\n',
        '11:5',
        'unknown key `aprovals`',
    ),
    (
        'approvals not a number',
        GOOD_HEAD + 'requests:\n  - name: r\n    approvers: [leads]\n    approvals: many\n',
        '11:5',
        '`approvals` must be a whole number',
    ),
    ('no approvers', GOOD_HEAD + 'requests:\n  - name: r\n    timeout: 1h\n', '9:5', 'has no `approvers`'),
    (
        'bad trigger',
        GOOD_HEAD + 'requests:\n  - name: r\n    approvers: [leads]\n    trigger: cron\n',
        '11:5',
        '`trigger`',
    ),
    (
        'bad regex',
        GOOD_HEAD + "requests:\n  - name: r\n    approvers: [leads]\n    ticket_pattern: '(['\n",
        '11:5',
        'not a valid regular expression',
    ),
    (
        'duplicate key',
        GOOD_HEAD + 'requests:\n  - name: r\n    approvers: [leads]\n    approvers: [devops]\n',
        '11:5',
        'defined twice',
    ),
    ('group cycle', 'groups:\n  a: [group:b]\n  b: [group:a]\n', '3:7', 'cycle'),
    (
        'bool as string',
        GOOD_HEAD + 'requests:\n  - name: r\n    approvers: [leads]\n    require_reason: yes please\n',
        '11:5',
        'true or false',
    ),
    ('rule not a mapping', GOOD_HEAD + 'requests:\n  - just a string\n', '9:5', 'must be a mapping'),
    (
        'duplicate rule name',
        GOOD_HEAD + 'requests:\n  - name: r\n    approvers: [leads]\n  - name: r\n    approvers: [leads]\n',
        '11:5',
        'already defined',
    ),
]


@pytest.mark.parametrize(('name', 'text', 'where', 'words'), BAD, ids=[b[0] for b in BAD])
def test_bad_policy_names_file_line_and_column(name, text, where, words):
    """Each kind of mistake gives exactly one problem, at the line and column of the offending key or value."""
    with pytest.raises(PolicyConfigError) as info:
        build_policy({'policies/p.yaml': text})
    assert len(info.value.problems) == 1, info.value.problems
    problem = info.value.problems[0]
    assert problem.startswith(f'policies/p.yaml:{where}: '), problem
    assert words in problem, problem


def test_name_defined_twice_across_files_names_both_places():
    """Several files merge; the same group in two of them is an error pointing at both."""
    with pytest.raises(PolicyConfigError) as info:
        build_policy({'a.yaml': 'groups:\n  ops: [a@x.com]\n', 'b.yaml': '\ngroups:\n  ops: [b@x.com]\n'})
    assert info.value.problems == ['b.yaml:3:3: group `ops` is already defined at a.yaml:2:3']


def test_all_problems_at_once():
    """An operator fixes a file in one pass: every problem is reported, not just the first."""
    text = GOOD_HEAD + 'requests:\n  - name: r\n    approvers: [nobody]\n    timeout: soon\n    colour: red\n'
    with pytest.raises(PolicyConfigError) as info:
        build_policy({'p.yaml': text})
    assert len(info.value.problems) == 3


def test_seed_snippet_loads_and_means_what_it_says():
    """The seed's own rule: a pipeline trigger, bare group names as approvers, '2 hours', revoke_on_idle."""
    text = textwrap.dedent("""\
        groups:
          team-lead: [sam@example.com]
          security_officer: [sec@example.com]
        resources:
          prod: {provider: webhook, roles: [deploy]}
        requests:
          - trigger: {pipeline: pr_merge, branch: production}
            approvers: [team-lead, security_officer]
            timeout: "2 hours"
            revoke_on_idle: true
        """)
    policy = build_policy({'seed.yaml': text})
    rule = policy.rules[0]
    assert rule.max_duration == 7200 and rule.revoke_on_idle is True
    assert rule.trigger == {'pipeline': 'pr_merge', 'branch': 'production'}
    assert policy.step_approvers(rule, 0) == {'sam@example.com', 'sec@example.com'}


def test_cli_validate_prints_file_line_and_exits_1(tmp_path):
    """`jit policy validate DIR`: exit 1 with file:line problems; exit 0 on the shipped example."""
    (tmp_path / 'p.yaml').write_text(GOOD_HEAD.replace('webhook', 'ftp'))
    bad = subprocess.run(
        [sys.executable, '-m', 'bot', 'policy', 'validate', str(tmp_path)], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert f'{tmp_path}/p.yaml:6:5: unknown provider `ftp`' in bad.stdout
    assert 'Traceback' not in bad.stderr
    good = subprocess.run(
        [sys.executable, '-m', 'bot', 'policy', 'validate', 'policies'], capture_output=True, text=True
    )
    assert good.returncode == 0, good.stdout + good.stderr
