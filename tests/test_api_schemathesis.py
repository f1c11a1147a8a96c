"""Schemathesis against ``jit serve``'s web app: every operation of the OpenAPI document is called with bodies,
paths, headers and methods it generates from the document (valid and not), and every answer must pass its
checks: a documented status, an answer of the documented schema and headers, no 5xx, a refusal of what the
document refuses, ``Allow`` on a 405, and the rest of its registry.

All but one: ``positive_data_acceptance`` (ST202) expects every body the schema allows to be accepted, and
some are refused by rules a JSON Schema does not state: a duration in words that is not one ("0s", "5 parsecs"),
a public key of the right form that is a low-order X25519 point ("AAA...A", the first one generated), blank
text. Each such refusal is a 400 naming the field, which the other checks and tests/test_api_bodies.py hold to.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, is_check_class, load_all_checks

from bot.api.server import openapi_document
from tests.test_access_log import TOKEN
from tests.test_api_bodies import _jit  # noqa: F401 (the fixture: jit serve's web app with a pipeline token)

pytestmark = [pytest.mark.redis]
schema = schemathesis.openapi.from_dict(openapi_document())
load_all_checks()  # the registry holds only not_a_server_error until the rest are loaded
BEYOND_THE_SCHEMA = {'positive_data_acceptance'}
CHECKED = [check for check in CHECKS.get_all() if not is_check_class(check) and check.__name__ not in BEYOND_THE_SCHEMA]


def test_the_checks_are_schemathesis_own_registry():
    names = {check.__name__ for check in CHECKED}
    assert {'not_a_server_error', 'status_code_conformance', 'response_schema_conformance', 'unsupported_method',
            'negative_data_rejection', 'ignored_auth'} <= names, names  # fmt: skip


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_passes_the_checks_of_schemathesis(case, jit):
    _, served = jit
    case.call_and_validate(base_url=f'http://127.0.0.1:{served.port}/api/v1',
                           headers={'Authorization': f'Bearer {TOKEN}'}, checks=CHECKED)  # fmt: skip
