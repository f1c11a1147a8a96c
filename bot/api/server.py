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
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import redis
import structlog
from aiohttp import web

from bot.api.bodies import MAX_BODY, idempotency_key, json_body, new_request_schema, openapi_document, parse_new_request
from bot.api.errors import ApiError, answer_for, unexpected
from bot.api.tokens import pipeline_for
from bot.core.errors import InvalidTransition, NotPermitted, RequestError, RequestNotFound, new_error_id
from bot.core.model import FINAL_STATUSES, LIVE_STATUSES, AccessRequest, Principal, RequestStatus
from bot.deps import Deps

log = structlog.get_logger(__name__)
S = RequestStatus

#: RFC 7235: the scheme's name is case-insensitive (``bearer`` is ``Bearer``); the token is not.
_BEARER = re.compile(r'(?i:bearer) ([A-Za-z0-9._~+/-]{1,200}=*)')
_REQUEST_ID = re.compile(r'r-[a-z0-9]{8}')
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


class Api:
    """The handlers, over the wired use cases (each call runs in a thread: the store is synchronous)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def file(self, request: web.Request) -> web.StreamResponse:
        who: Principal = request[PRINCIPAL]
        key = idempotency_key(request)
        body = await json_body(request)
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
