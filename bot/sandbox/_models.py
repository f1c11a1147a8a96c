"""The records a local Slack keeps, and how its Web API renders them.

Part of `bot/sandbox/` (the local Slack); plain dataclasses, no I/O. The workspace's records (`User`,
`Channel`, `Message`, `View`) are re-exported by `bot.sandbox.workspace`; the server's (`ApiCall`,
`ResponseUrl`, `ResponsePost`) by `bot.sandbox.local_slack`.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from bot.sandbox._blocks import action_ids, blocks_text, selects_within_limits

JSON = dict[str, Any]


class SlackError(Exception):
    """A Slack API error code (`channel_not_found`, `hash_conflict`, ...), answered as `{"ok": false, "error"}`."""

    def __init__(self, error: str) -> None:
        """Keep the error code as Slack spells it, so the bot sees exactly what real Slack would send."""
        super().__init__(error)
        self.error = error


@dataclass
class User:
    """A workspace member; the flags are the ones jit must refuse (deleted, bot, guest, other team)."""

    id: str
    name: str
    real_name: str
    email: str
    team_id: str
    deleted: bool = False
    is_bot: bool = False
    is_restricted: bool = False
    is_ultra_restricted: bool = False

    def to_api(self) -> JSON:
        """Render the user as `users.info` does; bots have no email in their profile, like on Slack."""
        profile: JSON = {
            "real_name": self.real_name,
            "real_name_normalized": self.real_name,
            "display_name": self.name,
            "display_name_normalized": self.name,
            "team": self.team_id,
        }
        if self.email:
            profile["email"] = self.email
        return {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "real_name": self.real_name,
            "deleted": self.deleted,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "is_admin": False,
            "is_owner": False,
            "is_restricted": self.is_restricted,
            "is_ultra_restricted": self.is_ultra_restricted,
            "tz": "Etc/UTC",
            "profile": profile,
        }


@dataclass
class Channel:
    """A public channel, or the bot's DM with `user` (`is_im`)."""

    id: str
    name: str
    is_im: bool = False
    user: str | None = None
    is_private: bool = False
    is_archived: bool = False
    #: Whether the bot is in the channel; posting to one it is not in answers `not_in_channel`.
    is_member: bool = True


@dataclass
class Message:
    """A message as stored; `ephemeral_for` marks one only that user sees; `edits` counts updates."""

    channel: str
    ts: str
    text: str
    blocks: list[JSON]
    user: str | None = None
    bot_id: str | None = None
    thread_ts: str | None = None
    ephemeral_for: str | None = None
    edits: int = 0

    @property
    def content(self) -> str:
        """Everything a reader sees: the fallback text and the blocks' text, newline-separated."""
        return "\n".join(part for part in (self.text, blocks_text(self.blocks)) if part)

    @property
    def action_ids(self) -> list[str]:
        """The action ids of the buttons the message still shows."""
        return action_ids(self.blocks)

    def to_api(self, app_id: str | None = None) -> JSON:
        """Render the message as `chat.postMessage` and `chat.update` return it."""
        rendered: JSON = {"type": "message", "text": self.text, "ts": self.ts, "blocks": self.blocks}
        if self.bot_id:
            rendered.update(subtype="bot_message", bot_id=self.bot_id, user=self.user)
            if app_id:
                rendered["app_id"] = app_id
        elif self.user:
            rendered["user"] = self.user
        if self.thread_ts:
            rendered["thread_ts"] = self.thread_ts
        return rendered


def _new_hash() -> str:
    """Return a view hash shaped like Slack's ("1732770000.5f3a9c1e"); it changes on every update."""
    return f"{int(time.time())}.{secrets.token_hex(4)}"


@dataclass
class View:
    """A modal or App Home view; `closed` is set once Slack would have taken the modal off the screen."""

    id: str
    hash: str
    user_id: str
    type: str
    callback_id: str
    private_metadata: str
    blocks: list[JSON]
    title: JSON | None = None
    submit: JSON | None = None
    close: JSON | None = None
    external_id: str = ""
    state_values: JSON = field(default_factory=dict)
    root_view_id: str = ""
    previous_view_id: str | None = None
    closed: bool = False

    @classmethod
    def from_api(cls, view: JSON | str, *, view_id: str, user_id: str) -> View:
        """Build a view from what the bot sent (a JSON string or an object), checking what Slack checks."""
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except ValueError:
                raise SlackError("invalid_arguments") from None
        if not isinstance(view, dict) or view.get("type") not in {"modal", "home"}:
            raise SlackError("invalid_arguments")
        blocks = view.get("blocks")
        if not isinstance(blocks, list) or len(blocks) > 100 or (view["type"] == "modal" and not view.get("title")):
            raise SlackError("invalid_arguments")
        if not all(isinstance(b, dict) for b in blocks) or not selects_within_limits(blocks):
            raise SlackError("invalid_arguments")
        return cls(
            id=view_id,
            hash=_new_hash(),
            user_id=user_id,
            type=view["type"],
            callback_id=str(view.get("callback_id", "")),
            private_metadata=str(view.get("private_metadata", "")),
            blocks=blocks,
            title=view.get("title"),
            submit=view.get("submit"),
            close=view.get("close"),
            external_id=str(view.get("external_id", "")),
            root_view_id=view_id,
        )

    @property
    def content(self) -> str:
        """Everything a reader sees in the view's blocks, newline-separated."""
        return blocks_text(self.blocks)

    @property
    def action_ids(self) -> list[str]:
        """The action ids of the buttons the view shows."""
        return action_ids(self.blocks)

    def to_api(self, *, team_id: str, app_id: str, bot_id: str) -> JSON:
        """Render the view as `views.open`/`views.update`/`views.publish` and interaction payloads carry it."""
        return {
            "id": self.id,
            "team_id": team_id,
            "type": self.type,
            "blocks": self.blocks,
            "private_metadata": self.private_metadata,
            "callback_id": self.callback_id,
            "state": {"values": self.state_values},
            "hash": self.hash,
            "title": self.title,
            "clear_on_close": False,
            "notify_on_close": False,
            "close": self.close,
            "submit": self.submit,
            "previous_view_id": self.previous_view_id,
            "root_view_id": self.root_view_id,
            "app_id": app_id,
            "external_id": self.external_id,
            "app_installed_team_id": team_id,
            "bot_id": bot_id,
        }


@dataclass(frozen=True)
class ApiCall:
    """One Web API call as the local Slack saw it, kept for assertions (the token is never kept)."""

    method: str
    params: JSON
    http_method: str
    status: int
    ok: bool
    error: str | None
    time: float


@dataclass
class ResponseUrl:
    """A `response_url` minted for one slash command or click: where it posts, and what it may replace."""

    token: str
    user_id: str
    channel_id: str
    original_ts: str | None
    expires_at: float
    posts: int = 0


@dataclass(frozen=True)
class ResponsePost:
    """One post the bot made to a `response_url`, with the HTTP status it got."""

    token: str
    payload: JSON
    status: int
    time: float = field(default_factory=time.time)
