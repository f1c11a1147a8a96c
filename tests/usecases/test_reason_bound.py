"""One bound on a reason, whichever way a request comes in: the pipeline API's document, its body parser, and the
use cases every surface calls (``/jit request``, the request form, the API, ``/jit extend``)."""

from __future__ import annotations

import pytest

from bot.api.errors import ApiError
from bot.api.server import openapi_document, parse_new_request
from bot.core.errors import PolicyDenied, UsageError
from bot.core.model import MAX_REASON, Principal
from bot.core.policy_loader import build_policy
from bot.deps import SystemClock
from bot.usecases.extend_grant import ExtendGrant
from bot.usecases.submit_request import SubmitRequest
from tests.core.policy_fixtures import ALEX, POLICY_YAML
from tests.support.fakes import IgnoringQueue
from tests.support.memory_store import MemoryStore

PIPELINE = Principal(slack_id=None, email=None, pipeline='deploy-main')


def _wired():
    clock = SystemClock()
    store = MemoryStore(clock=clock)
    kw = {'store': store, 'queue': IgnoringQueue(), 'policy': lambda: build_policy({'p.yaml': POLICY_YAML}),
          'clock': clock}  # fmt: skip
    return store, SubmitRequest(**kw), ExtendGrant(**kw, new_id=lambda: 'r-ext00001')


def test_the_api_document_and_parser_take_the_same_bound():
    schema = openapi_document()['components']['schemas']['NewRequest']['properties']['reason']
    assert schema['maxLength'] == MAX_REASON
    assert parse_new_request({'resource': 'deploy-hook', 'reason': 'x' * MAX_REASON})['reason'] == 'x' * MAX_REASON
    with pytest.raises(ApiError) as refused:
        parse_new_request({'resource': 'deploy-hook', 'reason': 'x' * (MAX_REASON + 1)})
    assert refused.value.status == 400 and 'reason' in refused.value.extra['errors'], refused.value.extra


@pytest.mark.parametrize('trigger,who', [('slack', ALEX), ('pipeline', PIPELINE)])
def test_filing_refuses_a_longer_reason_and_stores_nothing(trigger, who):
    store, submit, _ = _wired()
    with pytest.raises(UsageError, match=f'at most {MAX_REASON:,}'):
        submit.execute(requester=who, resource='prod-db', role='read', duration=600, reason='x' * 3600,
                       ticket='INC-1', trigger=trigger)  # fmt: skip
    assert store.for_user(ALEX) == []


def test_extending_refuses_a_longer_reason_before_anything_else():
    _, _, extend = _wired()
    with pytest.raises(UsageError, match=f'at most {MAX_REASON:,}'):
        extend.execute('r-nothere1', ALEX, 600, 'x' * (MAX_REASON + 1))


@pytest.mark.parametrize('control', ['\x1b[2K', '\x07', '\x1b]8;;https://evil.example\x1b\\', '\x9b', '\x00'])
@pytest.mark.parametrize('trigger,who', [('slack', ALEX), ('pipeline', PIPELINE)])
def test_filing_refuses_a_reason_with_a_control_character_and_stores_nothing(trigger, who, control):
    """A reason reaches ``jit audit`` on a terminal: ``ESC [2K`` would erase the line it is printed on."""
    store, submit, extend = _wired()
    with pytest.raises(UsageError, match='control character'):
        submit.execute(requester=who, resource='prod-db', role='read', duration=600,
                       reason=f'INC-1 all fine{control}', ticket='INC-1', trigger=trigger)  # fmt: skip
    assert store.for_user(ALEX) == []
    with pytest.raises(UsageError, match='control character'):
        extend.execute('r-nothere1', ALEX, 600, f'more{control}')


def test_a_reason_may_hold_tabs_and_line_breaks():
    _, submit, _ = _wired()
    filed = submit.execute(requester=ALEX, resource='prod-db', role='read', duration=600,
                           reason='INC-1:\n\tthe replica lags\r\n', ticket='INC-1')  # fmt: skip
    assert filed.reason == 'INC-1:\n\tthe replica lags\r\n'


@pytest.mark.parametrize('field', ['reason', 'ticket', 'role'])
def test_the_api_refuses_control_characters_with_a_422_naming_the_field(field):
    with pytest.raises(ApiError) as refused:
        parse_new_request({'resource': 'prod-db', field: 'x\x1b[2Ky'})
    assert refused.value.status == 422 and set(refused.value.extra['errors']) == {field}, refused.value.extra


@pytest.mark.parametrize('blank', ['\u200b', '\u3164', '\u2800', ' \u200b\ufeff ', '\u115f'])
def test_a_reason_that_shows_nothing_is_no_reason_where_one_is_required(blank):
    """``require_reason`` and break-glass: an approver, and the audit trail, would see an empty reason."""
    store, submit, _ = _wired()
    for who, role in ((ALEX, 'read'), (Principal(slack_id='U0SEC'), 'write')):  # prod-read, prod-break-glass
        with pytest.raises(PolicyDenied, match='requires a reason'):
            submit.execute(requester=who, resource='prod-db', role=role, duration=600, reason=blank,
                           ticket='INC-1')  # fmt: skip
    assert store.for_user(ALEX) == [] and store.for_user('U0SEC') == []
