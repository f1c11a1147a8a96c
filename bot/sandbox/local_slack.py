"""A local Slack: the Web API the bot calls and the signed requests Slack sends the bot, on one machine.

Part of `bot/sandbox/`; used by the end-to-end tests and `jit sandbox`. `LocalSlack` owns a `Workspace`
(the state), serves the Web API and `response_url`s (`web_api.py`), and drives the bot with signed slash
commands, clicks, submissions and events (`slack.driver` blocking, `slack.async_driver` for asyncio).

Synchronous test::

    slack = LocalSlack(signing_secret="s3cret")
    slack.start_in_thread()
    client = WebClient(token=slack.bot_token, base_url=slack.api_url)
    slack.app_url = bot_url + "slack/events"
    reply = slack.driver.slash("U0ALEX", "request prod-db read 30m")
    slack.stop_thread()

Async code: `await slack.start()`, `await slack.async_driver.slash(...)`, `await slack.stop()`.

Socket Mode: set `slack.transport = "socket"` and give the bot `SLACK_APP_TOKEN=slack.app_token`; the driver
then sends the same payloads as envelopes over the bot's WebSocket (`socket_mode.py`) instead of signed HTTP
requests, and reads the bot's acks as it would read HTTP answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from bot.sandbox._models import ApiCall, ResponsePost, ResponseUrl, SlackError
from bot.sandbox._server import AppServer
from bot.sandbox.driver import AsyncDriver, Driver
from bot.sandbox.socket_mode import SocketAck, SocketModeHub
from bot.sandbox.web_api import create_web_api_app
from bot.sandbox.workspace import Workspace, seed_workspace

__all__ = ["ApiCall", "LocalSlack", "ResponsePost", "ResponseUrl"]


@dataclass
class _Trigger:
    """A trigger id as Slack issues it: for one user, usable once, for a few seconds."""

    user_id: str
    expires_at: float
    used: bool = False


class LocalSlack:
    """One local Slack workspace with its Web API server and a driver that plays the users."""

    def __init__(
        self,
        *,
        workspace: Workspace | None = None,
        bot_token: str = "xoxb-local",
        app_token: str = "xapp-1-local",
        transport: str = "http",
        signing_secret: str = "local-signing-secret",
        app_url: str | None = None,
        trigger_ttl: float = 3.0,
        response_url_ttl: float = 30 * 60.0,
        response_url_max_posts: int = 5,
    ) -> None:
        """Configure the local Slack; nothing listens until `start()` or `start_in_thread()`.

        Args:
            workspace: The state to serve; the seeded demo workspace when omitted.
            bot_token: The only token the Web API accepts (but for `apps.connections.open`).
            app_token: The app-level token `apps.connections.open` accepts (Socket Mode).
            transport: How the driver reaches the bot: "http" (signed requests to `app_url`) or "socket".
            signing_secret: Signs every request the driver sends to the bot.
            app_url: The bot's `/slack/events` URL; may be set later, before the driver is used.
            trigger_ttl: How long a trigger id may be exchanged for a modal (Slack: 3 s).
            response_url_ttl: How long a `response_url` accepts posts (Slack: 30 minutes).
            response_url_max_posts: How many posts a `response_url` accepts (Slack: 5).
        """
        self.workspace = workspace if workspace is not None else seed_workspace()
        if transport not in ("http", "socket"):
            raise ValueError(f"transport must be 'http' or 'socket', not {transport!r}")
        self.bot_token = bot_token
        self.app_token = app_token
        self.transport = transport
        self.signing_secret = signing_secret
        self.app_url = app_url
        self.trigger_ttl = trigger_ttl
        self.response_url_ttl = response_url_ttl
        self.response_url_max_posts = response_url_max_posts
        self._lock = threading.Lock()
        self._calls: list[ApiCall] = []
        self._responses: list[ResponsePost] = []
        self._triggers: dict[str, _Trigger] = {}
        self._response_urls: dict[str, ResponseUrl] = {}
        self._rate_limited = 0
        self._retry_after = 1
        self._rate_limited_method: str | None = None
        self.socket_mode = SocketModeHub(self)
        self._server = AppServer(lambda: create_web_api_app(self), name="local-slack")
        self.driver = Driver(self)
        self.async_driver = AsyncDriver(self)

    # -- serving -------------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on the running loop; return the base URL ("http://127.0.0.1:4040/")."""
        return await self._server.start(host, port)

    async def stop(self) -> None:
        """Stop serving (started with `start`)."""
        await self.socket_mode.close_all()
        await self._server.stop()

    def start_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on a daemon thread with its own loop, for synchronous tests; return the base URL."""
        return self._server.start_in_thread(host, port)

    def stop_thread(self) -> None:
        """Stop the server started with `start_in_thread` and join its thread."""
        if self._server.loop is not None and self._server.base_url is not None:
            self._server.run(self.socket_mode.close_all())
        self._server.stop_thread()

    @property
    def base_url(self) -> str:
        """The server's base URL, with a trailing slash."""
        if self._server.base_url is None:
            raise RuntimeError("LocalSlack is not started")
        return self._server.base_url

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the server runs on while started (Socket Mode deliveries must run there)."""
        return self._server.loop

    def wait_for_socket(self, timeout: float = 10.0) -> bool:
        """Block until the bot holds a Socket Mode connection (thread mode); False after `timeout`."""
        loop = self._server.loop
        if loop is None:
            raise RuntimeError("LocalSlack is not started")
        return asyncio.run_coroutine_threadsafe(self.socket_mode.wait_connected(timeout), loop).result(timeout + 5)

    def send_envelope(
        self, kind: str, payload: Any, timeout: float = 10.0, *, envelope_id: str | None = None, retry_attempt: int = 0
    ) -> SocketAck | None:
        """Send one Socket Mode envelope as given (thread mode) and return the ack, None when none came.

        ``envelope_id`` and ``retry_attempt`` send again an envelope sent before, as Slack does when no ack came.
        """
        loop = self._server.loop
        if loop is None:
            raise RuntimeError("LocalSlack is not started")
        delivery = self.socket_mode.deliver(
            kind, payload, timeout=timeout, envelope_id=envelope_id, retry_attempt=retry_attempt
        )
        return asyncio.run_coroutine_threadsafe(delivery, loop).result(timeout + 5)

    def refresh_sockets(self) -> int:
        """Ask the bot's connections to reconnect (`disconnect`, `refresh_requested`); return how many."""
        return self._server.run(self.socket_mode.refresh())

    @property
    def api_url(self) -> str:
        """The Web API base URL for `WebClient(base_url=...)`; the trailing slash keeps slack_sdk's `/api`."""
        return self.base_url + "api/"

    # -- what the Web API records and injects --------------------------------------------------------

    @property
    def calls(self) -> list[ApiCall]:
        """Every Web API call so far, oldest first (a copy)."""
        with self._lock:
            return list(self._calls)

    @property
    def responses(self) -> list[ResponsePost]:
        """Every post to a `response_url` so far, oldest first (a copy)."""
        with self._lock:
            return list(self._responses)

    def calls_to(self, method: str) -> list[ApiCall]:
        """The calls of one Web API method, e.g. `calls_to("chat.update")`."""
        return [call for call in self.calls if call.method == method]

    def record_call(self, call: ApiCall) -> None:
        """Keep a Web API call (used by the server)."""
        with self._lock:
            self._calls.append(call)

    def record_response(self, post: ResponsePost) -> None:
        """Keep a `response_url` post (used by the server)."""
        with self._lock:
            self._responses.append(post)

    def rate_limit_next(self, n: int, retry_after: int = 1, *, method: str | None = None) -> None:
        """Answer the next `n` Web API calls (of `method` alone, when given) with HTTP 429,
        `Retry-After: retry_after` and `ratelimited`."""
        with self._lock:
            self._rate_limited, self._retry_after, self._rate_limited_method = n, retry_after, method

    def take_rate_limit(self, method: str | None = None) -> int | None:
        """Consume one injected rate limit for a call of `method`; return its `Retry-After` seconds, or None
        to serve the call."""
        with self._lock:
            if self._rate_limited <= 0 or self._rate_limited_method not in (None, method):
                return None
            self._rate_limited -= 1
            return self._retry_after

    # -- trigger ids and response URLs ---------------------------------------------------------------

    def mint_trigger(self, user_id: str, ttl: float | None = None) -> str:
        """Issue a trigger id for a user, as Slack does with every slash command and click.

        Args:
            user_id: The user whose action produced it.
            ttl: Seconds it stays valid; `trigger_ttl` when None (pass 0 to test an expired one).
        """
        trigger_id = f"{int(time.time())}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"
        lifetime = self.trigger_ttl if ttl is None else ttl
        with self._lock:
            self._triggers[trigger_id] = _Trigger(user_id, time.monotonic() + lifetime)
        return trigger_id

    def redeem_trigger(self, trigger_id: str) -> str:
        """Exchange a trigger id for the user it was issued to; each one works once, and only in time.

        Raises:
            SlackError: `invalid_trigger_id` (never issued), `exchanged_trigger_id` (used),
                `expired_trigger_id` (too old).
        """
        with self._lock:
            trigger = self._triggers.get(trigger_id)
            if trigger is None:
                raise SlackError("invalid_trigger_id")
            if trigger.used:
                raise SlackError("exchanged_trigger_id")
            if time.monotonic() > trigger.expires_at:
                raise SlackError("expired_trigger_id")
            trigger.used = True
            return trigger.user_id

    def mint_response_url(self, *, user_id: str, channel_id: str, original_ts: str | None = None) -> str:
        """Issue a `response_url` for a slash command (no original) or a click (the clicked message)."""
        token = secrets.token_urlsafe(16)
        with self._lock:
            expires_at = time.monotonic() + self.response_url_ttl
            self._response_urls[token] = ResponseUrl(token, user_id, channel_id, original_ts, expires_at)
        return f"{self.base_url}response/{token}"

    def claim_response_url(self, token: str) -> ResponseUrl | None:
        """Count one post to a `response_url`; None when it is unknown, expired or used up (the server 404s)."""
        with self._lock:
            url = self._response_urls.get(token)
            if url is None or time.monotonic() > url.expires_at or url.posts >= self.response_url_max_posts:
                return None
            url.posts += 1
            return dataclasses.replace(url)

    def set_response_original(self, token: str, ts: str | None) -> None:
        """Remember the message a `response_url` now answers for, so `replace_original` finds it."""
        with self._lock:
            if token in self._response_urls:
                self._response_urls[token].original_ts = ts

    def __repr__(self) -> str:
        """Show where it serves and which app it calls, for test failure messages."""
        return f"LocalSlack(base_url={self._server.base_url!r}, app_url={self.app_url!r})"
