"""Reading a pipeline's request body: its size, type and JSON, the ``Idempotency-Key`` header, and a
``NewRequest`` checked against the OpenAPI document shipped beside this module (the one statement of what a
body may be: 400 when a body breaks it), then for what a schema cannot say (422). Every problem is an
:class:`~bot.api.errors.ApiError` (4xx).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any, cast

import jsonschema
import yaml
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bot.api.errors import ApiError
from bot.content_coding import encoded
from bot.core.characters import control_in
from bot.core.durations import DurationError, parse_duration
from bot.sealed_box import SealedBoxError, public_key

#: A request body is a few hundred bytes; anything much larger is not a request.
MAX_BODY = 16 * 1024
_CONTEXT_KEY = re.compile(r'[A-Za-z0-9_.-]{1,64}')
_IDEMPOTENCY_KEY = re.compile(r'[A-Za-z0-9_.:-]{1,128}')
_PUBLIC_KEY = re.compile(r'[A-Za-z0-9_-]{43}=?')


async def json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, f'body too large (at most {MAX_BODY} bytes)')
    if request.content_type != 'application/json':
        raise ApiError(415, 'send the body as Content-Type: application/json')
    if encoded(request):  # never read: a body that is not what it claims could keep read() waiting
        raise ApiError(400, 'the body cannot be read in the Content-Encoding it claims: send it without one')
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f'body too large (at most {MAX_BODY} bytes)') from None
    except (web.RequestPayloadError, HttpProcessingError):  # not in the Content-Encoding it claims (gzip)
        raise ApiError(400, 'the body cannot be read in the Content-Encoding it claims') from None
    if len(raw) > MAX_BODY:
        raise ApiError(413, f'body too large (at most {MAX_BODY} bytes)')
    try:
        body = json.loads(raw.decode('utf-8'), parse_int=_json_int)
    except _NumberTooLarge:
        raise ApiError(400, f'a number in the body has more than {_MAX_DIGITS} digits, too large for anything '
                            'here (a duration is seconds or text like "30m")') from None  # fmt: skip
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: arrays nested ~1,000 deep
        raise ApiError(400, 'the body is not JSON') from None
    if not isinstance(body, dict):
        raise ApiError(400, 'the body must be a JSON object')
    return body


#: The only number in a body is a duration in seconds (9 digits at most); Python refuses 4,300 on its own.
_MAX_DIGITS = 40


class _NumberTooLarge(ValueError):
    pass


def _json_int(text: str) -> int:
    """An integer of the body, refused before ``int()`` when it has more digits than any field takes."""
    if len(text.lstrip('-')) > _MAX_DIGITS:
        raise _NumberTooLarge
    return int(text)


def idempotency_key(request: web.Request) -> str | None:
    values = request.headers.getall('Idempotency-Key', [])
    if not values:
        return None
    if len(values) > 1 or not _IDEMPOTENCY_KEY.fullmatch(values[0]):
        problem = 'must be one header of 1-128 of A-Z a-z 0-9 - _ . : (a UUID will do)'
        raise ApiError(400, f'Idempotency-Key {problem}', errors={'Idempotency-Key': problem})
    return values[0]


def _utf8(text: str) -> bool:
    """False for a string JSON can carry but UTF-8 cannot (a lone surrogate such as ``\\ud800``)."""
    try:
        text.encode('utf-8')
    except UnicodeEncodeError:
        return False
    return True


#: What each field of ``NewRequest`` must be, said when the body breaks its schema (or, for text, is blank).
_SAYS = {
    'resource': 'must be a non-empty string of at most 100 characters',
    'role': 'must be a non-empty string of at most 100 characters',
    'duration': 'must be seconds (a whole number from 1 to 315360000, ten years) or a duration like "30m" or '
                '"2 hours" (at most 40 characters)',
    'reason': 'must be a non-empty string of at most 1000 characters',
    'ticket': 'must be a non-empty string of at most 100 characters',
    'context': 'must be an object of at most 20 names (1-64 of A-Z a-z 0-9 _ . -) to strings of at most 200 '
               'characters',
    'public_key': 'must be an X25519 public key: 43 base64url characters',
}  # fmt: skip


@functools.cache
def new_request_schema() -> jsonschema.Draft202012Validator:
    """``NewRequest`` of the OpenAPI document, the one statement of what a body may be.

    OpenAPI 3.1's schemas are JSON Schema 2020-12; the document's components go along so that a ``$ref`` in
    it resolves. Read when the app is made (:func:`create_api_app`), so a document that is not a valid schema
    stops ``jit serve`` from starting.
    """
    schema = {'$ref': '#/components/schemas/NewRequest', 'components': openapi_document()['components']}
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _schema_errors(body: dict[str, Any]) -> dict[str, str]:
    """Each field of ``body`` that breaks ``NewRequest``, with what it must be."""
    validator = new_request_schema()
    schema = cast(Mapping[str, Any], validator.schema)  # a document (new_request_schema), not True or False
    properties = schema['components']['schemas']['NewRequest']['properties']
    errors: dict[str, str] = {}
    for error in validator.iter_errors(body):
        if error.absolute_path:
            field = str(error.absolute_path[0])
            errors.setdefault(field, _SAYS.get(field, 'not valid'))
        elif error.validator == 'required':
            errors.update({field: 'required' for field in error.validator_value if field not in body})
        elif error.validator == 'additionalProperties':
            errors.update({field: 'unknown field' for field in body if field not in properties})
        else:  # not an object (the body is checked to be one before)
            errors.setdefault('body', error.message)
    return dict(sorted(errors.items()))


def parse_new_request(body: dict[str, Any]) -> dict[str, Any]:
    """The arguments of :meth:`SubmitRequest.execute` from a ``NewRequest`` body.

    Two kinds of refusal, told apart by their status so that a client (and Schemathesis) can tell a body that
    breaks the document from one the document allows but jit cannot use:

    - **400**: the body breaks ``NewRequest`` of the OpenAPI document (types, lengths, names, patterns, fields
      that are required or unknown). The document is read with JSON Schema's own (ECMA-262) patterns, where ``$``
      ends the text; Python's ``re`` also lets it match before a final newline, so names and keys are matched
      whole here as well. A lone surrogate (``"\\ud800"``) is not text (I-JSON, RFC 7493), so not a string.
    - **422**: the body follows the document, and a value is still unusable: a duration in its shape that is not
      one (``"0s"``, ``"5 parsecs"``, longer than ten years), a public key that cannot be sealed to (a low-order
      point), text holding a control character (NUL, ESC, ...; a reason may hold tabs and line breaks).

    A field that is null or "" is the same as one left out (as the document says).

    Raises:
        ApiError: 400 or 422, naming every field that is wrong (a body with both kinds is a 400 naming all).
    """
    errors = _schema_errors(body)
    given = {k: v for k, v in body.items() if k not in errors and v is not None and v != ''}
    unusable: dict[str, str] = {}
    for field in ('resource', 'role', 'reason', 'ticket'):
        text = given.get(field)
        if isinstance(text, str) and (not text.strip() or not _utf8(text)):
            errors[field] = _SAYS[field]
        elif isinstance(text, str) and (control := control_in(text, allowed='\t\n\r' if field == 'reason' else '')):
            unusable[field] = f'holds a control character ({control}): write it as plain text'
    context: dict[str, str] = given.get('context', {})
    if not all(_CONTEXT_KEY.fullmatch(k) and _utf8(v) for k, v in context.items()):
        errors['context'] = _SAYS['context']
    duration = None
    if 'duration' in given:
        try:
            duration = parse_duration(given['duration'])
        except DurationError as exc:
            unusable['duration'] = str(exc)
    key = given.get('public_key')
    if key is not None and not _PUBLIC_KEY.fullmatch(key):
        errors['public_key'] = _SAYS['public_key']
    elif key is not None:
        try:
            public_key(key)
        except SealedBoxError as exc:
            unusable['public_key'] = str(exc)
    if errors or unusable:
        every = dict(sorted({**unusable, **errors}.items()))
        status, what = (400, 'invalid request') if errors else (422, 'unusable request')
        raise ApiError(status, f'{what}: ' + '; '.join(f'{k}: {v}' for k, v in every.items()), errors=every)
    text_of = {field: given[field].strip() for field in ('resource', 'role', 'reason', 'ticket') if field in given}
    return {'resource': text_of['resource'], 'role': text_of.get('role'), 'duration': duration,
            'reason': text_of.get('reason', ''), 'ticket': text_of.get('ticket'), 'context': context,
            'recipient_key': key}  # fmt: skip


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document shipped beside this module."""
    text = resources.files('bot.api').joinpath('openapi.yaml').read_text(encoding='utf-8')
    return dict(yaml.safe_load(text))
