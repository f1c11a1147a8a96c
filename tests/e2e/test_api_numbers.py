"""Numbers a pipeline sends: however large, a 400 that names the problem, nothing filed (never Python's
4,300-digit limit answered as "not JSON", nor a refusal quoting thousands of digits)."""

from __future__ import annotations

import pytest

from tests.e2e.test_pipeline_api import DEPLOY_TOKEN, Api
from tests.e2e.test_pipeline_api import _jit as _jit  # the fixture: jit with the pipelines' tokens

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


@pytest.mark.parametrize(
    ('duration', 'status', 'says'),
    [
        (b'9' * 5000, 400, 'too large'),
        (b'-' + b'9' * 5000, 400, 'too large'),
        (b'9' * 4000, 400, 'too large'),
        (b'99999999999999', 400, 'must be seconds'),  # over the document's maximum
        (b'1e999999', 400, 'must be seconds'),
        (b'"' + b'9' * 30 + b'h"', 422, 'too long'),  # of the document's shape, and still not a duration jit takes
    ],
    ids=['5000-digits', 'minus-5000-digits', '4000-digits', '14-digits', '1e999999', 'text-30-digits'],
)
def test_numbers_too_large_for_a_duration_are_refused_saying_so(jit, store, duration, status, says):
    body = b'{"resource": "demo-app", "role": "deploy", "duration": ' + duration + b'}'
    got, answer, _ = Api(jit.url, DEPLOY_TOKEN).call('POST', '/api/v1/requests', raw=body)
    assert got == status and says in answer['error'], (got, answer)
    assert len(answer['error']) < 300 and 'duration' in answer['error']
    assert store.for_user('pipeline:deploy-main') == []
