"""The Bolt app and the aiohttp server around it: ``/slack/events``, ``/healthz``, ``/readyz``.

Bolt verifies signatures; in front of it, :func:`slack_guard` turns what Bolt would answer with
a 500 (a non-numeric timestamp header) or should never see (missing headers, huge bodies) into
a 400, so nothing a client sends yields a 5xx.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import structlog
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.deps import Deps
from bot.listeners import register_listeners

log = structlog.get_logger(__name__)

#: Slack's own payloads stay far below this; a larger body is refused before it is read.
MAX_BODY = 256 * 1024
_SIGNATURE = re.compile(r'^v0=[0-9a-f]{64}$')
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_bolt_app(deps: Deps) -> AsyncApp:
    """The unmodified Bolt AsyncApp with jit's listeners; ``deps`` reaches them through ``context``."""
    client = AsyncWebClient(token=deps.settings.slack_bot_token, base_url=deps.settings.slack_api_url, timeout=10,
                            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)])  # fmt: skip
    app = AsyncApp(client=client, signing_secret=deps.settings.slack_signing_secret, logger=None,
                   ssl_check_enabled=False)  # fmt: skip

    @app.middleware
    async def inject_deps(context: Any, next: Callable[[], Awaitable[None]]) -> None:
        context['deps'] = deps
        await next()

    register_listeners(app)
    return app


@web.middleware
async def slack_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse malformed Slack requests with a 400 before Bolt sees them."""
    if request.path != '/slack/events':
        return await handler(request)
    if request.content_length is not None and request.content_length > MAX_BODY:
        return web.json_response({'error': 'body too large'}, status=413)
    timestamp = request.headers.get('X-Slack-Request-Timestamp', '')
    signature = request.headers.get('X-Slack-Signature', '')
    if not timestamp.isdigit() or len(timestamp) > 12:
        log.info('slack.rejected', why='bad timestamp header')
        return web.json_response({'error': 'missing or malformed X-Slack-Request-Timestamp'}, status=400)
    if not _SIGNATURE.match(signature):
        log.info('slack.rejected', why='bad signature header')
        return web.json_response({'error': 'missing or malformed X-Slack-Signature'}, status=400)
    return await handler(request)


def _json_object(text: str) -> None:
    if not isinstance(json.loads(text), dict):
        raise ValueError('a Slack payload is a JSON object')


async def _bolt_request(request: web.Request) -> AsyncBoltRequest:
    """Bolt's request, checked first: Bolt answers 500 to bodies that are not what Slack sends.

    Raises:
        ValueError: JSON that does not parse, or a payload that is not a JSON object.
    """
    raw = await request.text()
    form: dict[str, str] | None = None
    if raw.startswith('{'):
        _json_object(raw)
    elif 'payload' in raw:
        form = dict(parse_qsl(raw, keep_blank_values=True))
        if 'payload' in form:
            _json_object(form['payload'])
            form = None
    bolt_request = AsyncBoltRequest(body=raw, query=request.query_string, headers=dict(request.headers))
    if form is not None:
        # Bolt takes any form body containing the word "payload" for an interaction and drops it:
        # `/jit request db read 1h fix the payload parser` would be lost. Parse it as the form it is.
        bolt_request.body = form
        bolt_request.context = build_async_context(AsyncBoltContext({}), form)
    return bolt_request


def create_web_app(deps: Deps, bolt: AsyncApp | None = None) -> web.Application:
    """The HTTP server of ``jit serve``."""
    bolt = bolt or create_bolt_app(deps)
    web_app = web.Application(middlewares=[slack_guard], client_max_size=MAX_BODY)

    async def slack_events(request: web.Request) -> web.StreamResponse:
        try:
            bolt_request = await _bolt_request(request)
        except (UnicodeDecodeError, ValueError):
            log.info('slack.rejected', why='body is not what Slack sends')
            return web.json_response({'error': 'body is not a Slack payload'}, status=400)
        return await to_aiohttp_response(await bolt.async_dispatch(bolt_request))

    async def healthz(_request: web.Request) -> web.StreamResponse:
        return web.json_response({'ok': True})

    async def readyz(_request: web.Request) -> web.StreamResponse:
        problems = []
        try:
            deps.redis.ping()
        except Exception as exc:  # any failure to answer means not ready; the reason is reported
            problems.append(f'redis: {type(exc).__name__}')
        policy = deps.policy()
        body = {'ok': not problems, 'policy_version': policy.version, 'problems': problems}
        return web.json_response(body, status=200 if not problems else 503)

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
    web_app.router.add_post('/slack/events', slack_events)
    web_app.router.add_get('/healthz', healthz)
    web_app.router.add_get('/readyz', readyz)
    return web_app
