"""Numbers a pipeline sends: however large, a 400 that names the problem, nothing filed (never Python's
4,300-digit limit answered as "not JSON", nor a refusal quoting thousands of digits)."""

from __future__ import annotations

import pytest

from tests.e2e.test_pipeline_api import DEPLOY_TOKEN, Api
from tests.e2e.test_pipeline_api import _jit as _jit  # the fixture: jit with the pipelines' tokens

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


@pytest.mark.parametrize(
    ('duration', 'says'),
    [
        (b'9' * 5000, 'too large'),
        (b'-' + b'9' * 5000, 'too large'),
        (b'9' * 4000, 'too large'),
        (b'99999999999999', 'too long'),
        (b'1e999999', 'must be seconds'),
        (b'"' + b'9' * 30 + b'h"', 'too long'),
    ],
    ids=['5000-digits', 'minus-5000-digits', '4000-digits', '14-digits', '1e999999', 'text-30-digits'],
)
def test_numbers_too_large_for_a_duration_are_a_400_that_says_so(jit, store, duration, says):
    body = b'{"resource": "demo-app", "role": "deploy", "duration": ' + duration + b'}'
    status, answer, _ = Api(jit.url, DEPLOY_TOKEN).call('POST', '/api/v1/requests', raw=body)
    assert status == 400 and says in answer['error'], (status, answer)
    assert len(answer['error']) < 300 and 'duration' in answer['error']
    assert store.for_user('pipeline:deploy-main') == []
