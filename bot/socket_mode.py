"""Socket Mode: the same Bolt app and listeners, reached over a WebSocket instead of ``/slack/events``.

With ``SLACK_APP_TOKEN`` (``xapp-…``) set, ``jit serve`` asks Slack for a socket (``apps.connections.open``)
and receives every slash command, click, submission and event on it; there is then no public URL to reach
and no signature to check, because the socket itself was opened with the app token. The payloads are still
held to the shapes Slack sends (the checks of :mod:`bot.app`), and every envelope is acked, even one the
app refuses or has no listener for: an unacked envelope is sent again, up to three times.

An envelope Slack sends again (its ``envelope_id`` seen before: the first ack was lost or late) is acked
again and not acted on (``slack.replayed``; a slash command's ack says it arrived twice). When Redis cannot
say whether it was seen, the envelope is acked and nothing is done (``slack.unavailable``; a slash command's
ack says so): sending it again would not help the user more than the text does.

The HTTP server stays, for ``/healthz`` and ``/readyz`` (which reports the socket), without ``/slack/events``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import redis
import structlog
from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.replay_guard import ReplayGuard
from bot.slack_payloads import REPLAYED_TEXT, UNAVAILABLE_TEXT, Refusal, check_socket_payload

log = structlog.get_logger(__name__)

#: Slack errors that no retry fixes: the token is wrong, revoked, or not an app-level one.
FATAL_ERRORS = {'invalid_auth', 'not_authed', 'not_allowed_token_type', 'account_inactive', 'token_revoked'}
#: Waits between connection attempts: quickly at first, then every 30 s (a bad token is retried too, slowly,
#: so that fixing it at Slack's end needs no restart; /readyz says why meanwhile).
RETRY_DELAYS = (1, 2, 5, 10, 30)


class GuardedSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler, checking each payload's shape first and acking every envelope."""

    #: Remembers the envelopes taken (None: every envelope is taken, as in tests of the handler alone).
    replay: ReplayGuard | None = None

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        """Check, dispatch to Bolt, ack with Bolt's answer; refuse or fail with an empty ack and a log line.

        Every log line of the envelope carries its ``slack_envelope_id``, as an HTTP request's carry its
        ``http_request_id`` (slack_sdk runs each envelope in a task of its own, so the binding ends with it).
        """
        structlog.contextvars.bind_contextvars(slack_envelope_id=str(req.envelope_id)[:64])
        start = asyncio.get_running_loop().time()
        try:
            check_socket_payload(req.type, req.payload)
            if not await self._first(client, req):
                return
            bolt_resp = await run_async_bolt_app(self.app, req)
        except Refusal as refusal:
            log.info('slack.rejected', transport='socket', envelope_type=str(req.type)[:40], why=refusal.why)
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        except (ValueError, TypeError, AttributeError, KeyError, IndexError):
            # Bolt builds its context from fields the checks do not look at; see bot.app.bolt_request.
            log.info('slack.rejected', transport='socket', envelope_type=str(req.type)[:40],
                     why='body is not a Slack payload: Bolt cannot read it')  # fmt: skip
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        if bolt_resp.status != 200:
            log.info('slack.unhandled', transport='socket', envelope_type=req.type, status=bolt_resp.status)
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        await send_async_response(client, req, bolt_resp, start)

    async def _first(self, client: SocketModeClient, req: SocketModeRequest) -> bool:
        """True for an envelope seen the first time; otherwise ack it, acting on nothing, and say False."""
        if self.replay is None:
            return True
        slash = req.type == 'slash_commands'
        try:
            if await asyncio.to_thread(self.replay.first_envelope, str(req.envelope_id)):
                return True
            log.info('slack.replayed', transport='socket', envelope_type=str(req.type)[:40])
            text = REPLAYED_TEXT
        except redis.RedisError as exc:
            log.error('slack.unavailable', transport='socket', envelope_type=str(req.type)[:40],
                      error=type(exc).__name__)  # fmt: skip
            text = UNAVAILABLE_TEXT
        payload = {'text': text} if slash else None
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id, payload=payload))
        return False


class SocketConnection:
    """Keeps ``jit serve`` connected over Socket Mode, and says how it stands (for ``/readyz``)."""

    def __init__(self, bolt: AsyncApp, app_token: str, api_url: str, replay: ReplayGuard | None = None) -> None:
        self.bolt, self.app_token, self.api_url, self.replay = bolt, app_token, api_url, replay
        self.handler: GuardedSocketModeHandler | None = None  # built on the server's loop, which aiohttp needs
        self.problem: str | None = 'not connected yet'

    async def is_connected(self) -> bool:
        """Whether the socket is open and answering pings."""
        return self.handler is not None and bool(await self.handler.client.is_connected())

    async def keep_connected(self) -> None:
        """Connect, retrying with backoff until it works; the SDK reconnects by itself from then on."""
        # The app token goes with each apps.connections.open call; the web client itself holds no token.
        web_client = AsyncWebClient(base_url=self.api_url, timeout=10)
        self.handler = GuardedSocketModeHandler(self.bolt, app_token=self.app_token, web_client=web_client)
        self.handler.replay = self.replay
        attempt = 0
        while True:
            try:
                # The URL first, here, so that a bad token is one clear log line; the SDK's own connect()
                # would retry it forever with a traceback each time.
                self.handler.client.wss_uri = await self.handler.client.issue_new_wss_url()
                await self.handler.client.connect()  # type: ignore[no-untyped-call]
            except SlackApiError as exc:
                error = str(exc.response.get('error', 'unknown'))
                self.problem = f'apps.connections.open: {error}'
                level = 'error' if error in FATAL_ERRORS else 'warning'
                getattr(log, level)('slack.socket.refused', error=error,
                                    hint='SLACK_APP_TOKEN must be an app-level token with connections:write'
                                    if error in FATAL_ERRORS else None)  # fmt: skip
            except (TimeoutError, OSError) as exc:
                self.problem = f'cannot reach Slack: {type(exc).__name__}'
                log.warning('slack.socket.unreachable', error=type(exc).__name__)
            else:
                self.problem = None
                log.info('slack.socket.connected')
                return
            await asyncio.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
            attempt += 1

    async def close(self) -> None:
        """Close the socket (the process is stopping)."""
        if self.handler is not None:
            await self.handler.close_async()  # type: ignore[no-untyped-call]


def add_socket_mode(web_app: web.Application, bolt: AsyncApp, app_token: str, api_url: str, *,
                    replay: ReplayGuard | None = None) -> SocketConnection:  # fmt: skip
    """Run a Socket Mode connection for the life of the web app; return it so /readyz can ask about it."""
    connection = SocketConnection(bolt, app_token, api_url, replay)

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(connection.keep_connected())
        yield
        task.cancel()
        await connection.close()

    web_app.cleanup_ctx.append(lifetime)
    return connection


async def socket_problems(connection: Any) -> list[str]:
    """What /readyz reports about the socket: nothing when it is open and answering."""
    if connection is None:
        return []
    if connection.problem is None and await connection.is_connected():
        return []
    return [f'slack socket: {connection.problem or "reconnecting"}']
