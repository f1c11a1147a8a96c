"""Policy diff: each kind of change to effective access, in words, and no change when only the text changes."""

import time

import pytest

from bot.core.policy_diff import KINDS, Change, diff_policies
from bot.core.policy_loader import build_policy

BASE = """\
groups:
  devops: [alex@example.com, dana@example.com]
  leads: [sam@example.com, lee@example.com]
  security: [sec@example.com]
admins: [group:security]
resources:
  db:
    provider: webhook
    settings: {url: "http://127.0.0.1:1/x"}
    roles: {read: {grant: r}, write: {grant: w}}
requests:
  - name: db-read
    resources: [db]
    roles: [read]
    requesters: [group:devops]
    approvers: [group:leads]
    timeout: 2h
  - name: db-write
    resources: [db]
    roles: [write]
    requesters: [group:devops]
    approvers: [group:leads, group:security]
    approvals: 2
    timeout: 1h
"""


def edit(*pairs, base=BASE):
    """``base`` with each (old, new) text replaced once; fails loudly when ``old`` is not there."""
    out = base
    for old, new in pairs:
        assert out.count(old) == 1, old
        out = out.replace(old, new)
    return out


def diff(old, new):
    """The changes from policy text ``old`` to policy text ``new``."""
    return diff_policies(build_policy({'p.yaml': old}), build_policy({'p.yaml': new}))


DEVOPS = 'devops: [alex@example.com, dana@example.com]'
READ_RULE = '    approvers: [group:leads]\n    timeout: 2h\n'
AUTO_READ = edit(('    approvers: [group:leads]\n', '    auto_approve: true\n'))
BREAK_GLASS_WRITE = edit(('    approvals: 2\n', '    approvals: 2\n    break_glass: true\n'))
APP = '  app:\n    provider: webhook\n    roles: [deploy]\nrequests:\n'
WITH_APP = edit(('requests:\n', APP))
PR_MERGE = """\
  - name: ci
    resources: [db]
    roles: [read]
    requesters: [pipeline:ci]
    trigger: {pipeline: pr_merge, branch: production}
    auto_approve: true
"""
ANY_PIPELINE = """\
  - name: deploy
    resources: [db]
    roles: [read]
    requesters: [pipeline:deploy]
    trigger: pipeline
    approvers: [group:leads]
"""

TEAMS = 'teams:\n  sec: {webhook: env:TEAMS_SEC}\n'
WRITE_IN_TEAMS = edit(('    approvals: 2\n', '    approvals: 2\n    ask: [slack, teams:sec]\n')) + TEAMS

# (id, old policy, new policy, the (kind, widens) of every change, words of one message of the first kind)
CASES = [
    (
        'access-gained',
        BASE,
        edit((DEVOPS, 'devops: [alex@example.com, dana@example.com, bob@example.com]')),
        [('access', True), ('access', True)],
        'bob@example.com may now request db read (rule db-read)',
    ),
    (
        'access-lost',
        BASE,
        edit((DEVOPS, 'devops: [alex@example.com]')),
        [('access', False), ('access', False)],
        'dana@example.com may no longer request db write (was rule db-write)',
    ),
    (
        'open-requesters',
        BASE,
        edit(('    roles: [read]\n    requesters: [group:devops]\n', '    roles: [read]\n')),
        [('access', True), ('self_approval', True)],
        'anyone in the workspace may now request db read (rule db-read)',
    ),
    (
        'approver-added',
        BASE,
        edit(
            ('leads: [sam@example.com, lee@example.com]', 'leads: [sam@example.com, lee@example.com, kim@example.com]')
        ),
        [('approvers', True), ('approvers', True)],
        'kim@example.com may now approve db read (rule db-read)',
    ),
    (
        'approver-removed',
        BASE,
        edit(('[group:leads, group:security]', '[group:leads]')),
        [('approvers', False)],
        'sec@example.com may no longer approve db write (rule db-write)',
    ),
    (
        'quorum-lowered',
        BASE,
        edit(('    approvals: 2\n', '    approvals: 1\n')),
        [('quorum', True)],
        'db write needs 1 approval instead of 2 (rule db-write)',
    ),
    (
        'quorum-raised',
        BASE,
        edit((READ_RULE, '    approvers: [group:leads]\n    approvals: 2\n    timeout: 2h\n')),
        [('quorum', False)],
        'db read needs 2 approvals instead of 1',
    ),
    (
        'email-asked',
        BASE,
        edit((READ_RULE, '    approvers: [group:leads]\n    ask: [slack, email]\n    timeout: 2h\n')),
        [('ask', True)],
        'db read may now be approved or denied by email: a link decides as the approver it was sent to, whoever '
        'follows it (rule db-read)',
    ),
    (
        'teams-asked',
        BASE + TEAMS,
        WRITE_IN_TEAMS,
        [('ask', True)],
        'db write may now be approved or denied in Teams channel sec (env:TEAMS_SEC): a link decides as the approver '
        'it was sent to, whoever follows it (rule db-write)',
    ),
    (
        'teams-no-longer-asked',
        WRITE_IN_TEAMS,
        BASE + TEAMS,
        [('ask', False)],
        'db write may no longer be approved or denied in Teams channel sec (env:TEAMS_SEC) (rule db-write)',
    ),
    (
        'duration-raised',
        BASE,
        edit(('timeout: 2h', 'timeout: 8h')),
        [('duration', True)],
        'db read may be granted for up to 8h instead of 2h (rule db-read)',
    ),
    (
        'duration-lowered',
        BASE,
        edit(('timeout: 1h', 'timeout: 30m')),
        [('duration', False)],
        'db write may be granted for up to 30m instead of 1h',
    ),
    (
        'auto-approve-added',
        BASE,
        AUTO_READ,
        [('auto_approve', True)],
        'db read is now approved automatically (rule db-read)',
    ),
    ('auto-approve-removed', AUTO_READ, BASE, [('auto_approve', False)], 'db read is no longer approved automatically'),
    (
        'break-glass-added',
        BASE,
        BREAK_GLASS_WRITE,
        [('break_glass', True)],
        'db write now allows break-glass self-approval (rule db-write)',
    ),
    ('break-glass-removed', BREAK_GLASS_WRITE, BASE, [('break_glass', False)], 'db write no longer allows break-glass'),
    (
        'self-approval',
        BASE,
        edit(
            ('leads: [sam@example.com, lee@example.com]', 'leads: [sam@example.com, lee@example.com, alex@example.com]')
        ),
        [('self_approval', True), ('approvers', True), ('approvers', True)],
        'alex@example.com may both request and approve db read, and one approval decides (rule db-read)',
    ),
    ('resource-added', BASE, WITH_APP, [('resource', True)], 'resource app added (provider webhook, roles deploy)'),
    ('resource-removed', WITH_APP, BASE, [('resource', False)], 'resource app removed'),
    (
        'role-added',
        BASE,
        edit(('write: {grant: w}}', 'write: {grant: w}, admin: {grant: a}}')),
        [('role', True)],
        'role db admin added',
    ),
    (
        'role-removed',
        BASE,
        edit(
            ('{read: {grant: r}, write: {grant: w}}', '{read: {grant: r}}'),
            ('    roles: [write]\n', '    roles: [read]\n'),
        ),
        [('role', False), ('access', False)],
        'role db write removed',
    ),
    (
        'provider-changed',
        BASE,
        edit(('provider: webhook', 'provider: ssh')),
        [('provider', True)],
        'provider of db changed from webhook to ssh',
    ),
    (
        'settings-changed',
        BASE,
        edit(('127.0.0.1:1/x', '127.0.0.1:1/y')),
        [('settings', True)],
        'settings of db changed',
    ),
    (
        'role-parameters-changed',
        BASE,
        edit(('{grant: r}', '{grant: superuser}')),
        [('settings', True)],
        'parameters of role db read changed',
    ),
    (
        'admin-added',
        BASE,
        edit(('admins: [group:security]', 'admins: [group:security, kim@example.com]')),
        [('admins', True)],
        'kim@example.com may now revoke any grant',
    ),
    (
        'reason-required',
        BASE,
        edit(('timeout: 2h\n', 'timeout: 2h\n    require_reason: true\n')),
        [('conditions', False)],
        'db read now requires a reason (rule db-read)',
    ),
    (
        'ticket-dropped',
        edit(('timeout: 2h\n', "timeout: 2h\n    ticket_pattern: '^INC-'\n")),
        BASE,
        [('conditions', True)],
        'db read no longer requires a ticket',
    ),
    (
        'pipeline-event',
        BASE,
        BASE + PR_MERGE,
        [('access', True)],
        'pipeline:ci may now request db read from pipeline event pr_merge (branch=production) '
        '(rule ci, approved automatically)',
    ),
    (
        'any-pipeline-said-once',
        BASE + PR_MERGE,
        BASE + PR_MERGE + ANY_PIPELINE,
        [('access', True)],
        'pipeline:deploy may now request db read from a pipeline (rule deploy)',
    ),
    (
        'pipeline-event-decided-by-another-rule',
        BASE + PR_MERGE,
        BASE + ANY_PIPELINE.replace('pipeline:deploy', 'pipeline:ci') + PR_MERGE,
        [('auto_approve', False), ('access', True)],
        'db read from pipeline event pr_merge (branch=production) is no longer approved automatically (rule deploy, '
        'was ci)',
    ),
]


@pytest.mark.parametrize(('old', 'new', 'kinds', 'words'), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_kind_of_change(old, new, kinds, words):
    """The change has its kind, its widens flag and its words; nothing else is reported."""
    changes = diff(old, new)
    assert sorted((c.kind, c.widens) for c in changes) == sorted(kinds), [c.message for c in changes]
    first = [c for c in changes if (c.kind, c.widens) == kinds[0]]
    assert any(words in c.message for c in first), [c.message for c in first]


def test_every_kind_is_covered():
    """The table has a case for every kind the diff can report, widening and (where it exists) narrowing."""
    covered = {kind for case in CASES for kind, _ in case[3]}
    assert covered == set(KINDS)


REORDERED = """\
requests:
  - {name: db-read, requesters: [group:devops], resources: [db], timeout: 2h, approvers: [group:leads], roles: [read]}
  - approvals: 2
    timeout: 60m
    approvers: [group:leads, group:security]
    name: db-write
    requesters: [group:devops]
    roles: [write]
    resources: [db]
resources:
  db:
    roles: {write: {grant: w}, read: {grant: r}}
    settings: {url: "http://127.0.0.1:1/x"}
    provider: webhook
admins: [group:security]
groups:
  security: [sec@example.com]
  leads: [lee@example.com, SAM@example.com]
  devops: [dana@example.com, alex@example.com]
"""

NO_CHANGE = [
    ('identical', BASE),
    ('keys-reordered', REORDERED),
    ('group-renamed', BASE.replace('devops', 'ops')),
    ('rule-renamed', BASE.replace('db-read', 'read-only')),
    (
        'rule-split',
        edit(
            (
                'requesters: [group:devops]\n    approvers: [group:leads]\n',
                'requesters: [alex@example.com]\n    approvers: [group:leads]\n',
            ),
            (
                '  - name: db-write\n',
                '  - name: db-read-dana\n    resources: [db]\n    roles: [read]\n'
                '    requesters: [dana@example.com]\n    approvers: [group:leads]\n    timeout: 2h\n'
                '  - name: db-write\n',
            ),
        ),
    ),
    ('slack-asked-explicitly', edit((READ_RULE, '    approvers: [group:leads]\n    ask: slack\n    timeout: 2h\n'))),
    ('teams-channel-defined-unused', BASE + TEAMS),
    (
        'shadowed-rule-added',
        BASE + '  - name: late\n    resources: [db]\n    requesters: [group:devops]\n    auto_approve: true\n',
    ),
]


@pytest.mark.parametrize('new', [c[1] for c in NO_CHANGE], ids=[c[0] for c in NO_CHANGE])
def test_text_changes_that_keep_access_report_nothing(new):
    """Reordering, renaming a group or a rule, splitting a rule, a rule that never decides: no change."""
    assert diff(BASE, new) == []


def test_a_teams_channel_is_known_by_its_webhook():
    """Renaming a channel changes nothing; pointing it at another webhook is a channel asked and one no longer."""
    renamed = WRITE_IN_TEAMS.replace('teams:sec', 'teams:security').replace('  sec:', '  security:')
    assert diff(WRITE_IN_TEAMS, renamed) == []
    moved = WRITE_IN_TEAMS.replace('env:TEAMS_SEC', 'env:TEAMS_ALL_STAFF')
    assert [(c.kind, c.widens, c.message) for c in diff(WRITE_IN_TEAMS, moved)] == [
        ('ask', True, 'db write may now be approved or denied in Teams channel sec (env:TEAMS_ALL_STAFF): a link '
                      'decides as the approver it was sent to, whoever follows it (rule db-write)'),
        ('ask', False, 'db write may no longer be approved or denied in Teams channel sec (env:TEAMS_SEC) '
                       '(rule db-write)'),
    ]  # fmt: skip


def test_asking_elsewhere_on_an_automatic_rule_is_no_change():
    """Nobody is asked when a rule approves by itself: where it would ask does not matter."""
    assert (
        diff(AUTO_READ, AUTO_READ.replace('    auto_approve: true\n', '    auto_approve: true\n    ask: email\n')) == []
    )


def test_one_person_added_to_a_group_reads_as_one_line_per_thing():
    """Several people gaining the same thing make one line; lines come widening first, then by subject."""
    new = edit((DEVOPS, 'devops: [alex@example.com, bob@example.com, cy@example.com]'))
    assert diff(BASE, new) == [
        Change('access', True, 'bob@example.com, cy@example.com may now request db read (rule db-read)', 'db read'),
        Change('access', True, 'bob@example.com, cy@example.com may now request db write (rule db-write)', 'db write'),
        Change('access', False, 'dana@example.com may no longer request db read (was rule db-read)', 'db read'),
        Change('access', False, 'dana@example.com may no longer request db write (was rule db-write)', 'db write'),
    ]


def test_a_rule_change_that_applies_to_some_requesters_names_them():
    """A requester moved to a rule with other terms is named; those whose terms did not change are not."""
    new = BASE.replace('  - name: db-read\n', '  - name: alex-read\n    resources: [db]\n    roles: [read]\n'
                       '    requesters: [alex@example.com]\n    approvers: [group:leads]\n    timeout: 8h\n'
                       '  - name: db-read\n')  # fmt: skip
    assert [c.message for c in diff(BASE, new)] == [
        'db read may be granted for up to 8h instead of 2h (rule alex-read, was db-read)'
    ]


def test_requesters_decided_by_another_rule_are_not_named():
    """When an open rule's approvers grow, those whose requests an earlier rule decides do not count."""
    old = BASE + '  - name: open\n    resources: [db]\n    roles: [read]\n    approvers: [group:security]\n'
    new = old.replace('approvers: [group:security]\n', 'approvers: [group:security, kim@example.com]\n')
    assert [c.message for c in diff(old, new)] == [
        'kim@example.com may both request and approve db read, and one approval decides (rule open)',
        'kim@example.com may now approve db read (rule open)',
    ]


def test_fine_for_fifty_rules_and_a_hundred_people():
    """A policy of the size a CLI must handle compares in well under a few seconds."""
    people = [f'p{i}@example.com' for i in range(100)]
    groups = '\n'.join(f'  g{i}: [{", ".join(people[i * 10 : i * 10 + 10])}]' for i in range(10))
    resources = '\n'.join(f'  r{i}:\n    provider: webhook\n    roles: [read, write, admin]' for i in range(25))
    rules = '\n'.join(
        f'  - name: rule{i}\n    resources: [r{i % 25}]\n    requesters: [group:g{i % 10}]\n'
        f'    approvers: [group:g{(i + 1) % 10}]\n    timeout: {i % 5 + 1}h'
        for i in range(50)
    )
    old = f'groups:\n{groups}\nresources:\n{resources}\nrequests:\n{rules}\n'
    new = old.replace('p1@example.com', 'p1@example.com, p100@example.com').replace('timeout: 3h', 'timeout: 9h')
    start = time.perf_counter()
    changes = diff(old, new)
    assert time.perf_counter() - start < 5
    assert any('p100@example.com may now request' in c.message for c in changes)
