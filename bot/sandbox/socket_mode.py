"""The local Slack's Socket Mode: `apps.connections.open`, the WebSocket, envelopes out and acks back.

Part of `bot/sandbox/`. With an app-level token (`xapp-`) the bot asks `apps.connections.open` for a
`wss://` URL, connects, and receives a `hello`; from then on Slack sends every slash command, interaction and
event as an envelope on that socket, and the bot acks it with the envelope's id (and, for slash commands and
modal submissions, a payload that plays the HTTP response body):

    Slack -> bot   {"envelope_id": "…", "type": "slash_commands" | "interactive" | "events_api",
                    "payload": {…}, "accepts_response_payload": true, "retry_attempt": 0, "retry_reason": ""}
    bot -> Slack   {"envelope_id": "…", "payload": {…}}          (payload optional)

There is no signature: the socket itself was opened with the app token. Slack spreads envelopes over the
app's open connections (up to 10) and sends `{"type": "disconnect", "reason": "refresh_requested"}` before it
closes one, which the local Slack can do on demand (`refresh`), to test that the bot reconnects.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from bot.sandbox._models import JSON, SlackError

if TYPE_CHECKING:
    from bot.sandbox.local_slack import LocalSlack

__all__ = ["SocketAck", "SocketModeHub"]

#: Slack allows an app this many Socket Mode connections at once.
MAX_CONNECTIONS = 10
#: A URL from `apps.connections.open` must be used this soon (Slack: 30 s).
_TICKET_TTL = 30.0


@dataclass(frozen=True)
class SocketAck:
    """The bot's ack of one envelope: its payload (None when it acked with none) and how long it took."""

    payload: JSON | None
    elapsed: float


class SocketModeHub:
    """The Socket Mode connections of one local Slack, and delivery of envelopes over them.

    Lives on the local Slack's event loop: `deliver` and `wait_connected` must run there.
    """

    def __init__(self, slack: LocalSlack) -> None:
        """Serve Socket Mode for this `LocalSlack` (its `app_token`, workspace and base URL)."""
        self.slack = slack
        self._tickets: dict[str, float] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Future[JSON | None]] = {}
        self._next = 0
        self.connections_opened = 0

    # -- the Web API method and the socket -----------------------------------------------------------

    def open_connection(self) -> JSON:
        """`apps.connections.open`: a single-use WebSocket URL for the app."""
        if len(self._tickets) + len(self._sockets) >= MAX_CONNECTIONS * 2:
            raise SlackError("too_many_websockets")
        ticket = secrets.token_urlsafe(16)
        self._tickets[ticket] = time.monotonic() + _TICKET_TTL
        ws_base = "ws" + self.slack.base_url.removeprefix("http")
        return {"url": f"{ws_base}socket-mode?ticket={ticket}"}

    async def handle_socket(self, request: web.Request) -> web.StreamResponse:
        """Accept a WebSocket holding a fresh ticket, say `hello`, then read acks until it closes."""
        expires = self._tickets.pop(request.query.get("ticket", ""), None)
        if expires is None or time.monotonic() > expires or len(self._sockets) >= MAX_CONNECTIONS:
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        ws = web.WebSocketResponse(autoping=True)  # answers the SDK's pings with pongs, as Slack does
        await ws.prepare(request)
        self._sockets.append(ws)
        self.connections_opened += 1
        await ws.send_json({
            "type": "hello", "num_connections": len(self._sockets),
            "debug_info": {"host": "local-slack", "approximate_connection_time": 3600},
            "connection_info": {"app_id": self.slack.workspace.app_id},
        })  # fmt: skip
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._take_ack(message.data)
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
        return ws

    def _take_ack(self, data: str) -> None:
        """Resolve the envelope an ack names; Slack ignores acks it cannot read or does not expect."""
        try:
            ack = json.loads(data)
        except ValueError:
            return
        if not isinstance(ack, dict):
            return
        future = self._acks.get(str(ack.get("envelope_id")))
        if future is not None and not future.done():
            payload = ack.get("payload")
            future.set_result(payload if isinstance(payload, dict) and payload else None)

    # -- delivering --------------------------------------------------------------------------------

    @property
    def connected(self) -> int:
        """How many connections are open now."""
        return len(self._sockets)

    async def wait_connected(self, timeout: float) -> bool:
        """Wait until the bot has at least one connection open; False when it has none after `timeout`."""
        deadline = time.monotonic() + timeout
        while not self._sockets:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def deliver(
        self, kind: str, payload: JSON, *, timeout: float, envelope_id: str | None = None, retry_attempt: int = 0
    ) -> SocketAck | None:
        """Send one envelope on an open connection (round robin) and wait for its ack.

        Args:
            kind: `slash_commands`, `interactive` or `events_api`.
            payload: The slash command's fields, the interaction payload, or the event callback.
            timeout: How long to wait for a connection and then for the ack.
            envelope_id: Send again an envelope sent before (as Slack does with one whose ack it did not
                get), with its `envelope_id` and a `retry_attempt` above 0; a fresh id when None.

        Returns:
            The ack, or None when no connection was open or no ack came in time.
        """
        started = time.monotonic()
        if not await self.wait_connected(timeout):
            return None
        envelope_id = envelope_id or str(uuid.uuid4())
        future: asyncio.Future[JSON | None] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = future
        self._next += 1
        ws = self._sockets[self._next % len(self._sockets)]
        envelope = {
            "envelope_id": envelope_id, "type": kind, "payload": payload,
            "accepts_response_payload": kind != "events_api", "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }  # fmt: skip
        try:
            await ws.send_json(envelope)
            # A connection the app closes before it acks (it was reconnecting) gets no answer: the envelope goes
            # again, as a retry, on a connection still open, as Slack does with an envelope it got no ack for.
            while not future.done():
                remaining = timeout - (time.monotonic() - started)
                if remaining <= 0:
                    return None
                await asyncio.wait({future}, timeout=min(0.1, remaining))
                if not future.done() and ws.closed and self._sockets:
                    ws = self._sockets[0]
                    retry_attempt += 1
                    envelope["retry_attempt"], envelope["retry_reason"] = retry_attempt, "timeout"
                    await ws.send_json(envelope)
            acked = future.result()
        except (TimeoutError, ConnectionError, RuntimeError):
            return None
        finally:
            self._acks.pop(envelope_id, None)
        return SocketAck(acked, time.monotonic() - started)

    async def refresh(self) -> int:
        """Ask every connection to reconnect, as Slack does every few hours; return how many were asked."""
        sockets = list(self._sockets)
        for ws in sockets:
            await ws.send_json({"type": "disconnect", "reason": "refresh_requested",
                                "debug_info": {"host": "local-slack"}})  # fmt: skip
            await ws.close()
        return len(sockets)

    async def close_all(self) -> None:
        """Close every connection (the local Slack is stopping)."""
        for ws in list(self._sockets):
            await ws.close()
