"""The OpenAPI document is valid OpenAPI 3.1, and answers the API gives conform to it.

``conforms`` is used by the end-to-end API tests on every answer they get.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from bot.api.server import openapi_document

DOC = openapi_document()


def conforms(path: str, method: str, status: int, body: Any) -> None:
    """Fail unless ``status`` is documented for the operation and ``body`` matches its schema."""
    operation = DOC['paths'][path][method.lower()]
    assert str(status) in operation['responses'], f'{method} {path} answered {status}, which is not documented'
    response = operation['responses'][str(status)]
    if '$ref' in response:
        response = DOC['components']['responses'][response['$ref'].rsplit('/', 1)[-1]]
    schema = response['content']['application/json']['schema']
    # The document's components as a JSON Schema 2020-12 resource, so $refs resolve.
    resolver_doc = {**schema, 'components': DOC['components']}
    jsonschema.Draft202012Validator(resolver_doc, format_checker=jsonschema.FormatChecker()).validate(body)


def test_the_document_is_valid_openapi_3_1():
    validate(DOC)
    assert DOC['openapi'] == '3.1.0'


def test_a_non_conforming_answer_is_caught():
    with pytest.raises(jsonschema.ValidationError):
        conforms('/requests/{id}', 'GET', 200, {'id': 'r-abcdefgh', 'status': 'granted'})
    with pytest.raises(AssertionError, match='not documented'):
        conforms('/requests', 'POST', 418, {'error': 'teapot'})
    conforms('/requests', 'POST', 400, {'error': 'invalid request', 'errors': {'resource': 'required'}})
