"""Whatever a policy file holds, loading it either works or names problems: never a traceback."""

from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.errors import PolicyConfigError
from bot.core.policy_loader import build_policy

KEYS = ['groups', 'admins', 'resources', 'requests', 'provider', 'roles', 'settings', 'name', 'approvers',
        'approvals', 'steps', 'timeout', 'trigger', 'requesters', 'auto_approve', 'break_glass', 'ticket_pattern',
        'revoke_on_idle', 'default_duration', 'notify', 'pipeline', 'devops', 'db', 'read', 'group:devops']  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=False),
    st.sampled_from(KEYS),
    st.text(max_size=12),
    st.sampled_from(['2h', '0s', '[', 'env:X', 'webhook']),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
                      max_leaves=25)  # fmt: skip
documents = st.dictionaries(st.sampled_from(['groups', 'admins', 'resources', 'requests', 'extra']), values, max_size=4)


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
