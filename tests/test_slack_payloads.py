"""The shapes of what Slack sends (bot/slack_payloads.py): a body whose fields have types Slack never sends is a
400 at the edge, before a listener reads it (a listener that met such a field raised a TypeError: a 500-class bug).
"""

from __future__ import annotations

import json
import urllib.parse

import pytest

from bot.slack_payloads import Refusal, check_socket_payload, slack_body

VIEW = {'id': 'V1', 'type': 'modal', 'callback_id': 'jit.deny_modal', 'private_metadata': 'r-1',
        'blocks': [{'type': 'input', 'block_id': 'deny_reason'}], 'state': {'values': {}}}  # fmt: skip
SUBMISSION = {'type': 'view_submission', 'user': {'id': 'U0SAM', 'team_id': 'T0JIT'}, 'view': VIEW,
              'trigger_id': '1.2.abc'}  # fmt: skip


def form(payload: dict) -> bytes:
    return urllib.parse.urlencode({'payload': json.dumps(payload)}).encode()


def test_a_well_formed_view_submission_passes():
    slack_body(form(SUBMISSION), 'application/x-www-form-urlencoded')
    check_socket_payload('interactive', SUBMISSION)


@pytest.mark.parametrize('block', [{'type': 'input', 'block_id': ['a']}, {'type': 'input', 'block_id': {'a': 1}},
                                   {'type': ['input'], 'block_id': 'x'}, {'type': 'input', 'block_id': 7}])  # fmt: skip
def test_a_block_whose_id_or_type_is_not_text_is_refused(block):
    bad = {**SUBMISSION, 'view': {**VIEW, 'blocks': [block]}}
    with pytest.raises(Refusal) as refused:
        slack_body(form(bad), 'application/x-www-form-urlencoded')
    assert refused.value.status == 400
    with pytest.raises(Refusal):
        check_socket_payload('interactive', bad)


def test_a_message_block_whose_id_is_not_text_is_refused():
    message = {'ts': '1.2', 'blocks': [{'block_id': ['x']}]}
    bad = {'type': 'block_actions', 'user': {'id': 'U0SAM'}, 'trigger_id': '1.2.abc',
           'actions': [{'action_id': 'jit.approve'}], 'message': message}  # fmt: skip
    with pytest.raises(Refusal):
        slack_body(form(bad), 'application/x-www-form-urlencoded')
