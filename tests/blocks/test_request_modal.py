"""The request form: the reason field says what the rules say, and every pair the user may request is offered,
within Slack's limits on a select (100 options, or 100 groups of 100), or named as not fitting.

Every form here is opened in the local Slack's view model, which refuses what Slack refuses.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.blocks.request_modal import build_request_modal, read_request_form
from bot.core.policy import Resource, Role, Rule
from bot.sandbox import _payloads
from bot.sandbox._models import View

Rows = list[tuple[Resource, Role, Rule]]
PLAIN = Rule(name='plain')
WITH_REASON = Rule(name='with-reason', require_reason=True)
BREAK_GLASS = Rule(name='break-glass', break_glass=True)


def _rows(resources: dict[str, int], rule: Rule = PLAIN) -> Rows:
    rows: Rows = []
    for name, roles in resources.items():
        res = Resource(name=name, provider='webhook', roles={f'role{i}': Role(f'role{i}') for i in range(roles)})
        rows.extend((res, role, rule) for role in res.roles.values())
    return rows


def _open(rows: Rows) -> View:
    return View.from_api(build_request_modal(rows), view_id='V1', user_id='U0ALEX')


def _block(view: View, block_id: str) -> dict[str, Any]:
    return next(b for b in view.blocks if b.get('block_id') == block_id)


def _offered(view: View) -> list[str]:
    select = _block(view, 'access')['element']
    groups = select.get('option_groups') or [{'options': select.get('options') or []}]
    return [o['value'] for g in groups for o in g['options']]


def _pairs(rows: Rows) -> list[str]:
    return [f'{res.name}:{role.name}' for res, role, _ in rows]


@pytest.mark.parametrize('rule', [WITH_REASON, BREAK_GLASS])
def test_reason_is_required_when_every_choice_needs_one(rule: Rule) -> None:
    reason = _block(_open(_rows({'demo-app': 2}, rule)), 'reason')
    assert reason['optional'] is False and '(required' in reason['label']['text']
    assert 'optional' not in reason['label']['text']


def test_reason_is_optional_only_when_no_choice_needs_one() -> None:
    reason = _block(_open(_rows({'demo-app': 2})), 'reason')
    assert reason['optional'] is True and 'required' not in reason['label']['text']


def test_reason_names_the_choices_that_need_one_when_it_depends() -> None:
    rows = _rows({'demo-app': 1}, WITH_REASON) + _rows({'other': 1})
    reason = _block(_open(rows), 'reason')
    assert reason['optional'] is True, 'a choice without the need must still be submittable'
    assert '(required for some choices' in reason['label']['text']
    assert reason['hint']['text'] == 'Required for demo-app · role0.'


def test_142_pairs_are_all_offered_grouped_by_resource_and_submit_like_options() -> None:
    """The case that left demo-app out: 47 resources of 3 roles, then demo-app (142 pairs)."""
    rows = _rows({f'app-{i:02}': 3 for i in range(47)}) + _rows({'demo-app': 1})
    assert len(rows) == 142
    view = _open(rows)
    select = _block(view, 'access')['element']
    assert 'options' not in select and len(select['option_groups']) == 48
    assert select['option_groups'][-1]['label']['text'] == 'demo-app'
    assert _offered(view) == _pairs(rows)
    assert not [b for b in view.blocks if b['type'] == 'context'], 'nothing is left out, so nothing says so'
    state = _payloads.form_values(view, {'access': 'demo-app:role0', 'reason': 'x'})
    form = read_request_form({'state': {'values': state}})
    assert not isinstance(form, dict) and (form.resource, form.role) == ('demo-app', 'role0')


def test_100_pairs_stay_one_plain_list() -> None:
    rows = _rows({'a': 60, 'b': 40})
    select = _block(_open(rows), 'access')['element']
    assert 'option_groups' not in select and len(select['options']) == 100


@pytest.mark.parametrize(
    'resources',
    [{f'r{i:03}': 1 for i in range(150)}, {'huge': 250, 'small': 3}, {f'r{i:03}': 99 for i in range(101)}],
    ids=['many-resources', 'many-roles', '9999-pairs'],
)
def test_every_pair_fits_up_to_slacks_10000(resources: dict[str, int]) -> None:
    rows = _rows(resources)
    view = _open(rows)
    assert _offered(view) == _pairs(rows)
    assert not [b for b in view.blocks if b['type'] == 'context']


def test_pairs_past_10000_are_named_with_the_command_that_asks_for_them() -> None:
    rows = _rows({f'r{i:03}': 100 for i in range(101)})
    view = _open(rows)
    offered = _offered(view)
    assert len(offered) == 10_000 and offered == _pairs(rows)[:10_000]
    [note] = [b['elements'][0]['text'] for b in view.blocks if b['type'] == 'context']
    assert '100 more choices do not fit' in note and '/jit request RESOURCE' in note
