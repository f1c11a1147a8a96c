"""Where a rule's approvers are asked (``ask``) and the Teams channels rules may name (``teams``).

``ask`` lists ``slack`` (the default), ``email`` and ``teams:NAME``; ``teams`` maps NAME to ``{webhook: env:VAR}``
in any policy file. Every mistake is one ``file:line:column`` problem, and a webhook URL written inline is
refused without being repeated (it is a secret: problems are logged and posted).
"""

import pytest

from bot.core.errors import PolicyConfigError
from bot.core.policy import ASK_SLACK, TeamsChannel
from bot.core.policy_loader import build_policy

HEAD = """\
groups:
  leads: [sam@example.com, lee@example.com]
resources:
  db: {provider: webhook, roles: [read]}
teams:
  sec-approvals: {webhook: env:TEAMS_SEC_WEBHOOK}
requests:
  - name: r
    approvers: [group:leads]
"""
#: The line after HEAD: where a rule key added to ``r`` is written.
LINE = HEAD.count('\n') + 1


def problems_of(texts):
    with pytest.raises(PolicyConfigError) as info:
        build_policy(texts)
    return info.value.problems


def test_a_rule_asks_in_slack_unless_it_says_otherwise():
    rule = build_policy({'p.yaml': HEAD}).rules[0]
    assert rule.ask == (ASK_SLACK,) and not rule.asks_email and rule.teams_channels == ()
    assert rule.decides_via('slack') and not rule.decides_via('email') and not rule.decides_via('teams')


@pytest.mark.parametrize(('written', 'ask'), [
    ('[slack, email, teams:sec-approvals]', ('slack', 'email', 'teams:sec-approvals')),
    ('email', ('email',)),
    ('[teams:sec-approvals]', ('teams:sec-approvals',)),
    ('[email, slack, email]', ('email', 'slack')),
])  # fmt: skip
def test_ask_is_read_as_written_each_once(written, ask):
    """A list or one value; order kept, a repeat dropped."""
    rule = build_policy({'p.yaml': HEAD + f'    ask: {written}\n'}).rules[0]
    assert rule.ask == ask
    assert rule.asks_email == ('email' in ask)
    assert rule.teams_channels == (('sec-approvals',) if 'teams:sec-approvals' in ask else ())
    assert rule.decides_via('slack')  # Slack's decisions always count


def test_teams_channels_load_with_their_place():
    policy = build_policy({'p.yaml': HEAD})
    assert policy.teams == {
        'sec-approvals': TeamsChannel('sec-approvals', 'env:TEAMS_SEC_WEBHOOK', policy.teams['sec-approvals'].source)
    }
    assert str(policy.teams['sec-approvals'].source) == 'p.yaml:6:3'
    assert build_policy({'p.yaml': 'groups: {}\n'}).teams == {}


def test_teams_merge_across_files_and_rules_name_channels_of_any_file():
    """As groups and resources: a rule in one file asks in a channel defined in another, read before or after."""
    head = HEAD.replace('teams:\n  sec-approvals: {webhook: env:TEAMS_SEC_WEBHOOK}\n', '')
    texts = {
        'a.yaml': head + '    ask: [teams:ops, teams:sec-approvals]\n',
        'b.yaml': 'teams:\n  sec-approvals: {webhook: env:SEC}\n',
        'c.yaml': 'teams:\n  ops: {webhook: env:OPS}\n',
    }
    policy = build_policy(texts)
    assert sorted(policy.teams) == ['ops', 'sec-approvals']
    assert policy.rules[0].teams_channels == ('ops', 'sec-approvals')
    assert str(policy.teams['ops'].source) == 'c.yaml:2:3'


def test_a_channel_defined_twice_names_both_places():
    texts = {'a.yaml': HEAD, 'b.yaml': '# ops\nteams:\n  sec-approvals: {webhook: env:OTHER}\n'}
    assert problems_of(texts) == ['b.yaml:3:3: Teams channel `sec-approvals` is already defined at a.yaml:6:3']


def test_a_webhook_url_written_inline_is_refused_and_not_repeated():
    """The URL is a secret in git; the problem says where and why, and never quotes it."""
    url = 'https://prod-12.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=SECRET'
    problems = problems_of({'p.yaml': HEAD.replace('env:TEAMS_SEC_WEBHOOK', url)})
    assert problems == [
        'p.yaml:6:28: `webhook` of Teams channel `sec-approvals` must be written env:NAME: the webhook\'s URL is a '
        'secret (whoever has it can post in the channel), so it is read from the environment, never written in a '
        'policy file'
    ]
    assert 'SECRET' not in problems[0] and 'azure' not in problems[0]


ASK_BAD = [
    # (id, the rule's ask as written, line:column, the problem's words)
    ('unknown value', '[slack, sms]', f'{LINE}:18', '`ask` cannot ask by `sms`: expected slack, email or teams:NAME'),
    ('wrong case', 'Email', f'{LINE}:10', '`ask` cannot ask by `Email`'),
    ('dangling teams', '[email, teams:secops]', f'{LINE}:18',
     'unknown Teams channel `secops` (defined in `teams`: sec-approvals)'),
    ('dangling single', 'teams:secops', f'{LINE}:10', 'unknown Teams channel `secops`'),
    ('teams without name', '[teams]', f'{LINE}:11', '`teams` names no Teams channel: write teams:NAME'),
    ('teams empty name', "['teams:']", f'{LINE}:11', '`teams:` names no Teams channel'),
    ('empty list', '[]', f'{LINE}:5', '`ask` is empty'),
    ('null', '', f'{LINE}:5', '`ask` must be a list of where approvers are asked'),
    ('mapping', '{email: true}', f'{LINE}:5', '`ask` must be a list'),
    ('number in list', '[slack, 1]', f'{LINE}:5', '`ask` must be a list'),
    ('boolean', 'true', f'{LINE}:5', '`ask` must be a list'),
]  # fmt: skip


@pytest.mark.parametrize(('case', 'written', 'where', 'words'), ASK_BAD, ids=[c[0] for c in ASK_BAD])
def test_a_bad_ask_is_one_problem_at_its_place(case, written, where, words):
    problems = problems_of({'p.yaml': HEAD + f'    ask: {written}\n'})
    assert len(problems) == 1, problems
    assert problems[0].startswith(f'p.yaml:{where}: '), problems
    assert words in problems[0], problems


def test_a_dangling_reference_with_no_channels_says_none_are_defined():
    head = HEAD.replace('teams:\n  sec-approvals: {webhook: env:TEAMS_SEC_WEBHOOK}\n', '')
    assert problems_of({'p.yaml': head + '    ask: [teams:sec]\n'}) == [
        'p.yaml:8:11: unknown Teams channel `sec` (defined in `teams`: none)'
    ]


def test_every_dangling_reference_is_a_problem_of_its_own():
    """Two rules, three references to nothing: three problems, each at its value."""
    text = HEAD + '    ask: [teams:a, teams:b]\n  - name: s\n    approvers: [group:leads]\n    ask: [teams:c]\n'
    assert [p.split(': ')[0] for p in problems_of({'p.yaml': text})] == [
        f'p.yaml:{LINE}:11',
        f'p.yaml:{LINE}:20',
        f'p.yaml:{LINE + 3}:11',
    ]


TEAMS_BAD = [
    # (id, the teams mapping as written, line:column, the problem's words)
    ('not a mapping', 'teams: [sec]\n', '1:8', '`teams` must be a mapping'),
    ('entry not a mapping', 'teams:\n  sec: env:X\n', '2:3',
     'Teams channel `sec` must be a mapping: {webhook: env:NAME}'),
    ('entry null', 'teams:\n  sec:\n', '2:3', 'Teams channel `sec` must be a mapping'),
    ('no webhook', 'teams:\n  sec: {}\n', '2:3', 'Teams channel `sec` has no `webhook` (write webhook: env:NAME)'),
    ('unknown key', 'teams:\n  sec:\n    webhook: env:X\n    channel: general\n', '4:5',
     'unknown key `channel` in Teams channel `sec` (expected: webhook)'),
    ('webhook number', 'teams:\n  sec: {webhook: 42}\n', '2:18', 'must be written env:NAME'),
    ('webhook list', 'teams:\n  sec: {webhook: [env:X]}\n', '2:18', 'must be written env:NAME'),
    ('webhook null', 'teams:\n  sec: {webhook: null}\n', '2:18', 'must be written env:NAME'),
    ('webhook http', 'teams:\n  sec: {webhook: "http://127.0.0.1/hook"}\n', '2:18', 'must be written env:NAME'),
    ('env without name', 'teams:\n  sec: {webhook: "env:"}\n', '2:18', '`env:` does not name an environment variable'),
    ('env bad name', 'teams:\n  sec: {webhook: env:A-B}\n', '2:18', '`env:A-B` does not name an environment variable'),
    ('bad channel name', "teams:\n  'sec:eu': {webhook: env:X}\n", '2:3', '`sec:eu` is not a valid Teams channel name'),
    ('bad top-level key', 'team:\n  sec: {webhook: env:X}\n', '1:1', 'unknown key `team` (expected one of: groups, '
     'admins, resources, teams, requests)'),
]  # fmt: skip


@pytest.mark.parametrize(('case', 'text', 'where', 'words'), TEAMS_BAD, ids=[c[0] for c in TEAMS_BAD])
def test_a_bad_teams_entry_is_one_problem_at_its_place(case, text, where, words):
    problems = problems_of({'p.yaml': text})
    assert len(problems) == 1, problems
    assert problems[0].startswith(f'p.yaml:{where}: '), problems
    assert words in problems[0], problems


def test_a_rule_naming_a_broken_channel_is_not_a_second_problem():
    """The channel's own problem is the one to fix; the rule that names it says nothing more."""
    text = HEAD.replace('{webhook: env:TEAMS_SEC_WEBHOOK}', '{webhook: "https://x"}') + '    ask: teams:sec-approvals\n'
    problems = problems_of({'p.yaml': text})
    assert len(problems) == 1 and problems[0].startswith('p.yaml:6:28: `webhook` of Teams channel'), problems


def test_ask_is_a_key_of_a_rule_and_a_misspelling_is_named():
    problems = problems_of({'p.yaml': HEAD + '    asks: [email]\n'})
    assert len(problems) == 1 and problems[0].startswith(f'p.yaml:{LINE}:5: unknown key `asks` in rule `r`')
    assert 'ask,' in problems[0]
