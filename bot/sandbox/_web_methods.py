"""The Web API methods of the local Slack, one function a method, answering with Slack's real shapes.

Part of `bot/sandbox/`; called by `web_api.py` with the merged parameters (query string, form and JSON
body). A function returns the success fields (without `ok`) or raises `SlackError` with Slack's error code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.sandbox._models import JSON, Channel, SlackError, View

if TYPE_CHECKING:
    from bot.sandbox.local_slack import LocalSlack

Method = Callable[["LocalSlack", JSON], JSON]

#: Slack refuses messages with more blocks than this (`invalid_blocks`).
MAX_MESSAGE_BLOCKS = 50


def _str(params: JSON, name: str) -> str:
    """Return a parameter as a string ('' when absent), as form-encoded clients send everything."""
    value = params.get(name)
    return "" if value is None else str(value)


def _blocks(params: JSON) -> list[JSON] | None:
    """Return the `blocks` parameter (a JSON string from forms, a list from JSON bodies), None if absent."""
    value: Any = params.get("blocks")
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError:
            raise SlackError("invalid_blocks") from None
    if not isinstance(value, list) or len(value) > MAX_MESSAGE_BLOCKS or not all(isinstance(b, dict) for b in value):
        raise SlackError("invalid_blocks")
    return value


def _postable_channel(slack: LocalSlack, ref: str) -> Channel:
    """Resolve a channel the bot may post to, with the errors Slack gives for the others."""
    if not ref:
        raise SlackError("channel_not_found")
    channel = slack.workspace.resolve_channel(ref)
    if channel.is_archived:
        raise SlackError("is_archived")
    if not channel.is_im and not channel.is_member:
        raise SlackError("not_in_channel")
    return channel


def auth_test(slack: LocalSlack, params: JSON) -> JSON:
    """`auth.test`: who the token belongs to; Bolt calls it once, lazily, on the first request."""
    ws = slack.workspace
    return {
        "url": f"https://{ws.domain}.slack.com/",
        "team": ws.team_name,
        "user": "jit",
        "team_id": ws.team_id,
        "user_id": ws.bot_user_id,
        "bot_id": ws.bot_id,
        "is_enterprise_install": False,
    }


def chat_post_message(slack: LocalSlack, params: JSON) -> JSON:
    """`chat.postMessage`: a channel id, a DM id, a `#name`, or a user id (Slack opens the DM for it)."""
    channel = _postable_channel(slack, _str(params, "channel"))
    blocks, text = _blocks(params), _str(params, "text")
    if not text and not blocks:
        raise SlackError("no_text")
    thread_ts = _str(params, "thread_ts") or None
    message = slack.workspace.post(channel.id, text, blocks, thread_ts=thread_ts)
    return {"channel": channel.id, "ts": message.ts, "message": message.to_api(slack.workspace.app_id)}


def chat_update(slack: LocalSlack, params: JSON) -> JSON:
    """`chat.update`: absent `text`/`blocks` keep their old values; only the bot's own messages change."""
    channel, ts = _str(params, "channel"), _str(params, "ts")
    current = slack.workspace.message(channel, ts)
    if current is None or current.ephemeral_for:
        raise SlackError("message_not_found" if slack.workspace.channel(channel) else "channel_not_found")
    if current.bot_id != slack.workspace.bot_id:
        raise SlackError("cant_update_message")
    text = params.get("text")
    message = slack.workspace.update(channel, ts, None if text is None else str(text), _blocks(params))
    return {"channel": channel, "ts": ts, "text": message.text, "message": message.to_api(slack.workspace.app_id)}


def chat_delete(slack: LocalSlack, params: JSON) -> JSON:
    """`chat.delete`: the bot may delete only its own messages."""
    channel, ts = _str(params, "channel"), _str(params, "ts")
    current = slack.workspace.message(channel, ts)
    if current is None or current.ephemeral_for:
        raise SlackError("message_not_found")
    if current.bot_id != slack.workspace.bot_id:
        raise SlackError("cant_delete_message")
    slack.workspace.delete(channel, ts)
    return {"channel": channel, "ts": ts}


def chat_post_ephemeral(slack: LocalSlack, params: JSON) -> JSON:
    """`chat.postEphemeral`: answers `message_ts`, not `ts`."""
    user_id = _str(params, "user")
    if slack.workspace.user(user_id) is None:
        raise SlackError("user_not_found")
    channel = _postable_channel(slack, _str(params, "channel"))
    if channel.is_im and channel.user != user_id:
        raise SlackError("user_not_in_channel")
    blocks, text = _blocks(params), _str(params, "text")
    if not text and not blocks:
        raise SlackError("no_text")
    message = slack.workspace.post_ephemeral(channel.id, user_id, text, blocks)
    return {"message_ts": message.ts}


def conversations_open(slack: LocalSlack, params: JSON) -> JSON:
    """`conversations.open` for one user: the DM id, with `already_open` when it existed.

    Group DMs (several `users`) are refused with `not_supported`: jit only ever talks to one person.
    """
    users = [u for u in _str(params, "users").split(",") if u]
    if len(users) != 1:
        raise SlackError("users_list_not_supplied" if not users else "not_supported")
    existed = slack.workspace.channel("D" + users[0][1:]) is not None
    channel = slack.workspace.open_dm(users[0])
    answer: JSON = {"channel": {"id": channel.id}}
    if existed:
        answer.update(no_op=True, already_open=True)
    return answer


def users_info(slack: LocalSlack, params: JSON) -> JSON:
    """`users.info`: the fields jit checks (team, deleted, bot, guest) and the email."""
    user = slack.workspace.user(_str(params, "user"))
    if user is None:
        raise SlackError("user_not_found")
    return {"user": user.to_api()}


def users_lookup_by_email(slack: LocalSlack, params: JSON) -> JSON:
    """`users.lookupByEmail`: note the plural error code, `users_not_found`."""
    user = slack.workspace.user_by_email(_str(params, "email"))
    if user is None:
        raise SlackError("users_not_found")
    return {"user": user.to_api()}


def _view_answer(slack: LocalSlack, view: View) -> JSON:
    """Render a stored view the way every `views.*` method answers."""
    ws = slack.workspace
    return {"view": view.to_api(team_id=ws.team_id, app_id=ws.app_id, bot_id=ws.bot_id)}


def _view_param(params: JSON) -> JSON | str:
    """Return the `view` parameter, which arrives as a JSON string (form) or an object (JSON body)."""
    view = params.get("view")
    if not isinstance(view, dict | str):
        raise SlackError("invalid_arguments")
    return view


def views_open(slack: LocalSlack, params: JSON) -> JSON:
    """`views.open`: the trigger id must be fresh (3 s) and unused."""
    view = _view_param(params)
    user_id = slack.redeem_trigger(_str(params, "trigger_id"))
    return _view_answer(slack, slack.workspace.open_view(user_id, view))


def views_update(slack: LocalSlack, params: JSON) -> JSON:
    """`views.update` by `view_id` or `external_id`; a stale `hash` answers `hash_conflict`."""
    view = _view_param(params)
    updated = slack.workspace.update_view(
        _str(params, "view_id") or None,
        view,
        external_id=_str(params, "external_id") or None,
        view_hash=_str(params, "hash") or None,
    )
    return _view_answer(slack, updated)


def views_publish(slack: LocalSlack, params: JSON) -> JSON:
    """`views.publish`: a user's App Home tab."""
    view = _view_param(params)
    published = slack.workspace.publish_home(
        _str(params, "user_id"),
        view,
        view_hash=_str(params, "hash") or None,
    )
    return _view_answer(slack, published)


#: Web API method name -> implementation.
METHODS: dict[str, Method] = {
    "auth.test": auth_test,
    "chat.postMessage": chat_post_message,
    "chat.update": chat_update,
    "chat.delete": chat_delete,
    "chat.postEphemeral": chat_post_ephemeral,
    "conversations.open": conversations_open,
    "users.info": users_info,
    "users.lookupByEmail": users_lookup_by_email,
    "views.open": views_open,
    "views.update": views_update,
    "views.publish": views_publish,
}
