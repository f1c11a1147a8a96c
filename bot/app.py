"""The Bolt app and the aiohttp server around it: ``/slack/events``, ``/healthz``, ``/readyz``, and the
pipeline API under ``/api/v1`` (:mod:`bot.api.server`). Each request is logged once (``http.request``) and
its answer carries an ``X-Request-ID`` (:mod:`bot.access_log`).

Bolt verifies signatures, but only after it has parsed the body and built its context from it, and it
answers 500 to much of what Slack never sends (a non-numeric timestamp, a JSON array, a ``team`` that is
a number, a view without a type). So a guard stands in front of it and checks, in this order, before any
byte of the body is interpreted:

=======================================================  ======
the body is larger than Slack ever sends                 413
timestamp or signature header missing, repeated, or      400
not shaped like Slack's (``[0-9]{1,12}``, ``v0=`` + 64 hex)
the signature does not match, or is over 5 minutes off    401
the body is not what Slack sends (not UTF-8, not a form   400
or a JSON object of the content type given, a payload
whose fields Slack would never send with those types)
=======================================================  ======

Every refusal is one ``slack.rejected`` log line (status, why, size; never the body or the headers) and a
JSON ``{"error": ...}`` answer.

Then the request must be the first of its kind: a signed request stays valid for 5 minutes, and a copy of
it posted again (Slack never sends the same timestamp and signature twice) is answered 200 without acting,
one ``slack.replayed`` log line (a slash command's answer says it arrived twice; see
:mod:`bot.adapters.replay_guard`). When Redis cannot say whether it is the first, nothing is acted on
either (``slack.unavailable``): a slash command is answered 200 with a text saying so (Slack shows the
user nothing else), anything else 503 with ``Retry-After`` (Slack shows the click or submission failed,
and sends an event again later). Only then does Bolt see the request, which it verifies again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis
import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler

from bot import version
from bot.access_log import access_log, send_request_id
from bot.adapters.metrics import CountedAsyncWebClient
from bot.adapters.replay_guard import ReplayGuard
from bot.api.server import create_api_app
from bot.content_coding import encoded
from bot.decision_page.routes import add_decision_routes
from bot.deps import Deps
from bot.listeners import register_listeners
from bot.slack_payloads import REPLAYED_TEXT, UNAVAILABLE_TEXT, Refusal, slack_body

log = structlog.get_logger(__name__)

#: Slack's own payloads stay far below this; a larger body is refused before it is read.
MAX_BODY = 256 * 1024
#: Slack refuses requests whose timestamp is further than this from now; so does the guard (and Bolt).
MAX_CLOCK_SKEW = 5 * 60
_TIMESTAMP = re.compile(r'[0-9]{1,12}')
_SIGNATURE = re.compile(r'v0=[0-9a-f]{64}')
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_bolt_app(deps: Deps) -> AsyncApp:
    """The unmodified Bolt AsyncApp with jit's listeners; ``deps`` reaches them through ``context``."""
    retry: list[AsyncRetryHandler] = [AsyncRateLimitErrorRetryHandler(max_retry_count=2)]
    client = CountedAsyncWebClient(token=deps.settings.slack_bot_token, base_url=deps.settings.slack_api_url,
                                   timeout=10, retry_handlers=retry)  # fmt: skip
    app = AsyncApp(client=client, signing_secret=deps.settings.slack_signing_secret, logger=None,
                   ssl_check_enabled=False)  # fmt: skip

    @app.middleware
    async def inject_deps(context: Any, next: Callable[[], Awaitable[None]]) -> None:
        context['deps'] = deps
        # Bolt hands each request a fresh plain client (so that a listener changing its token changes no other
        # request's); jit's bot token never changes, so the listeners get the app's own, which counts its calls.
        context['client'] = client
        await next()

    register_listeners(app)
    return app


@web.middleware
async def slack_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a :class:`Refusal` raised while checking a Slack request: its status, one log line."""
    try:
        return await handler(request)
    except Refusal as refusal:
        log.info('slack.rejected', status=refusal.status, why=refusal.why, size=request.content_length)
        return web.json_response({'error': refusal.why}, status=refusal.status)


def _one_header(request: web.Request, name: str, shape: re.Pattern[str]) -> str:
    values = request.headers.getall(name, [])
    if len(values) != 1 or not shape.fullmatch(values[0]):
        raise Refusal(400, f'missing, repeated or malformed {name}')
    return str(values[0])


async def verified_body(request: web.Request, signing_secret: str) -> bytes:
    """The raw body, once its size, its signature headers and its signature check out.

    The HMAC is computed over the bytes as received (slack_sdk's verifier decodes them first and raises
    on what is not UTF-8), so a forged body is refused before anything reads it.

    Raises:
        Refusal: 413, 400 or 401, as the module docstring lays out.
    """
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Refusal(413, 'body too large')
    timestamp = _one_header(request, 'X-Slack-Request-Timestamp', _TIMESTAMP)
    signature = _one_header(request, 'X-Slack-Signature', _SIGNATURE)
    if encoded(request):  # Slack sends bodies as they are (bot/content_coding.py)
        raise Refusal(400, 'body cannot be read')
    try:
        raw = await request.read()  # a chunked body stops at the application's client_max_size (MAX_BODY)
    except web.HTTPRequestEntityTooLarge:
        raise Refusal(413, 'body too large') from None
    except (web.RequestPayloadError, HttpProcessingError):  # not in the Content-Encoding it claims (gzip)
        raise Refusal(400, 'body cannot be read') from None
    if abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW:
        raise Refusal(401, 'stale request')
    base = b'v0:' + timestamp.encode() + b':' + raw
    expected = 'v0=' + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise Refusal(401, 'invalid signature')
    return raw


async def replay_answer(replay: ReplayGuard, request: web.Request, form: dict[str, str] | None) -> web.Response | None:
    """None for a verified request seen the first time; otherwise the answer that acts on nothing.

    Args:
        form: the slash command's form (from :func:`slack_body`), None for other bodies.
    """
    timestamp, signature = request.headers['X-Slack-Request-Timestamp'], request.headers['X-Slack-Signature']
    valid_for = int(timestamp) + MAX_CLOCK_SKEW - time.time()  # until verified_body refuses it as stale
    try:
        first = await asyncio.to_thread(replay.first_signed, timestamp, signature, valid_for=valid_for)
    except redis.RedisError as exc:
        log.error('slack.unavailable', error=type(exc).__name__, slash_command=form is not None)
        if form is not None:
            return web.json_response({'text': UNAVAILABLE_TEXT})
        return web.json_response({'error': 'jit cannot reach its store right now; try again'}, status=503,
                                 headers={'Retry-After': '5'})  # fmt: skip
    if first:
        return None
    log.info('slack.replayed', transport='http', slash_command=form is not None)
    return web.json_response({'text': REPLAYED_TEXT}) if form is not None else web.Response(status=200)


def bolt_request(request: web.Request, text: str, form: dict[str, str] | None) -> AsyncBoltRequest:
    """Bolt's request for a checked body."""
    try:
        bolt_request = AsyncBoltRequest(body=text, query=request.query_string, headers=dict(request.headers))
    except (ValueError, TypeError, AttributeError, KeyError, IndexError):
        # Bolt builds its context from fields the checks above do not know of; it raises when their types are
        # not the ones Slack sends. Any of these on a body that passed the checks is still the body's doing.
        raise Refusal(400, 'body is not a Slack payload: Bolt cannot read it') from None
    if form is not None and 'payload' in text:
        # Bolt takes any form body containing the word "payload" for an interaction and drops it:
        # `/jit request db read 1h fix the payload parser` would be lost. Parse it as the form it is.
        bolt_request.body = form
        bolt_request.context = build_async_context(AsyncBoltContext({}), form)
    return bolt_request


def create_web_app(deps: Deps, bolt: AsyncApp | None = None) -> web.Application:
    """The HTTP server of ``jit serve``: ``/slack/events``, or a Socket Mode connection when
    ``SLACK_APP_TOKEN`` is set (:mod:`bot.socket_mode`); health checks either way."""
    bolt = bolt or create_bolt_app(deps)
    secret = deps.settings.slack_signing_secret
    replay = ReplayGuard(deps.redis, prefix=deps.settings.redis_prefix)
    # access_log first: it sees every answer, the guards' refusals included (bot.access_log).
    web_app = web.Application(middlewares=[access_log, slack_guard], client_max_size=MAX_BODY)
    web_app.on_response_prepare.append(send_request_id)
    socket = None
    if deps.settings.slack_app_token:
        from bot.socket_mode import add_socket_mode

        socket = add_socket_mode(web_app, bolt, deps.settings.slack_app_token, deps.settings.slack_api_url,
                                 replay=replay)  # fmt: skip

    async def slack_events(request: web.Request) -> web.StreamResponse:
        raw = await verified_body(request, secret)
        text, form = slack_body(raw, request.headers.get('Content-Type', ''))
        answer = await replay_answer(replay, request, form)
        if answer is not None:
            return answer
        return await to_aiohttp_response(await bolt.async_dispatch(bolt_request(request, text, form)))

    async def healthz(_request: web.Request) -> web.StreamResponse:
        return web.json_response({'ok': True})

    async def readyz(_request: web.Request) -> web.StreamResponse:
        problems = []
        try:
            deps.redis.ping()
        except Exception as exc:  # any failure to answer means not ready; the reason is reported
            problems.append(f'redis: {type(exc).__name__}')
        if socket is not None:
            from bot.socket_mode import socket_problems

            problems += await socket_problems(socket)
        policy = deps.policy()
        body = {'ok': not problems, 'version': version(), 'policy_version': policy.version, 'problems': problems}
        return web.json_response(body, status=200 if not problems else 503)

    async def metrics(_request: web.Request) -> web.StreamResponse:
        # This process's counters (the Slack side: requests, decisions, Slack calls, policy loads); the worker
        # serves the grants, revokes and gauges on its own port.
        return web.Response(body=generate_latest(), headers={'Content-Type': CONTENT_TYPE_LATEST})

    async def watch_policy(_app: web.Application) -> AsyncIterator[None]:
        # The policy source checks the files when asked; asking every few seconds makes a change
        # (and its audit event) visible even when nobody uses jit at that moment.
        async def loop() -> None:
            while True:
                await asyncio.sleep(deps.policy.check_every)
                await asyncio.to_thread(deps.policy)

        task = asyncio.create_task(loop())
        yield
        task.cancel()

    web_app.cleanup_ctx.append(watch_policy)
    if socket is None:
        web_app.router.add_post('/slack/events', slack_events)
    web_app.add_subapp('/api/v1', create_api_app(deps))
    add_decision_routes(web_app, deps)  # the links of approval emails and Teams cards
    web_app.router.add_get('/healthz', healthz)
    web_app.router.add_get('/readyz', readyz)
    web_app.router.add_get('/metrics', metrics)
    return web_app
