"""In-memory state of one Slack workspace: users, channels, messages, modals and App Home views.

Part of `bot/sandbox/` (the local Slack); pure state, no I/O and no aiohttp. The Web API server writes it
from its event loop while tests read it from their own thread, so every access goes through one lock and
every query returns a copy. `seed_workspace()` builds the demo workspace from the tables of `bot.sandbox._seed`.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import threading
import time
from collections.abc import Callable

from bot.sandbox._models import JSON, Channel, Message, SlackError, User, View
from bot.sandbox._seed import FLAGS, SEED_BOT, SEED_CHANNELS, SEED_OTHER_TEAMS, SEED_TEAM, SEED_USERS
from bot.sandbox._waiting import Waitable

__all__ = ["Channel", "Message", "SlackError", "User", "View", "Workspace", "seed_workspace"]


class Workspace(Waitable):
    """A Slack workspace held in memory, safe to share between the server's loop and test threads."""

    def __init__(
        self,
        *,
        team_id: str = SEED_TEAM[0],
        domain: str = SEED_TEAM[1],
        team_name: str = SEED_TEAM[2],
        bot_user_id: str = SEED_BOT[0],
        bot_id: str = SEED_BOT[1],
        app_id: str = SEED_BOT[2],
    ) -> None:
        """Create an empty workspace for one team and one installed app.

        Args:
            team_id: The team the bot is installed in.
            domain: The team's domain (`https://{domain}.slack.com/`).
            team_name: The team's display name, as `auth.test` reports it.
            bot_user_id: The bot's user id (`auth.test` `user_id`).
            bot_id: The bot's id, stamped on every message the bot posts.
            app_id: The app id, sent as `api_app_id` in every payload.
        """
        self.team_id, self.domain, self.team_name = team_id, domain, team_name
        self.bot_user_id, self.bot_id, self.app_id = bot_user_id, bot_id, app_id
        self.teams: dict[str, str] = {team_id: domain}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._users: dict[str, User] = {}
        self._channels: dict[str, Channel] = {}
        self._messages: dict[tuple[str, str], Message] = {}
        self._views: dict[str, View] = {}
        self._homes: dict[str, View] = {}
        self._last_ts_us = 0
        self._view_seq = itertools.count(1)

    # -- writing -------------------------------------------------------------------------------------

    def add_user(self, user: User) -> User:
        """Add (or replace) a user; the team is registered so payloads can name its domain."""
        with self._changed:
            self._users[user.id] = user
            self.teams.setdefault(user.team_id, user.team_id.lower())
            self._changed.notify_all()
        return user

    def add_channel(self, channel: Channel) -> Channel:
        """Add (or replace) a channel."""
        with self._changed:
            self._channels[channel.id] = channel
            self._changed.notify_all()
        return channel

    def open_dm(self, user_id: str) -> Channel:
        """Return the bot's DM with a user, creating it on first use; its id is stable per user."""
        with self._changed:
            if user_id not in self._users:
                raise SlackError("user_not_found")
            dm_id = "D" + user_id[1:]
            if dm_id not in self._channels:
                self._channels[dm_id] = Channel(dm_id, "directmessage", is_im=True, user=user_id)
            return copy.deepcopy(self._channels[dm_id])

    def post(
        self,
        channel: str,
        text: str = "",
        blocks: list[JSON] | None = None,
        *,
        user: str | None = None,
        thread_ts: str | None = None,
        ephemeral_for: str | None = None,
    ) -> Message:
        """Store a message in a channel (by id) and return a copy; without `user` the bot posts it."""
        with self._changed:
            if channel not in self._channels:
                raise SlackError("channel_not_found")
            from_bot = user is None or user == self.bot_user_id
            message = Message(
                channel=channel,
                ts=self._next_ts(),
                text=text,
                blocks=copy.deepcopy(blocks or []),
                user=self.bot_user_id if from_bot else user,
                bot_id=self.bot_id if from_bot else None,
                thread_ts=thread_ts,
                ephemeral_for=ephemeral_for,
            )
            self._messages[(channel, message.ts)] = message
            self._changed.notify_all()
            return copy.deepcopy(message)

    def post_ephemeral(self, channel: str, user: str, text: str = "", blocks: list[JSON] | None = None) -> Message:
        """Store a bot message that only `user` sees in `channel`."""
        return self.post(channel, text, blocks, ephemeral_for=user)

    def update(self, channel: str, ts: str, text: str | None = None, blocks: list[JSON] | None = None) -> Message:
        """Replace a message's text and/or blocks; a `None` argument keeps the old value, as `chat.update` does."""
        with self._changed:
            message = self._messages.get((channel, ts))
            if message is None:
                raise SlackError("message_not_found")
            if text is not None:
                message.text = text
            if blocks is not None:
                message.blocks = copy.deepcopy(blocks)
            message.edits += 1
            self._changed.notify_all()
            return copy.deepcopy(message)

    def delete(self, channel: str, ts: str) -> None:
        """Remove a message, as `chat.delete` or a `delete_original` response does."""
        with self._changed:
            if self._messages.pop((channel, ts), None) is None:
                raise SlackError("message_not_found")
            self._changed.notify_all()

    def open_view(self, user_id: str, view: JSON | str) -> View:
        """Open a modal for a user (the caller has already checked the trigger id)."""
        with self._changed:
            opened = View.from_api(view, view_id=f"V{next(self._view_seq):08X}", user_id=user_id)
            self._views[opened.id] = opened
            self._changed.notify_all()
            return copy.deepcopy(opened)

    def update_view(
        self, view_id: str | None, view: JSON | str, *, external_id: str | None = None, view_hash: str | None = None
    ) -> View:
        """Replace an open view's content, refusing a stale `hash` as Slack does (`hash_conflict`)."""
        with self._changed:
            current = self._find_view(view_id, external_id)
            if view_hash is not None and view_hash != current.hash:
                raise SlackError("hash_conflict")
            updated = View.from_api(view, view_id=current.id, user_id=current.user_id)
            updated.root_view_id, updated.previous_view_id = current.root_view_id, current.previous_view_id
            target = self._homes if current.type == "home" else self._views
            target[current.user_id if current.type == "home" else current.id] = updated
            self._changed.notify_all()
            return copy.deepcopy(updated)

    def close_view(self, view_id: str) -> None:
        """Mark a modal closed (a submission acked without errors, or `response_action: clear`)."""
        with self._changed:
            if view_id in self._views:
                self._views[view_id].closed = True
                self._changed.notify_all()

    def publish_home(self, user_id: str, view: JSON | str, *, view_hash: str | None = None) -> View:
        """Publish a user's App Home tab; the view id stays the same across publishes."""
        with self._changed:
            if user_id not in self._users:
                raise SlackError("user_not_found")
            old = self._homes.get(user_id)
            if old is not None and view_hash is not None and view_hash != old.hash:
                raise SlackError("hash_conflict")
            view_id = old.id if old else f"V{next(self._view_seq):08X}"
            self._homes[user_id] = View.from_api(view, view_id=view_id, user_id=user_id)
            self._changed.notify_all()
            return copy.deepcopy(self._homes[user_id])

    # -- reading -------------------------------------------------------------------------------------

    def user(self, user_id: str) -> User | None:
        """Return a copy of a user, or None."""
        with self._lock:
            return copy.deepcopy(self._users.get(user_id))

    def user_by_email(self, email: str) -> User | None:
        """Return the user with this email (case-insensitive), or None."""
        with self._lock:
            found = [u for u in self._users.values() if u.email and u.email.lower() == email.lower()]
            return copy.deepcopy(found[0]) if found else None

    def channel(self, channel_id: str) -> Channel | None:
        """Return a copy of a channel, or None."""
        with self._lock:
            return copy.deepcopy(self._channels.get(channel_id))

    def resolve_channel(self, ref: str) -> Channel:
        """Resolve what `chat.postMessage` accepts: a channel or DM id, a user id (opens the DM), a `#name`."""
        with self._lock:
            if ref in self._channels:
                return copy.deepcopy(self._channels[ref])
            if ref in self._users:
                return self.open_dm(ref)
            by_name = [c for c in self._channels.values() if not c.is_im and c.name == ref.lstrip("#")]
            if by_name:
                return copy.deepcopy(by_name[0])
            raise SlackError("channel_not_found")

    def message(self, channel: str, ts: str) -> Message | None:
        """Return the current version of a message, or None once it is deleted."""
        with self._lock:
            return copy.deepcopy(self._messages.get((channel, ts)))

    def messages(self, channel: str) -> list[Message]:
        """Return the messages everyone in a channel sees (no ephemerals), oldest first."""
        with self._lock:
            return [copy.deepcopy(m) for m in self._messages.values() if m.channel == channel and not m.ephemeral_for]

    def dm_channel_id(self, user_id: str) -> str:
        """Return the id of the bot's DM with a user (opening it if needed)."""
        return self.open_dm(user_id).id

    def dms_to(self, user_id: str) -> list[Message]:
        """Return what the bot posted in its DM with a user, oldest first."""
        return [m for m in self.messages(self.dm_channel_id(user_id)) if m.bot_id]

    def ephemerals(self, user_id: str) -> list[Message]:
        """Return the ephemeral messages shown to a user, in any channel, oldest first."""
        with self._lock:
            return [copy.deepcopy(m) for m in self._messages.values() if m.ephemeral_for == user_id]

    def views_for(self, user_id: str, *, include_closed: bool = True) -> list[View]:
        """Return the modals opened for a user, oldest first (`View.closed` tells which are gone)."""
        with self._lock:
            views = [v for v in self._views.values() if v.user_id == user_id and (include_closed or not v.closed)]
            return copy.deepcopy(views)

    def view(self, view_id: str) -> View | None:
        """Return a modal or App Home view by id, or None."""
        with self._lock:
            found = self._views.get(view_id) or next((h for h in self._homes.values() if h.id == view_id), None)
            return copy.deepcopy(found)

    def home_for(self, user_id: str) -> View | None:
        """Return the App Home view last published for a user, or None."""
        with self._lock:
            return copy.deepcopy(self._homes.get(user_id))

    def find_message(self, predicate: Callable[[Message], bool]) -> Message | None:
        """Return the newest message (ephemerals included) that satisfies `predicate`, or None."""
        with self._lock:
            for message in reversed(list(self._messages.values())):
                if predicate(message):
                    return copy.deepcopy(message)
            return None

    def wait_for_message(self, predicate: Callable[[Message], bool], timeout: float = 5.0) -> Message:
        """Block until a message satisfying `predicate` exists and return the newest one."""
        return self.wait_for(lambda: self.find_message(predicate), timeout)

    # -- history across restarts ---------------------------------------------------------------------

    def history(self) -> JSON:
        """What a restart keeps, as JSON-ready data: the DMs opened and the messages everyone sees.

        Ephemeral messages, modals and App Home tabs are left out, as Slack does not show them again either.
        """
        with self._lock:
            return {
                "dms": [c.user for c in self._channels.values() if c.is_im and c.user],
                "messages": [dataclasses.asdict(m) for m in self._messages.values() if not m.ephemeral_for],
            }

    def restore_history(self, saved: JSON) -> int:
        """Put back what `history()` returned and return how many messages came back.

        A DM of a user this workspace does not have, or a message in a channel it does not have, is passed
        over; message timestamps stay as they were, and new ones are later than every restored one.

        Raises:
            ValueError: `saved` is not what `history()` returns.
        """
        if not isinstance(saved, dict) or not isinstance(saved.get("dms"), list):
            raise ValueError("not a page history")
        fields = {f.name for f in dataclasses.fields(Message)}
        messages = saved.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) and set(m) <= fields for m in messages):
            raise ValueError("not a page history")
        restored = [Message(**m) for m in messages]
        if not all(isinstance(m.channel, str) and isinstance(m.ts, str) for m in restored):
            raise ValueError("not a page history")
        with self._changed:
            for user_id in saved["dms"]:
                if isinstance(user_id, str) and user_id in self._users:
                    self.open_dm(user_id)
            kept = [m for m in restored if m.channel in self._channels and not m.ephemeral_for]
            for message in sorted(kept, key=lambda m: float(m.ts)):
                self._messages[(message.channel, message.ts)] = message
                seconds, _, micros = message.ts.partition(".")
                self._last_ts_us = max(self._last_ts_us, int(seconds) * 1_000_000 + int(micros or 0))
            self._changed.notify_all()
            return len(kept)

    # -- internals -----------------------------------------------------------------------------------

    def _next_ts(self) -> str:
        """Return a message timestamp like "1732770000.000100", strictly increasing as Slack's are."""
        self._last_ts_us = max(time.time_ns() // 1000, self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    def _find_view(self, view_id: str | None, external_id: str | None) -> View:
        """Return the stored view addressed by id or external id, or raise `not_found`."""
        for view in [*self._views.values(), *self._homes.values()]:
            if (view_id and view.id == view_id) or (external_id and view.external_id == external_id):
                return view
        raise SlackError("not_found")


def seed_workspace() -> Workspace:
    """Build the demo workspace of `SEED_USERS` and `SEED_CHANNELS`, used by `jit sandbox` and the e2e tests."""
    workspace = Workspace()
    workspace.teams.update(SEED_OTHER_TEAMS)
    for user_id, name, real_name, email, team_id, flags, _role in SEED_USERS:
        options = {FLAGS[flag]: True for flag in flags.split(",") if flag}
        workspace.add_user(User(user_id, name, real_name, email, team_id, **options))
    for channel_id, channel_name in SEED_CHANNELS:
        workspace.add_channel(Channel(channel_id, channel_name))
    return workspace
