"""What the driver sends the bot and what Slack does with the answers: signed requests and their acks.

Part of `bot/sandbox/`; the common half of `Driver` and `AsyncDriver` (`bot.sandbox.driver`), which only move
the bytes. `DriverBase` builds each request as Slack would (signed, form- or JSON-encoded, with its Socket
Mode twin) and applies an ack to the workspace as Slack does; `Reply` is the bot's answer as a test reads it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from bot.sandbox import _payloads
from bot.sandbox._models import JSON, Message, SlackError, View

if TYPE_CHECKING:
    from bot.sandbox.local_slack import LocalSlack

#: Slack gives up on an ack after this many seconds and shows the user an error.
ACK_TIMEOUT = 3.0
#: How long the driver itself waits for the bot before failing the test.
HTTP_TIMEOUT = 30.0
_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Reply:
    """The bot's HTTP answer to one request Slack sent it."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None when it is empty or not JSON (a plain-text ack)."""
        try:
            return json.loads(self.body) if self.body.lstrip().startswith(("{", "[")) else None
        except ValueError:
            return None

    @property
    def text(self) -> str | None:
        """The text the bot acked with: Bolt sends `ack("hi")` as a plain-text body, richer acks as JSON."""
        parsed = self.json
        if isinstance(parsed, dict):
            return parsed.get("text")
        return self.body or None

    @property
    def response_action(self) -> str | None:
        """A modal ack's `response_action` (`errors`, `update`, `push`, `clear`), if any."""
        parsed = self.json
        return parsed.get("response_action") if isinstance(parsed, dict) else None

    @property
    def errors(self) -> dict[str, str]:
        """A modal ack's field errors, `{block_id: message}` (empty when there are none)."""
        parsed = self.json
        return dict(parsed.get("errors") or {}) if isinstance(parsed, dict) else {}

    @property
    def acked_in_time(self) -> bool:
        """Whether the bot answered 200 within Slack's 3-second limit."""
        return self.status == 200 and self.elapsed <= ACK_TIMEOUT


@dataclass(frozen=True)
class Outgoing:
    """A signed request ready to post, and what Slack does with the answer."""

    body: bytes
    headers: dict[str, str]
    after: Callable[[Reply], None] = lambda reply: None
    #: The same request as a Socket Mode envelope: (type, payload); None for raw HTTP bytes.
    envelope: tuple[str, JSON] | None = None


def _token_of(response_url: str) -> str:
    """The token at the end of a minted `response_url`."""
    return response_url.rsplit("/", 1)[-1]


class DriverBase:
    """Builds and signs the requests; subclasses only move bytes."""

    def __init__(self, slack: LocalSlack) -> None:
        """Drive the bot configured on this `LocalSlack` (its `app_url` and `signing_secret`)."""
        self.slack = slack

    @property
    def url(self) -> str:
        """Where Slack posts: the bot's `/slack/events` URL."""
        if not self.slack.app_url:
            raise RuntimeError("LocalSlack.app_url is not set: tell the local Slack where the bot listens")
        return self.slack.app_url

    def sign(self, body: bytes | str, timestamp: int | str | None = None) -> dict[str, str]:
        """Return Slack's signature headers for a body; pass an old `timestamp` to forge a stale request."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = SignatureVerifier(self.slack.signing_secret).generate_signature(timestamp=stamp, body=body)
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": str(signature)}

    def _signed(
        self, body: str, content_type: str, after: Callable[[Reply], None] | None, envelope: tuple[str, JSON]
    ) -> Outgoing:
        """Encode, sign and pair a body with what to do with the bot's answer (and its Socket Mode twin)."""
        raw = body.encode()
        headers = {"Content-Type": content_type, **self.sign(raw)}
        return Outgoing(raw, headers, after or (lambda reply: None), envelope)

    @property
    def over_socket(self) -> bool:
        """Whether requests go as Socket Mode envelopes rather than HTTP posts."""
        return self.slack.transport == "socket"

    @staticmethod
    def _ack_reply(ack: Any) -> Reply:
        """A Socket Mode ack read as the HTTP answer it stands for (status 0: no ack came)."""
        if ack is None:
            return Reply(0, "", {}, HTTP_TIMEOUT)
        body = json.dumps(ack.payload) if ack.payload else ""
        return Reply(200, body, {"Content-Type": "application/json"}, ack.elapsed)

    def _slash(self, user_id: str, text: str, command: str, channel_id: str | None) -> Outgoing:
        """A slash command; its ack is shown to the user afterwards."""
        form = _payloads.slash_form(self.slack, user_id, text, command, channel_id)
        token = _token_of(form["response_url"])
        after = lambda reply: self._show_slash_ack(reply, form, token)  # noqa: E731
        return self._signed(urlencode(form), _FORM, after, ("slash_commands", dict(form)))

    def _interaction(self, payload: JSON, after: Callable[[Reply], None] | None = None) -> Outgoing:
        """An interaction: Slack form-encodes it as a single `payload` field holding JSON."""
        return self._signed(urlencode({"payload": json.dumps(payload)}), _FORM, after, ("interactive", payload))

    def _click(self, user_id: str, message: Message, action_id: str, value: str | None, strict: bool) -> Outgoing:
        """A button press on a message."""
        return self._interaction(_payloads.block_actions(self.slack, user_id, message, action_id, value, strict=strict))

    def _click_home(self, user_id: str, action_id: str, value: str | None) -> Outgoing:
        """A button press in the App Home tab."""
        return self._interaction(_payloads.home_actions(self.slack, user_id, action_id, value))

    def _submit(self, user_id: str, view: View, values: dict[str, Any] | None, strict: bool) -> Outgoing:
        """A modal submission; its ack changes the modal stack afterwards."""
        payload = _payloads.view_submission(self.slack, user_id, view, values or {}, strict=strict)
        view_id = payload["view"]["id"]
        return self._interaction(payload, lambda reply: self._apply_view_ack(reply, user_id, view_id))

    def _event(self, event: JSON) -> Outgoing:
        """An Events API delivery: JSON, not form-encoded."""
        body = _payloads.event_callback(self.slack, event)
        return self._signed(json.dumps(body), "application/json", None, ("events_api", body))

    def _show_slash_ack(self, reply: Reply, form: dict[str, str], token: str) -> None:
        """Show a slash command's ack as Slack does: ephemeral by default, in the channel when asked."""
        parsed = reply.json if isinstance(reply.json, dict) else {}
        text, blocks = reply.text or "", parsed.get("blocks")
        if reply.status != 200 or not (text or blocks):
            return
        workspace, channel = self.slack.workspace, form["channel_id"]
        if parsed.get("response_type") == "in_channel":
            message = workspace.post(channel, text, blocks)
        else:
            message = workspace.post_ephemeral(channel, form["user_id"], text, blocks)
        self.slack.set_response_original(token, message.ts)

    def _apply_view_ack(self, reply: Reply, user_id: str, view_id: str) -> None:
        """Change the modal stack as Slack does for each kind of submission ack."""
        workspace, action = self.slack.workspace, reply.response_action
        if reply.status != 200 or action == "errors":
            return
        parsed = reply.json if isinstance(reply.json, dict) else {}
        try:
            if action == "update":
                workspace.update_view(view_id, parsed["view"])
            elif action == "push":
                workspace.open_view(user_id, parsed["view"])
            elif action == "clear":
                for view in workspace.views_for(user_id, include_closed=False):
                    workspace.close_view(view.id)
            else:
                workspace.close_view(view_id)
        except (KeyError, SlackError):
            # Slack shows the user a generic error and keeps the modal; so does the local Slack.
            return
