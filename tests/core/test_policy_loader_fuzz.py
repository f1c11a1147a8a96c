"""Whatever a policy file holds, loading it either works or names problems: never a traceback."""

from __future__ import annotations

import re

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.errors import PolicyConfigError
from bot.core.policy_loader import build_policy

KEYS = ['groups', 'admins', 'resources', 'requests', 'provider', 'roles', 'settings', 'name', 'approvers',
        'approvals', 'steps', 'timeout', 'trigger', 'requesters', 'auto_approve', 'break_glass', 'ticket_pattern',
        'revoke_on_idle', 'default_duration', 'notify', 'pipeline', 'devops', 'db', 'read', 'group:devops', 'ask',
        'teams', 'webhook', 'sec']  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=False),
    st.sampled_from(KEYS),
    st.text(max_size=12),
    st.sampled_from(['2h', '0s', '[', 'env:X', 'webhook', 'email', 'slack', 'teams:sec', 'teams:', 'teams']),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
                      max_leaves=25)  # fmt: skip
documents = st.dictionaries(st.sampled_from(['groups', 'admins', 'resources', 'teams', 'requests', 'extra']), values,
                            max_size=4)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(documents)
def test_random_structures_load_or_name_problems(doc):
    """Random shapes under the real keys: a Policy, or PolicyConfigError with file:line:column problems."""
    try:
        build_policy({'p.yaml': yaml.safe_dump(doc)})
    except PolicyConfigError as exc:
        assert exc.problems and all(p.startswith('p.yaml:') for p in exc.problems)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_loads_or_names_problems(text):
    """Arbitrary text, YAML or not."""
    try:
        build_policy({'p.yaml': text})
    except PolicyConfigError as exc:
        assert all(p.startswith('p.yaml:') for p in exc.problems)


class _NoAliases(yaml.SafeDumper):
    """Writes every value out: a shared list would otherwise become an anchor, which a policy may not have."""

    def ignore_aliases(self, data):
        return True


#: Names a reference may take: some defined in BASE, most not (a resource, role, group or person nowhere).
REFS = ['db', 'app', 'nope', 'read', 'write', 'deploy', 'ghost', 'devops', 'leads', 'group:devops', 'group:ghost',
        'group:', 'pipeline:ci', 'pipeline:', 'U0SAM', 'U0', 'sam@example.com', '', ' ', 'env:S', 'env:NOPE',
        'webhook', 'postgres', 'telnet', '2h', '0s', 'forever', 'email', 'slack', 'teams:sec', 'teams:ops', 'teams:',
        'teams', 'https://x.example/hook']  # fmt: skip
BASE = {
    'groups': {'devops': ['alex@example.com'], 'leads': ['U0SAM', 'group:devops']},
    'admins': ['group:leads'],
    'resources': {
        'db': {'provider': 'webhook', 'settings': {'url': 'http://x', 'secret': 'env:S'},
               'roles': {'read': None, 'write': {'grant': 'w'}}},
        'app': {'provider': 'postgres', 'settings': {'dsn': 'env:D', 'connect_host': 'h'}, 'roles': ['deploy']},
    },
    'teams': {'sec': {'webhook': 'env:TEAMS_SEC'}, 'ops': {'webhook': 'env:TEAMS_OPS'}},
    'requests': [
        {'name': 'r1', 'resources': ['db'], 'roles': ['read'], 'requesters': ['group:devops'],
         'approvers': ['group:leads'], 'approvals': 1, 'timeout': '2h', 'notify': ['#ops'],
         'ask': ['slack', 'email', 'teams:sec']},
        {'name': 'r2', 'resources': ['app'], 'steps': [{'approvers': ['U0SAM'], 'approvals': 1},
                                                       {'approvers': ['leads']}],
         'trigger': {'pipeline': 'deploy'}, 'revoke_on_idle': '30m', 'ask': 'teams:ops'},
    ],
}  # fmt: skip
junk_scalars = st.one_of(
    st.sampled_from(REFS), st.none(), st.booleans(), st.integers(-3, 5), st.integers(10**30, 10**40),
    st.floats(allow_nan=False), st.text(max_size=6),
)  # fmt: skip
junk = st.recursive(
    junk_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(KEYS + REFS), st.integers(0, 3), st.booleans()), inner, max_size=3),
    ),
    max_leaves=8,
)


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*path, i))


def _at(doc, path):
    for step in path:
        doc = doc[step]
    return doc


@st.composite
def broken_policies(draw):
    """A policy that loads, with 1-4 of its values replaced, removed or renamed, at any level."""
    doc = yaml.safe_load(yaml.safe_dump(BASE))  # a fresh copy
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(['replace', 'remove', 'rename', 'dangle']))
        paths = [p for p in _paths(doc) if p]
        if how == 'dangle':  # a name where a name is written: every reference of BASE is a string
            paths = [p for p in paths if isinstance(_at(doc, p), str)] or paths
        path = draw(st.sampled_from(paths))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if how == 'remove':
            del parent[path[-1]]
        elif how == 'rename' and isinstance(parent, dict):
            parent[draw(st.one_of(st.sampled_from(KEYS + REFS), st.integers(0, 3)))] = parent.pop(path[-1])
        elif how == 'dangle':
            parent[path[-1]] = draw(st.sampled_from(REFS))
        else:
            parent[path[-1]] = draw(junk)
    return doc


@settings(max_examples=400, deadline=None)
@given(broken_policies())
def test_references_to_nothing_and_malformed_levels_name_problems(doc):
    """Resources, roles, groups, approvers, steps and Teams channels that point nowhere, and a wrong shape at any
    level: a Policy, or problems that each name file, line and column. Never another exception (KeyError was one), nor
    the loader's last resort, which turns a check's own exception into a problem (``could not be loaded``): every
    mistake here has a check that says what is wrong."""
    text = yaml.dump(doc, Dumper=_NoAliases, sort_keys=False)
    try:
        build_policy({'p.yaml': text})
    except PolicyConfigError as exc:
        assert exc.problems and all(WHERE.match(p) for p in exc.problems), exc.problems
        assert not [p for p in exc.problems if LAST_RESORT in p], (exc.problems, text)


WHERE = re.compile(r'^p\.yaml:[0-9]+:[0-9]+: ')
#: What bot.core._policy_builder's guard says of an exception a check raised instead of naming the mistake.
LAST_RESORT = 'this could not be loaded ('

FRAGMENTS = ['&a ', '*a', '&b ', '*b', '!!binary ', '!!python/name:os.system ', '!x ', '!!set ', '<<: ', '? ',
             '[', ']', '{', '}', '- ', ': ', ', ', '\n', '  ', '    ', 'a', 'requests', 'resources', 'groups',
             'name', 'approvers', 'roles', 'provider', 'webhook', '9' * 4400, '2020-13-45', '.inf', '~', '---\n',
             '"\\uD800"', '\t', '#', "'", '"', '|\n', '>\n', '%YAML 1.1\n', '\x00', '\ufeff']  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(''.join))
def test_yaml_features_a_policy_never_needs_name_problems(text):
    """Anchors, aliases, tags, merge keys, huge numbers, impossible dates, several documents: problems only."""
    try:
        build_policy({'p.yaml': text})
    except PolicyConfigError as exc:
        assert exc.problems and all(WHERE.match(p) for p in exc.problems), exc.problems
