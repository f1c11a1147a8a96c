"""What Slack sends, as the edge checks it before Bolt reads a byte: the shapes of its bodies and payloads.

Bolt answers 500 to much that Slack never sends (a JSON array, a ``team`` that is a number, a view without a
type). :func:`slack_body` holds a signed HTTP body, and :func:`check_socket_payload` a Socket Mode envelope's
payload, to the shapes Slack documents (``docs/slack-protocol.md``); what does not fit is a :class:`Refusal`.
Used by the HTTP guard (:mod:`bot.app`) and the Socket Mode adapter (:mod:`bot.socket_mode`) alike, below both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

#: A slash command's answer when the same one arrived before (HTTP replay, or an envelope Slack sent again).
REPLAYED_TEXT = 'This `/jit` command arrived twice; it was acted on once. `/jit list` shows where things stand.'
#: A slash command's answer when Redis cannot say whether it arrived before.
UNAVAILABLE_TEXT = ':warning: jit cannot reach its store right now, so nothing was done. Try again in a minute.'


class Refusal(Exception):
    """A request the edge refuses: the HTTP status and why (the answer's ``error`` and the log line's ``why``)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status, self.why = status, why


# -- what Slack sends --------------------------------------------------------------------------------
# Each check is a predicate over a JSON value. A field Slack may leave out may be missing; when present it
# has the type Slack gives it. Strings Slack bounds (action_id, callback_id, value...) are held to Slack's
# documented limits; IDs look like Slack's (U0…, T0…, C0…, W0…). Nested parts jit never reads are not
# looked at. ``docs/slack-protocol.md`` lists the fields.
Check = Callable[[Any], bool]
_ID = re.compile(r'[A-Z0-9][A-Z0-9_]{1,31}')
_TRIGGER = re.compile(r'[0-9A-Za-z._-]{1,255}')


def _text(limit: int) -> Check:
    return lambda v: isinstance(v, str) and len(v) <= limit


def _is_id(v: Any) -> bool:
    return isinstance(v, str) and _ID.fullmatch(v) is not None


def _of(kind: type) -> Check:
    return lambda v: isinstance(v, kind)


def _maybe(check: Check) -> Check:
    return lambda v: v is None or check(v)


def _obj(*required: str, **fields: Check) -> Check:
    """A JSON object with the ``required`` keys, whose ``fields`` (when present) pass their checks."""

    def check(v: Any) -> bool:
        return (isinstance(v, dict) and all(k in v for k in required)
                and all(c(v[k]) for k, c in fields.items() if k in v))  # fmt: skip

    return check


def _list(item: Check, *, min_len: int = 0) -> Check:
    return lambda v: isinstance(v, list) and len(v) >= min_len and all(item(x) for x in v)


def _map(value: Check) -> Check:
    return lambda v: isinstance(v, dict) and all(isinstance(k, str) and value(x) for k, x in v.items())


def _either(*checks: Check) -> Check:
    return lambda v: any(c(v) for c in checks)


_STR, _NAME, _DICT = _text(4000), _text(255), _obj()
#: A block of a view or a message: its ID and type are names when present (listeners look blocks up by ID).
_BLOCK = _obj(block_id=_NAME, type=_NAME)
_TEAM = _maybe(_obj(id=_is_id, enterprise_id=_maybe(_is_id), domain=_STR))
_STATE = _obj(values=_map(_map(_obj(type=_NAME, value=_maybe(_text(3000)),
                                    selected_option=_maybe(_obj('value', value=_text(2000)))))))  # fmt: skip
_VIEW = _obj('id', 'type', id=_NAME, type=_NAME, callback_id=_NAME, private_metadata=_text(3000), hash=_NAME,
             team_id=_maybe(_is_id), app_installed_team_id=_maybe(_is_id), blocks=_list(_BLOCK),
             state=_STATE)  # fmt: skip
_INTERACTION: dict[str, Check] = dict(
    token=_STR, api_app_id=_STR, trigger_id=lambda v: isinstance(v, str) and _TRIGGER.fullmatch(v) is not None,
    response_url=_STR, team=_TEAM, enterprise=_maybe(_obj(id=_is_id)), is_enterprise_install=_maybe(_of(bool)),
    user=_obj('id', id=_is_id, team_id=_is_id, username=_STR, name=_STR),
    channel=_maybe(_obj(id=_is_id, name=_STR)),
    container=_obj(type=_NAME, channel_id=_is_id, message_ts=_NAME, view_id=_NAME, is_ephemeral=_of(bool)),
    message=_obj(ts=_NAME, text=_text(40_000), blocks=_list(_BLOCK), user=_is_id, bot_id=_is_id),
    state=_STATE, view=_VIEW, callback_id=_NAME, action_id=_NAME, block_id=_NAME, value=_text(2000),
    response_urls=_list(_obj(response_url=_STR, block_id=_NAME, action_id=_NAME, channel_id=_is_id)),
    actions=_list(_obj('action_id', action_id=_NAME, block_id=_NAME, value=_text(2000), type=_NAME,
                       action_ts=_NAME, selected_option=_maybe(_obj('value', value=_text(2000))))),
)  # fmt: skip
#: The interaction types of Block Kit; jit answers block_actions and view_submission, Bolt 404s the others.
_PAYLOADS: dict[str, Check] = {
    'block_actions': _obj('user', 'actions', 'trigger_id', **_INTERACTION),
    'view_submission': _obj('user', 'view', 'trigger_id', **_INTERACTION),
    'view_closed': _obj('user', 'view', **_INTERACTION),
    'shortcut': _obj('user', 'callback_id', 'trigger_id', **_INTERACTION),
    'message_action': _obj('user', 'callback_id', 'trigger_id', **_INTERACTION),
    'block_suggestion': _obj('user', 'action_id', **_INTERACTION),
}
_EVENTS: dict[str, Check] = {
    'url_verification': _obj('challenge', challenge=_STR, token=_STR),
    'app_rate_limited': _obj('team_id', team_id=_is_id, api_app_id=_STR, minute_rate_limited=_of(int)),
    'event_callback': _obj(
        'team_id', 'event', team_id=_is_id, api_app_id=_STR, event_id=_NAME, event_time=_of(int),
        token=_STR, enterprise_id=_maybe(_is_id), is_ext_shared_channel=_of(bool),
        authorizations=_list(_obj(team_id=_maybe(_is_id), user_id=_maybe(_is_id), enterprise_id=_maybe(_is_id),
                                  is_bot=_of(bool), is_enterprise_install=_of(bool))),
        event=_obj('type', type=_NAME, subtype=_NAME, user=_either(_is_id, _obj('id', id=_is_id)),
                   channel=_either(_is_id, _obj('id', id=_is_id)), team=_is_id, user_team=_is_id, tab=_NAME,
                   event_ts=_NAME, view=_VIEW, message=_DICT, previous_message=_DICT),
    ),
}  # fmt: skip
#: A slash command's form: every field is a string; these must be there and look like Slack's.
_COMMAND = _obj('command', 'user_id', 'team_id', 'trigger_id', command=lambda v: _NAME(v) and v.startswith('/'),
                user_id=_is_id, team_id=_is_id, channel_id=_is_id, enterprise_id=_is_id,
                trigger_id=_INTERACTION['trigger_id'])  # fmt: skip


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than any Slack payload
        raise Refusal(400, 'body is not a Slack payload: JSON does not parse') from None
    if not isinstance(value, dict):
        raise Refusal(400, 'body is not a Slack payload: not a JSON object')
    return value


def _typed(body: dict[str, Any], checks: dict[str, Check], what: str) -> None:
    kind = body.get('type')
    check = checks.get(kind) if isinstance(kind, str) else None
    if check is None:
        raise Refusal(400, f'body is not a Slack payload: not a type of {what} Slack sends')
    if not check(body):
        raise Refusal(400, f'body is not a Slack payload: fields missing or of the wrong type for {kind}')


def slack_body(raw: bytes, content_type: str) -> tuple[str, dict[str, str] | None]:
    """The verified body as Bolt will read it: its text, and a slash command's form (None for JSON bodies).

    Bolt reads a body as JSON when the content type is JSON *or* it starts with ``{``, and as an
    interaction when the word ``payload`` appears anywhere; the checks follow the same reading, and
    require the content type Slack sends with each (JSON for the Events API, a form otherwise).

    Raises:
        Refusal: 400, the body is not what Slack sends.
    """
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError:
        raise Refusal(400, 'body is not a Slack payload: not UTF-8') from None
    media = content_type.split(';')[0].strip().lower()
    if media == 'application/json' or text.startswith('{'):
        if media != 'application/json' or not text.startswith('{'):
            raise Refusal(400, 'body is not a Slack payload: JSON goes with Content-Type application/json')
        _typed(_json_object(text), _EVENTS, 'event')
        return text, None
    if media != 'application/x-www-form-urlencoded':
        raise Refusal(400, 'body is not a Slack payload: Content-Type is not a form')
    form = dict(parse_qsl(text, keep_blank_values=True))
    if 'payload' in form:
        _typed(_json_object(form['payload']), _PAYLOADS, 'interaction')
        return text, None
    if not _COMMAND(form):
        raise Refusal(400, 'body is not a Slack payload: not a slash command')
    return text, form


def check_socket_payload(kind: Any, payload: Any) -> None:
    """Hold a Socket Mode envelope's payload to the same shapes as the HTTP body it stands for.

    Raises:
        Refusal: 400, the payload is not what Slack sends with that envelope type.
    """
    if not isinstance(payload, dict):
        raise Refusal(400, 'body is not a Slack payload: not a JSON object')
    if kind == 'slash_commands':
        if not (_COMMAND(payload) and all(isinstance(v, str) for v in payload.values())):
            raise Refusal(400, 'body is not a Slack payload: not a slash command')
    elif kind == 'interactive':
        _typed(payload, _PAYLOADS, 'interaction')
    elif kind == 'events_api':
        _typed(payload, _EVENTS, 'event')
    else:
        raise Refusal(400, 'not an envelope type Slack sends')
