"""Properties of every policy: no requester counts among their own approvers, and evaluate never raises.

Random small policies (groups drawn from six people, written by email in any case or by Slack user
ID, 1-4 rules with random requesters, approvers, approvals, steps and where approvers are asked, Teams
channels defined or not) go through the real loader; whatever loads must keep these promises, whatever the
lint says about it, and a rule asking in a Teams channel no file defines is refused at that reference.
"""

import re

import yaml
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from bot.core import transitions as t
from bot.core.errors import NotAnApprover, PolicyConfigError
from bot.core.model import AccessRequest, Principal
from bot.core.policy import ASK_EMAIL, ASK_SLACK, DecisionKind, evaluate
from bot.core.policy_lint import LINT_RULES, lint
from bot.core.policy_loader import build_policy

PEOPLE = ['ann', 'bob', 'cat', 'dan', 'eve', 'fay']
GROUPS = ['g0', 'g1', 'g2']
RESOURCES = {'db': ['read', 'write'], 'app': ['deploy']}
#: Teams channels a policy may define; rules may also name ``gone``, which none defines.
CHANNELS = ['sec', 'ops']
ASKED = ['slack', 'email', 'teams:sec', 'teams:ops', 'teams:gone']


def email(person):
    """The person's email, as the policy and Slack both know it (lower case)."""
    return f'{person}@example.com'


def slack_id(person):
    """The person's Slack user ID."""
    return f'U0{person.upper()}'


def principal(person):
    """The person as Slack presents them: user ID and email."""
    return Principal(slack_id=slack_id(person), email=email(person))


@st.composite
def member(draw):
    """A person written by email (in some case) or by Slack user ID."""
    person = draw(st.sampled_from(PEOPLE))
    how = draw(st.sampled_from(['email', 'EMAIL', 'id']))
    return {'email': email(person), 'EMAIL': email(person).upper(), 'id': slack_id(person)}[how]


@st.composite
def refs(draw, groups):
    """A non-empty list of references: people, group:NAME or bare group names."""
    group_ref = st.sampled_from(groups).flatmap(lambda g: st.sampled_from([g, f'group:{g}']))
    return draw(st.lists(st.one_of(member(), group_ref) if groups else member(), min_size=1, max_size=4))


@st.composite
def policy_texts(draw, dangling=False):
    """A small policy as YAML text; with ``dangling``, rules may ask in Teams channels it does not define."""
    teams = {name: {'webhook': f'env:TEAMS_{name.upper()}'} for name in CHANNELS if draw(st.booleans())}
    asked = ASKED if dangling else ['slack', 'email', *(f'teams:{name}' for name in teams)]
    groups = {g: draw(st.lists(member(), max_size=4)) for g in GROUPS[: draw(st.integers(0, len(GROUPS)))]}
    names = list(groups)
    rules = []
    for i in range(draw(st.integers(1, 4))):
        raw: dict[str, object] = {'name': f'r{i}'}
        if draw(st.booleans()):
            resource = draw(st.sampled_from(sorted(RESOURCES)))
            raw['resources'] = [resource]
            if draw(st.booleans()):
                raw['roles'] = [draw(st.sampled_from(RESOURCES[resource]))]
        if draw(st.booleans()):
            raw['requesters'] = draw(refs(names))
        kind = draw(st.sampled_from(['approvers', 'approvers', 'steps', 'auto_approve', 'break_glass']))
        if kind == 'approvers':
            raw['approvers'] = draw(refs(names))
            raw['approvals'] = draw(st.integers(1, 3))
        elif kind == 'steps':
            raw['steps'] = [
                {'approvers': draw(refs(names)), 'approvals': draw(st.integers(1, 2))}
                for _ in range(draw(st.integers(1, 3)))
            ]
        else:
            raw[kind] = True
        raw['require_reason'] = draw(st.booleans())
        raw['timeout'] = draw(st.sampled_from(['30m', '2h', '1d']))
        raw['trigger'] = draw(st.sampled_from(['slack', 'any', 'pipeline']))
        if draw(st.booleans()):
            ask = draw(st.lists(st.sampled_from(asked), min_size=1, max_size=3))
            raw['ask'] = ask[0] if len(ask) == 1 and draw(st.booleans()) else ask
        rules.append(raw)
    resources = {name: {'provider': 'webhook', 'roles': roles} for name, roles in RESOURCES.items()}
    doc = {'groups': groups, 'resources': resources, 'teams': teams, 'requests': rules}
    return yaml.safe_dump(doc, sort_keys=False)


def request(requester, rule, step):
    """A pending request by ``requester`` under ``rule``, waiting at ``step``."""
    return AccessRequest(
        id='r-prop',
        requester=requester,
        resource='db',
        role='read',
        duration=600,
        reason='why',
        rule=rule.name,
        policy_version='v',
        created_at=0.0,
        step=step,
    )


def load(text):
    """The policy, or skip this example when the generator wrote one the loader refuses."""
    try:
        return build_policy({'p.yaml': text})
    except PolicyConfigError:
        assume(False)
        raise


@settings(max_examples=200, deadline=None)
@given(policy_texts())
def test_no_requester_counts_among_their_own_approvers(text):
    """For every person, rule and step: the requester approving (as the same person by id or email) is refused."""
    policy = load(text)
    for person in PEOPLE:
        requester = principal(person)
        same = [
            requester,
            Principal(email=email(person).upper()),
            Principal(slack_id=slack_id(person)),
            Principal(slack_id='U0OTHER', email=email(person)),
            Principal(slack_id=slack_id(person), email='x@y.z'),
        ]
        for rule in policy.rules:
            for step in range(len(rule.steps)):
                for approver in same:
                    try:
                        t.approve(request(requester, rule, step), approver, policy=policy, rule=rule, now=1.0)
                    except NotAnApprover:
                        continue
                    raise AssertionError(f'{approver} approved the request of {requester} ({rule.name}, step {step})')


@settings(max_examples=200, deadline=None)
@given(policy_texts(), st.sampled_from([None, 5, 600, 7200, 10**6]), st.sampled_from(['', 'INC-1 broken']))
def test_evaluate_never_raises(text, duration, reason):
    """Every person asking for every resource and role (or none), by Slack or pipeline, gets a decision."""
    policy = load(text)
    askers = [principal(p) for p in PEOPLE] + [Principal(pipeline='ci'), Principal(slack_id='U0NOBODY')]
    for who in askers:
        for resource, roles in [*RESOURCES.items(), ('nope', ['x'])]:
            for role in [None, *roles, 'missing']:
                for trigger in ('slack', 'pipeline'):
                    decision = evaluate(policy, who, resource, role, duration, reason=reason, trigger=trigger)
                    assert decision.kind in DecisionKind
                    assert decision.denied or decision.rule is not None


@settings(max_examples=200, deadline=None)
@given(policy_texts())
def test_lint_never_raises_and_a_shadowed_rule_never_decides(text):
    """Lint gives known codes only; a rule it calls shadowed decides no request of anyone, by any trigger."""
    policy = load(text)
    findings = lint(policy)
    assert {f.code for f in findings} <= set(LINT_RULES)
    shadowed = {
        rule.name for rule in policy.rules for f in findings if f.code == 'shadowed' and f.source == rule.source
    }
    askers = [principal(p) for p in PEOPLE] + [Principal(pipeline='ci'), Principal(slack_id='U0NOBODY')]
    for who in askers:
        for resource, roles in RESOURCES.items():
            for role in roles:
                for trigger in ('slack', 'pipeline'):
                    decision = evaluate(policy, who, resource, role, 600, reason='why', trigger=trigger)
                    assert decision.rule is None or decision.rule.name not in shadowed


WHERE = re.compile(r'^p\.yaml:([0-9]+):([0-9]+): ')


@settings(max_examples=200, deadline=None)
@given(policy_texts(dangling=True))
def test_a_rule_loads_exactly_when_every_teams_channel_it_asks_in_is_defined(text):
    """Each reference to a channel no file defines is one problem, at that reference; otherwise the rules ask
    where they say, Slack's decisions always count and every channel a rule asks in is the policy's."""
    doc = yaml.safe_load(text)
    defined = set(doc['teams'] or {})
    asked = [[a] if isinstance(a, str) else a for a in (r.get('ask', ['slack']) for r in doc['requests'])]
    dangling = [a for each in asked for a in each if a.startswith('teams:') and a[6:] not in defined]
    lines = text.splitlines()
    try:
        policy = build_policy({'p.yaml': text})
    except PolicyConfigError as exc:
        event('refused: a dangling reference')
        assert dangling, exc.problems
        assert len(exc.problems) == len(dangling), exc.problems
        for problem, reference in zip(exc.problems, dangling, strict=True):
            found = WHERE.match(problem)
            assert found and f'unknown Teams channel `{reference[6:]}`' in problem, problem
            line, column = int(found[1]), int(found[2])
            assert lines[line - 1][column - 1 :].startswith(reference), (problem, lines[line - 1])
        return
    event('loaded')
    assert not dangling
    assert set(policy.teams) == defined
    for rule, each in zip(policy.rules, asked, strict=True):
        assert rule.ask == tuple(dict.fromkeys(each))
        assert rule.decides_via(ASK_SLACK)
        assert rule.decides_via(ASK_EMAIL) == (ASK_EMAIL in each) == rule.asks_email
        assert rule.decides_via('teams') == bool(rule.teams_channels)
        assert set(rule.teams_channels) <= set(policy.teams)
