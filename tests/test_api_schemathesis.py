"""Schemathesis against ``jit serve``'s web app: every operation of the OpenAPI document is called with bodies,
paths, headers and methods it generates from the document (valid and not), and every answer must pass every
check of its registry: a documented status, an answer of the documented schema and headers, no 5xx, ``Allow``
on a 405, what the document refuses refused, and what it allows not refused as malformed.

Two checks are told which statuses say what, as the document does: a body that breaks it is a 400 (and never
reaches the policy: not a 403, nor the 422 below), and one that follows it may still be refused, by the policy
(403, an unknown resource), or as a value jit cannot use (422: ``"0s"``, a low-order public key), but never
with a 400. So a hand-written rule of the API that refuses more than the document says shows up as a 400 for
valid data, and one that lets through what it refuses, as a 2xx or 422 for invalid data.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, is_check_class, load_all_checks
from schemathesis.config import SchemathesisConfig

from bot.api.server import openapi_document
from tests.test_access_log import TOKEN
from tests.test_api_bodies import _jit  # noqa: F401 (the fixture: jit serve's web app with a pipeline token)

pytestmark = [pytest.mark.redis]
#: Schemathesis' defaults with 422 (valid and unusable) added to the answers to valid data, and 403, 409, 422,
#: 429 and 5xx taken out of the answers to invalid data.
STATUSES = {
    'positive_data_acceptance': ['2xx', '3xx', '401', '403', '404', '409', '422', '429', '5xx'],
    'negative_data_rejection': ['400', '401', '404', '405', '406', '413', '415'],
}
CONFIG = SchemathesisConfig.from_dict({'checks': {name: {'expected-statuses': statuses}
                                                  for name, statuses in STATUSES.items()}})  # fmt: skip
schema = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG)
load_all_checks()  # the registry holds only not_a_server_error until the rest are loaded
CHECKED = [check for check in CHECKS.get_all() if not is_check_class(check)]


def test_the_checks_are_schemathesis_own_registry():
    names = {check.__name__ for check in CHECKED}
    assert {'not_a_server_error', 'status_code_conformance', 'response_schema_conformance', 'unsupported_method',
            'negative_data_rejection', 'positive_data_acceptance', 'ignored_auth'} <= names, names  # fmt: skip
    checks = schema.config.checks_config_for()
    for name, statuses in STATUSES.items():
        assert getattr(checks, name).expected_statuses == statuses


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_passes_the_checks_of_schemathesis(case, jit):
    _, served = jit
    case.call_and_validate(base_url=f'http://127.0.0.1:{served.port}/api/v1',
                           headers={'Authorization': f'Bearer {TOKEN}'}, checks=CHECKED)  # fmt: skip
