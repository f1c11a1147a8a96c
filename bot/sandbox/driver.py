"""Play Slack towards the bot: signed slash commands, button clicks, modal submissions and events.

Part of `bot/sandbox/`. Requests are signed exactly as Slack signs them (`X-Slack-Signature: v0=` + HMAC of
`v0:{timestamp}:{body}`) and posted to `LocalSlack.app_url`. What Slack does with an ack is applied to the
workspace too: a slash command's ack text shows up as an ephemeral (or in-channel) message, a clean
submission closes its modal, `response_action: update|push|clear` changes the modal stack.

`Driver` blocks (urllib) for plain pytest tests; `AsyncDriver` has the same methods as coroutines, for the
sandbox page and async tests that serve the bot on their own loop.

With `LocalSlack.transport == "socket"` the same payloads go to the bot as Socket Mode envelopes instead
(`slash_commands`, `interactive`, `events_api`), and the ack's payload is read as the HTTP answer would be:
a `Reply` with status 200 and the payload as its JSON body, or status 0 when no ack came. `post_raw` is
HTTP only: forged and malformed requests have no Socket Mode counterpart (the socket is the credential).

Building and signing each request, and applying its ack, is `bot.sandbox._slack_requests` (`DriverBase`,
`Reply`); the two drivers here only move the bytes, each its own way.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp

from bot.sandbox import _payloads
from bot.sandbox._models import JSON, Message, View
from bot.sandbox._slack_requests import HTTP_TIMEOUT, DriverBase, Outgoing, Reply

__all__ = ["AsyncDriver", "Driver", "Reply"]


class Driver(DriverBase):
    """Send Slack's requests to the bot and wait for the answers (blocking; for synchronous tests)."""

    def slash(self, user_id: str, text: str, command: str = "/jit", channel_id: str | None = None) -> Reply:
        """Type a slash command as a user, in the bot's DM unless `channel_id` is given."""
        return self._send(self._slash(user_id, text, command, channel_id))

    def click(
        self, user_id: str, message: Message, action_id: str, value: str | None = None, *, strict: bool = True
    ) -> Reply:
        """Press a button in a message; `LookupError` when the message does not show it (any more)."""
        return self._send(self._click(user_id, message, action_id, value, strict))

    def click_home(self, user_id: str, action_id: str, value: str | None = None) -> Reply:
        """Press a button in the user's published App Home tab."""
        return self._send(self._click_home(user_id, action_id, value))

    def submit_view(
        self, user_id: str, view: View, values: dict[str, Any] | None = None, *, strict: bool = True
    ) -> Reply:
        """Submit a modal with `{block_id: value}` (text, option value, or raw `{action_id: state}`)."""
        return self._send(self._submit(user_id, view, values, strict))

    def send_event(self, event: JSON) -> Reply:
        """Deliver an Events API event (wrapped in `event_callback` unless it already is)."""
        return self._send(self._event(event))

    def open_home(self, user_id: str) -> Reply:
        """Open the bot's Home tab as a user (sends `app_home_opened`)."""
        return self.send_event(_payloads.app_home_opened(self.slack, user_id))

    def post_raw(self, body: bytes | str, headers: dict[str, str]) -> Reply:
        """Post exactly these bytes and headers to the bot (forged, stale or malformed requests)."""
        raw = body.encode() if isinstance(body, str) else body
        return self._send(Outgoing(raw, headers))

    def replay(self, outgoing: Outgoing) -> Reply:
        """Send a request built once (`_click(...)`) again, byte for byte or envelope payload for payload."""
        return self._send(outgoing)

    def _send(self, outgoing: Outgoing) -> Reply:
        """Post with urllib (4xx/5xx answers are replies, not exceptions) and apply the answer."""
        if self.over_socket and outgoing.envelope is not None:
            loop = self.slack.loop
            if loop is None:
                raise RuntimeError("LocalSlack is not started")
            kind, payload = outgoing.envelope
            delivery = self.slack.socket_mode.deliver(kind, payload, timeout=HTTP_TIMEOUT)
            reply = self._ack_reply(asyncio.run_coroutine_threadsafe(delivery, loop).result(HTTP_TIMEOUT + 5))
            outgoing.after(reply)
            return reply
        request = urllib.request.Request(self.url, data=outgoing.body, headers=outgoing.headers, method="POST")
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                status, body, headers = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            status, body, headers = error.code, error.read(), dict(error.headers)
        reply = Reply(status, body.decode(errors="replace"), headers, time.monotonic() - started)
        outgoing.after(reply)
        return reply


class AsyncDriver(DriverBase):
    """The same requests as `Driver`, as coroutines (for the sandbox page and async tests)."""

    async def slash(self, user_id: str, text: str, command: str = "/jit", channel_id: str | None = None) -> Reply:
        """Type a slash command as a user, in the bot's DM unless `channel_id` is given."""
        return await self._send(self._slash(user_id, text, command, channel_id))

    async def click(
        self, user_id: str, message: Message, action_id: str, value: str | None = None, *, strict: bool = True
    ) -> Reply:
        """Press a button in a message; `LookupError` when the message does not show it (any more)."""
        return await self._send(self._click(user_id, message, action_id, value, strict))

    async def click_home(self, user_id: str, action_id: str, value: str | None = None) -> Reply:
        """Press a button in the user's published App Home tab."""
        return await self._send(self._click_home(user_id, action_id, value))

    async def submit_view(
        self, user_id: str, view: View, values: dict[str, Any] | None = None, *, strict: bool = True
    ) -> Reply:
        """Submit a modal with `{block_id: value}` (text, option value, or raw `{action_id: state}`)."""
        return await self._send(self._submit(user_id, view, values, strict))

    async def send_event(self, event: JSON) -> Reply:
        """Deliver an Events API event (wrapped in `event_callback` unless it already is)."""
        return await self._send(self._event(event))

    async def open_home(self, user_id: str) -> Reply:
        """Open the bot's Home tab as a user (sends `app_home_opened`)."""
        return await self.send_event(_payloads.app_home_opened(self.slack, user_id))

    async def post_raw(self, body: bytes | str, headers: dict[str, str]) -> Reply:
        """Post exactly these bytes and headers to the bot (forged, stale or malformed requests)."""
        raw = body.encode() if isinstance(body, str) else body
        return await self._send(Outgoing(raw, headers))

    async def _send(self, outgoing: Outgoing) -> Reply:
        """Post with a short-lived aiohttp session (no session outlives its loop) and apply the answer."""
        if self.over_socket and outgoing.envelope is not None:
            kind, payload = outgoing.envelope
            reply = self._ack_reply(await self.slack.socket_mode.deliver(kind, payload, timeout=HTTP_TIMEOUT))
            outgoing.after(reply)
            return reply
        started = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(self.url, data=outgoing.body, headers=outgoing.headers) as response,
        ):
            body = await response.text(errors="replace")
            reply = Reply(response.status, body, dict(response.headers), time.monotonic() - started)
        outgoing.after(reply)
        return reply
