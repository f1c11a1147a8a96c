"""Build the payloads Slack sends the bot: slash commands, button clicks, modal submissions, events.

Part of `bot/sandbox/`; no I/O beyond minting trigger ids and response URLs on the `LocalSlack`. The field
sets follow `docs/slack-protocol.md`; anything a real Slack client could not produce (a button the message
no longer shows, a message the user cannot see) raises `LookupError` unless the caller asks for leniency.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from bot.sandbox._blocks import iter_buttons, iter_inputs
from bot.sandbox._models import JSON, Message, User, View

if TYPE_CHECKING:
    from bot.sandbox.local_slack import LocalSlack

#: Input element type -> the state key Slack reports its value under.
_SELECTED_KEYS = {
    "users_select": "selected_user",
    "conversations_select": "selected_conversation",
    "channels_select": "selected_channel",
    "multi_users_select": "selected_users",
    "multi_conversations_select": "selected_conversations",
    "multi_channels_select": "selected_channels",
    "datepicker": "selected_date",
    "timepicker": "selected_time",
    "datetimepicker": "selected_date_time",
}
_SINGLE_OPTION = {"static_select", "external_select", "radio_buttons"}
_MULTI_OPTION = {"multi_static_select", "multi_external_select", "checkboxes"}


def known_user(slack: LocalSlack, user_id: str) -> User:
    """Return the workspace user a payload is sent as; a typo in a test fails loudly here."""
    user = slack.workspace.user(user_id)
    if user is None:
        raise LookupError(f"no user {user_id!r} in the workspace")
    return user


def _team(slack: LocalSlack, user: User) -> JSON:
    """The `team` object of a payload: the acting user's team, with its domain."""
    return {"id": user.team_id, "domain": slack.workspace.teams.get(user.team_id, user.team_id.lower())}


def _user(user: User) -> JSON:
    """The `user` object of an interaction payload (`username` and `name` are both the handle)."""
    return {"id": user.id, "username": user.name, "name": user.name, "team_id": user.team_id}


def slash_form(slack: LocalSlack, user_id: str, text: str, command: str, channel_id: str | None) -> dict[str, str]:
    """Return the form fields of a slash command typed by a user (in the bot's DM unless a channel is given)."""
    user = known_user(slack, user_id)
    channel = slack.workspace.open_dm(user_id) if channel_id is None else slack.workspace.channel(channel_id)
    if channel is None:
        raise LookupError(f"no channel {channel_id!r} in the workspace")
    team = _team(slack, user)
    return {
        "token": "local-verification-token",
        "team_id": team["id"],
        "team_domain": team["domain"],
        "channel_id": channel.id,
        "channel_name": channel.name,
        "user_id": user.id,
        "user_name": user.name,
        "command": command,
        "text": text,
        "api_app_id": slack.workspace.app_id,
        "is_enterprise_install": "false",
        "response_url": slack.mint_response_url(user_id=user.id, channel_id=channel.id),
        "trigger_id": slack.mint_trigger(user.id),
    }


def _find_button(blocks: list[JSON], action_id: str, value: str | None, where: str) -> tuple[str, JSON]:
    """Return `(block_id, button)` for the button a user would press, or explain what is there instead."""
    buttons = [(block_id, b) for block_id, b in iter_buttons(blocks) if b.get("action_id") == action_id]
    if value is not None:
        buttons = [(block_id, b) for block_id, b in buttons if b.get("value") == value]
    if not buttons:
        shown = [(b.get("action_id"), b.get("value")) for _, b in iter_buttons(blocks)]
        wanted = action_id if value is None else f"{action_id} (value {value!r})"
        raise LookupError(f"no button {wanted} in {where}; buttons shown (action_id, value): {shown}")
    return buttons[0]


def _action(block_id: str, button: JSON) -> JSON:
    """The `actions[0]` entry of a button press, as Slack reports it."""
    return {
        "action_id": button.get("action_id"),
        "block_id": block_id,
        "text": button.get("text"),
        "value": button.get("value"),
        "style": button.get("style"),
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }


def block_actions(
    slack: LocalSlack, user_id: str, message: Message, action_id: str, value: str | None, *, strict: bool
) -> JSON:
    """Return the `block_actions` payload of a user pressing a button on a message.

    Args:
        slack: The local Slack (mints the trigger id and response URL).
        user_id: Who presses.
        message: The message; when `strict`, its current stored version is used, as a live client shows it.
        action_id: The button's action id.
        value: Picks among buttons sharing an action id (one per request in a list); None takes the first.
        strict: Refuse what a real client could not do (a deleted message, one the user cannot see).
    """
    user = known_user(slack, user_id)
    if strict:
        current = slack.workspace.message(message.channel, message.ts)
        if current is None:
            raise LookupError(f"message {message.ts} in {message.channel} no longer exists")
        channel = slack.workspace.channel(current.channel)
        if current.ephemeral_for not in (None, user_id) or (channel and channel.is_im and channel.user != user_id):
            raise LookupError(f"{user_id} cannot see message {message.ts} in {message.channel}")
        message = current
    block_id, button = _find_button(message.blocks, action_id, value, f"message {message.ts}")
    channel = slack.workspace.channel(message.channel)
    payload: JSON = {
        "type": "block_actions",
        "user": _user(user),
        "api_app_id": slack.workspace.app_id,
        "token": "local-verification-token",
        "container": {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": message.ephemeral_for is not None,
        },
        "trigger_id": slack.mint_trigger(user.id),
        "team": _team(slack, user),
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": message.channel, "name": channel.name if channel else ""},
        "state": {"values": {}},
        "response_url": slack.mint_response_url(user_id=user.id, channel_id=message.channel, original_ts=message.ts),
        "actions": [_action(block_id, button)],
    }
    if message.ephemeral_for is None:
        # Slack leaves the message out for ephemeral ones: the app never had it.
        payload["message"] = message.to_api(slack.workspace.app_id)
    return payload


def home_actions(slack: LocalSlack, user_id: str, action_id: str, value: str | None) -> JSON:
    """Return the `block_actions` payload of a user pressing a button in their App Home tab."""
    user = known_user(slack, user_id)
    home = slack.workspace.home_for(user_id)
    if home is None:
        raise LookupError(f"no App Home published for {user_id}")
    block_id, button = _find_button(home.blocks, action_id, value, f"the App Home of {user_id}")
    ws = slack.workspace
    return {
        "type": "block_actions",
        "user": _user(user),
        "api_app_id": ws.app_id,
        "token": "local-verification-token",
        "container": {"type": "view", "view_id": home.id},
        "trigger_id": slack.mint_trigger(user.id),
        "team": _team(slack, user),
        "enterprise": None,
        "is_enterprise_install": False,
        "view": home.to_api(team_id=ws.team_id, app_id=ws.app_id, bot_id=ws.bot_id),
        "actions": [_action(block_id, button)],
    }


def _options(element: JSON) -> list[JSON]:
    """All options of a select, flattening option groups."""
    groups = element.get("option_groups") or []
    return list(element.get("options") or []) + [o for group in groups for o in group.get("options") or []]


def _option(element: JSON, wanted: Any) -> JSON:
    """Return the option whose value (or visible text) is `wanted`, as a user would pick it."""
    for option in _options(element):
        if wanted in (option.get("value"), (option.get("text") or {}).get("text")):
            return dict(option)
    raise LookupError(f"no option {wanted!r} in {element.get('action_id')!r}: {_options(element)}")


def element_state(element: JSON, value: Any) -> JSON:
    """Return the state entry Slack reports for an input element holding `value` (None: left empty)."""
    kind = str(element.get("type"))
    state: JSON = {"type": kind}
    if kind in _SINGLE_OPTION:
        state["selected_option"] = None if value is None else _option(element, value)
    elif kind in _MULTI_OPTION:
        state["selected_options"] = [_option(element, v) for v in (value or [])]
    elif kind in _SELECTED_KEYS:
        state[_SELECTED_KEYS[kind]] = value
    else:
        state["value"] = None if value is None else str(value)
    return state


def _initial_state(element: JSON) -> JSON:
    """Return the state of an element the user did not touch: its initial value, as Slack reports it."""
    state = element_state(element, None)
    if "initial_option" in element:
        state["selected_option"] = element["initial_option"]
    elif "initial_options" in element:
        state["selected_options"] = element["initial_options"]
    elif "initial_value" in element:
        state["value"] = element["initial_value"]
    return state


def form_values(view: View, values: dict[str, Any], *, strict: bool = True) -> JSON:
    """Turn `{block_id: simple value}` into the `state.values` of a submission, for every input block.

    A simple value is text for text inputs, an option's value (or text) for selects, a list for multi
    selects; a dict is taken as the raw `{action_id: state}` entry. Blocks left out keep their initial value.
    """
    state: JSON = {}
    inputs = dict(iter_inputs(view.blocks))
    unknown = set(values) - set(inputs)
    if unknown and strict:
        raise LookupError(f"no input blocks {sorted(unknown)} in view {view.id}; inputs: {sorted(inputs)}")
    for block_id, element in inputs.items():
        action_id = str(element.get("action_id") or f"{block_id}_input")
        if block_id not in values:
            state[block_id] = {action_id: _initial_state(element)}
        elif isinstance(values[block_id], dict):
            state[block_id] = values[block_id]
        else:
            state[block_id] = {action_id: element_state(element, values[block_id])}
    state.update({block_id: values[block_id] for block_id in unknown})
    return state


def view_submission(slack: LocalSlack, user_id: str, view: View, values: dict[str, Any], *, strict: bool) -> JSON:
    """Return the `view_submission` payload of a user pressing Submit on a modal."""
    user = known_user(slack, user_id)
    if strict:
        current = slack.workspace.view(view.id)
        if current is None or current.closed or current.user_id != user_id:
            raise LookupError(f"view {view.id} is not open for {user_id}")
        view = current
    ws = slack.workspace
    rendered = view.to_api(team_id=ws.team_id, app_id=ws.app_id, bot_id=ws.bot_id)
    rendered["state"] = {"values": form_values(view, values, strict=strict)}
    return {
        "type": "view_submission",
        "team": _team(slack, user),
        "user": _user(user),
        "api_app_id": ws.app_id,
        "token": "local-verification-token",
        "trigger_id": slack.mint_trigger(user.id),
        "view": rendered,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def event_callback(slack: LocalSlack, event: JSON) -> JSON:
    """Wrap an event (`{"type": "app_home_opened", ...}`) the way the Events API delivers it."""
    if event.get("type") == "event_callback":
        return event
    ws = slack.workspace
    return {
        "token": "local-verification-token",
        "team_id": ws.team_id,
        "context_team_id": ws.team_id,
        "api_app_id": ws.app_id,
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{secrets.token_hex(5).upper()}",
        "event_time": int(time.time()),
        "authorizations": [{"enterprise_id": None, "team_id": ws.team_id, "user_id": ws.bot_user_id, "is_bot": True}],
        "is_ext_shared_channel": False,
    }


def app_home_opened(slack: LocalSlack, user_id: str) -> JSON:
    """Return the `app_home_opened` event of a user opening the bot's Home tab."""
    known_user(slack, user_id)
    home = slack.workspace.home_for(user_id)
    event: JSON = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": slack.workspace.dm_channel_id(user_id),
        "tab": "home",
        "event_ts": f"{time.time():.6f}",
    }
    if home is not None:
        ws = slack.workspace
        event["view"] = home.to_api(team_id=ws.team_id, app_id=ws.app_id, bot_id=ws.bot_id)
    return event
