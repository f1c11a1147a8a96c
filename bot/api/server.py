"""The pipeline API under ``/api/v1``: file a request, look at it, give the access back.

=======================================  ==========================================================
``POST /api/v1/requests``                file (201); the policy decides as for Slack, with
                                         ``trigger: pipeline`` and the context the pipeline sends; with
                                         ``Idempotency-Key``, a retry is answered with what it filed (200)
``GET /api/v1/requests/{id}``            where it stands; while active, the sealed access details
                                         (on every read, until the grant is released or ends)
``POST /api/v1/requests/{id}/release``   cancel a pending request or end an active grant now
``GET /api/v1/openapi.json``             the OpenAPI document (no token needed)
=======================================  ==========================================================

Every call but the last carries ``Authorization: Bearer TOKEN``; the token names the pipeline
(:mod:`bot.api.tokens`), which is the requester in the policy (``pipeline:NAME``) and the audit trail.
A pipeline sees only its own requests: another's ID is 404, the same as one that does not exist.

``Idempotency-Key`` (1-128 of ``A-Z a-z 0-9 - _ . :``) makes filing safe to retry after a lost answer: the
first POST with a key takes it in Redis (SET NX, per pipeline, for IDEMPOTENCY_WINDOW), so of any number of
retries, concurrent or not, one files; the others get that request (200, ``Idempotent-Replayed: true``),
or 409 with ``Retry-After`` while it is still being filed. The same key with another body is 422. A body
that is refused (400, 403, 429, ...) files nothing and leaves the key free.

Answers are JSON. Problems are ``{"error": "..."}`` with the status that says whose they are: 400 a bad
body (``errors`` names each field), 401 no or a wrong token, 403 the policy refuses (``allowed`` lists
what it would allow), 404, 409 not now (``Retry-After`` when waiting helps), 413, 415, 422 an
``Idempotency-Key`` used before with another body, 429 over a limit
(``Retry-After``), 503 Redis does not answer. Nothing a client sends is answered with a 5xx; every
refusal is one ``api.rejected`` log line that never holds the token or the body. The mapping of errors to
answers is :mod:`bot.api.errors`; a bug is a 500 with an error ID that its log line holds too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any, cast

import jsonschema
import redis
import structlog
import yaml
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bot.api.errors import ApiError, answer_for, unexpected
from bot.api.tokens import pipeline_for
from bot.core.durations import DurationError, parse_duration
from bot.core.errors import InvalidTransition, NotPermitted, RequestError, RequestNotFound, new_error_id
from bot.core.model import FINAL_STATUSES, LIVE_STATUSES, AccessRequest, Principal, RequestStatus
from bot.deps import Deps
from bot.sealed_box import SealedBoxError, public_key

log = structlog.get_logger(__name__)
S = RequestStatus

#: A request body is a few hundred bytes; anything much larger is not a request.
MAX_BODY = 16 * 1024
_BEARER = re.compile(r'Bearer ([A-Za-z0-9._~+/-]{1,200}=*)')
_REQUEST_ID = re.compile(r'r-[a-z0-9]{8}')
_CONTEXT_KEY = re.compile(r'[A-Za-z0-9_.-]{1,64}')
_IDEMPOTENCY_KEY = re.compile(r'[A-Za-z0-9_.:-]{1,128}')
#: How long a retry with the same Idempotency-Key gets the request it filed, and how long a key is held
#: while its request is being filed (a filing takes milliseconds; a crashed one frees the key after this).
IDEMPOTENCY_WINDOW, IDEMPOTENCY_FILING = 24 * 3600.0, 60.0
PRINCIPAL = web.RequestKey('jit.principal', Principal)  # a str key warns (NotAppKeyWarning)
TOKENS: web.AppKey[Mapping[str, str]] = web.AppKey('tokens', dict)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _time(seconds: float | None) -> str | None:
    """RFC 3339 UTC, to the second, as the webhook contract writes times."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def request_view(request: AccessRequest, *, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The request as the API shows it (``Request`` in the OpenAPI document)."""
    return {
        'id': request.id, 'status': str(request.status), 'resource': request.resource, 'role': request.role,
        'duration': request.duration, 'reason': request.reason, 'ticket': request.ticket, 'rule': request.rule,
        'requester': request.requester.label, 'decision': request.decision,
        'approvals': [{'by': a.by.email or a.by.label, 'at': _time(a.at)} for a in request.approvals],
        'decided_by': (request.decided_by.email or request.decided_by.label) if request.decided_by else None,
        'deny_reason': request.deny_reason, 'error': request.error,
        'created_at': _time(request.created_at), 'granted_at': _time(request.granted_at),
        'expires_at': _time(request.expires_at), 'ended_at': _time(request.ended_at),
        'final': request.status in FINAL_STATUSES, 'details': details,
    }  # fmt: skip


@web.middleware
async def api_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate, then turn every refusal into its JSON answer and one log line."""
    try:
        if request.path != '/api/v1/openapi.json':
            request[PRINCIPAL] = _authenticate(request)
        return await handler(request)
    except ApiError as exc:
        answer = exc
    except RequestError as exc:  # a use case's refusal
        answer = answer_for(exc)
    except web.HTTPException as exc:  # aiohttp's own: no such route (404), wrong method (405)
        if exc.status < 400:
            raise
        # A 405's Allow header names the methods the route takes (RFC 9110 requires it); keep it.
        kept = {name: exc.headers[name] for name in ('Allow',) if name in exc.headers}
        answer = ApiError(exc.status, exc.reason.lower(), headers=kept)
    except redis.RedisError as exc:
        log.error('api.unavailable', error=type(exc).__name__)
        answer = ApiError(503, 'jit cannot reach its store right now; try again', headers={'Retry-After': '5'})
    except Exception as exc:  # a bug: logged with an ID that the answer gives too
        error_id = new_error_id()
        log.error('api.unexpected_error', error_id=error_id, error_type=type(exc).__name__, exc_info=exc)
        answer = unexpected(error_id)
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else None
    log.info('api.rejected', status=answer.status, why=answer.error, method=request.method, route=route)
    return web.json_response({'error': answer.error, **answer.extra}, status=answer.status, headers=answer.headers)


def _authenticate(request: web.Request) -> Principal:
    challenge = {'WWW-Authenticate': 'Bearer realm="jit"'}
    values = request.headers.getall('Authorization', [])
    if not values:
        raise ApiError(401, 'missing Authorization: Bearer TOKEN', headers=challenge)
    match = _BEARER.fullmatch(values[0]) if len(values) == 1 else None
    if match is None:
        raise ApiError(401, 'malformed Authorization header: expected one "Bearer TOKEN"', headers=challenge)
    name = pipeline_for(match.group(1), request.app[TOKENS])
    if name is None:
        raise ApiError(401, 'unknown token', headers={'WWW-Authenticate': 'Bearer realm="jit", error="invalid_token"'})
    return Principal(pipeline=name)


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, f'body too large (at most {MAX_BODY} bytes)')
    if request.content_type != 'application/json':
        raise ApiError(415, 'send the body as Content-Type: application/json')
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


def _idempotency_key(request: web.Request) -> str | None:
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
    'duration': 'must be seconds (an integer of at least 1) or a duration like "30m" or "2 hours" (at most 40 '
                'characters)',
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

    The body is checked against ``NewRequest`` of the OpenAPI document (types, lengths, names, fields that
    are required or unknown); then what a schema cannot say: text that is blank or holds NUL or a lone
    surrogate, a duration in words, a public key that cannot be sealed to. A field that is null or ""
    is the same as one left out (as the document says).

    Raises:
        ApiError: 400 naming every field that is wrong.
    """
    errors = _schema_errors(body)
    given = {k: v for k, v in body.items() if k not in errors and v is not None and v != ''}
    for field in ('resource', 'role', 'reason', 'ticket'):
        text = given.get(field)
        if isinstance(text, str) and (not text.strip() or '\x00' in text or not _utf8(text)):
            errors[field] = _SAYS[field]
    context: dict[str, str] = given.get('context', {})
    # JSON Schema's pattern is a search: ``$`` also matches before a final newline, so names are matched whole.
    if not all(_CONTEXT_KEY.fullmatch(k) and _utf8(v) for k, v in context.items()):
        errors['context'] = _SAYS['context']
    duration = None
    if 'duration' in given:
        try:
            duration = parse_duration(given['duration'])
        except DurationError as exc:
            errors['duration'] = str(exc)
    key = given.get('public_key')
    if key is not None:
        try:
            public_key(key)
        except SealedBoxError as exc:
            errors['public_key'] = str(exc)
    if errors:
        raise ApiError(400, 'invalid request: ' + '; '.join(f'{k}: {v}' for k, v in errors.items()), errors=errors)
    text_of = {field: given[field].strip() for field in ('resource', 'role', 'reason', 'ticket') if field in given}
    return {'resource': text_of['resource'], 'role': text_of.get('role'), 'duration': duration,
            'reason': text_of.get('reason', ''), 'ticket': text_of.get('ticket'), 'context': context,
            'recipient_key': key}  # fmt: skip


class Api:
    """The handlers, over the wired use cases (each call runs in a thread: the store is synchronous)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def file(self, request: web.Request) -> web.StreamResponse:
        who: Principal = request[PRINCIPAL]
        key = _idempotency_key(request)
        body = await _json_body(request)
        args = parse_new_request(body)
        if key is None:
            filed = await asyncio.to_thread(self.deps.submit.execute, requester=who, trigger='pipeline', **args)
        else:
            replayed = await self._file_once(who, key, body, args)
            if isinstance(replayed, web.StreamResponse):
                return replayed
            filed = replayed
        log.info('api.filed', request_id=filed.id, pipeline=who.pipeline, status=str(filed.status))
        return web.json_response(request_view(filed), status=201,
                                 headers={'Location': f'/api/v1/requests/{filed.id}'})  # fmt: skip

    async def _file_once(self, who: Principal, key: str, body: dict[str, Any],
                         args: dict[str, Any]) -> AccessRequest | web.StreamResponse:  # fmt: skip
        """File under ``Idempotency-Key``: the new request, or the answer to a retry of one filed before."""
        store, pipeline = self.deps.store, str(who.pipeline)
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(',', ':')).encode()).hexdigest()
        held = await asyncio.to_thread(store.claim_idempotency, pipeline, key, fingerprint, ttl=IDEMPOTENCY_FILING)
        if held is not None:
            if held.get('body') != fingerprint:
                raise ApiError(422, 'this Idempotency-Key was used with a different body; use a new key for a new '
                                    'request')  # fmt: skip
            found = await asyncio.to_thread(store.get, held['id']) if held.get('id') else None
            if found is None:
                raise ApiError(409, 'a request with this Idempotency-Key is being filed right now; ask again',
                               headers={'Retry-After': '1'})  # fmt: skip
            log.info('api.replayed', request_id=found.id, pipeline=pipeline)
            return web.json_response(request_view(found), status=200, headers={
                'Location': f'/api/v1/requests/{found.id}', 'Idempotent-Replayed': 'true'})  # fmt: skip
        try:
            filed = await asyncio.to_thread(self.deps.submit.execute, requester=who, trigger='pipeline', **args)
        except Exception:  # a refusal or an error: nothing was filed (a cancelled call may yet file: key kept)
            with contextlib.suppress(redis.RedisError):  # a retry with the key may file (else: after the claim)
                await asyncio.to_thread(store.forget_idempotency, pipeline, key)
            raise
        try:
            await asyncio.to_thread(store.settle_idempotency, pipeline, key, fingerprint, filed.id,
                                    ttl=IDEMPOTENCY_WINDOW)  # fmt: skip
        except redis.RedisError as exc:  # filed all the same: say so; retries get 409 until the claim lapses
            log.warning('api.idempotency_unsaved', request_id=filed.id, error=type(exc).__name__)
        return filed

    async def _own(self, request: web.Request) -> AccessRequest:
        """The request named in the path, if it is the caller's; 404 otherwise (whether or not it exists)."""
        request_id = request.match_info['id']
        found = None
        if _REQUEST_ID.fullmatch(request_id):
            found = await asyncio.to_thread(self.deps.store.get, request_id)
        if found is None or not found.requester.same_as(request[PRINCIPAL]):
            raise ApiError(404, f'no request {request_id[:20]!r} of this pipeline')
        return found

    async def show(self, request: web.Request) -> web.StreamResponse:
        found = await self._own(request)
        details = None
        if found.status in LIVE_STATUSES and not found.ending:
            # Sealed to the pipeline's own key, so handed out again on each read: a lost answer loses nothing.
            box = await asyncio.to_thread(self.deps.store.sealed_details, found.id)
            details = json.loads(box) if box else None
        return web.json_response(request_view(found, details=details))

    async def release(self, request: web.Request) -> web.StreamResponse:
        """Give it back: cancel while pending, end now while active; a request already over stays as it is."""
        found = await self._own(request)
        who: Principal = request[PRINCIPAL]
        end = self.deps.end
        try:
            if found.status is S.PENDING:
                found = await asyncio.to_thread(end.cancel, found.id, who)
            elif found.status in LIVE_STATUSES:
                await asyncio.to_thread(end.release, found.id, who)
                log.info('api.released', request_id=found.id, pipeline=who.pipeline)
                return web.json_response({**request_view(found), 'ending': True}, status=202)
            elif found.status in (S.APPROVED, S.GRANTING):
                raise ApiError(409, f'{found.id} is being granted right now; release it in a moment',
                               headers={'Retry-After': '2'})  # fmt: skip
        except InvalidTransition:
            found = await self._own(request)  # decided or ending meanwhile: say where it stands now
            if found.status in (S.APPROVED, S.GRANTING):
                raise ApiError(409, f'{found.id} is being granted right now; release it in a moment',
                               headers={'Retry-After': '2'}) from None  # fmt: skip
            return web.json_response({**request_view(found), 'ending': found.status not in FINAL_STATUSES})
        except (NotPermitted, RequestNotFound):
            raise ApiError(404, f'no request {found.id!r} of this pipeline') from None
        return web.json_response({**request_view(found), 'ending': False})

    async def openapi(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response(openapi_document())


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document shipped beside this module."""
    text = resources.files('bot.api').joinpath('openapi.yaml').read_text(encoding='utf-8')
    return dict(yaml.safe_load(text))


def create_api_app(deps: Deps) -> web.Application:
    """The ``/api/v1`` sub-application of ``jit serve``."""
    new_request_schema()  # read and checked now: a broken document stops jit serve here, not on a request
    app = web.Application(middlewares=[api_guard], client_max_size=MAX_BODY)
    app[TOKENS] = deps.settings.api_tokens
    api = Api(deps)
    app.router.add_post('/requests', api.file)
    app.router.add_get('/requests/{id}', api.show, allow_head=False)  # GET only, as documented
    app.router.add_post('/requests/{id}/release', api.release)
    app.router.add_get('/openapi.json', api.openapi)
    return app
