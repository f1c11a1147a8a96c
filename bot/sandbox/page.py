"""The `jit sandbox` web page: a minimal Slack in the browser, served by the local Slack's aiohttp app.

Part of `bot/sandbox/`. `add_page_routes` adds `GET /` (one self-contained HTML page) and a small JSON API
the page polls and posts to: `GET /sandbox/state?user=U...` (what that user sees), `POST /sandbox/command`
(type `/jit ...`), `POST /sandbox/click` (press a button on a stored message) and `POST /sandbox/submit`
(submit an open modal). Every action goes through `LocalSlack.async_driver`, so the bot receives exactly
the signed requests Slack would send. `attach_webhook` lets the page show the demo webhook's grants.

Outside Slack: `attach_mailbox` gives each user an Inbox (the mail the sandbox's SMTP server received for their
email, `mailbox.py`; `GET /sandbox/mail/{id}` reads one), and `attach_teams` adds the Teams channels' webhook
(`POST /sandbox/teams/{channel}?sig=...`, `teams_channel.py`) and their cards to the state.

Other sites: every route answers only to a loopback `Host`, and the POSTs only to `application/json` with no
`Origin` or the page's own (`_loopback.py`, a middleware of the whole server), so the page's JavaScript posts JSON.
"""

from __future__ import annotations

import functools
import time
import weakref
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.sandbox._blocks import iter_buttons, iter_inputs
from bot.sandbox._models import JSON, Message, View
from bot.sandbox._seed import SEED_USERS
from bot.sandbox.teams_channel import card_items, is_message

if TYPE_CHECKING:
    from bot.sandbox.local_slack import LocalSlack
    from bot.sandbox.mailbox import Mailbox
    from bot.sandbox.teams_channel import TeamsChannels
    from bot.sandbox.webhook_target import WebhookTarget

__all__ = ["add_page_routes", "attach_mailbox", "attach_teams", "attach_webhook", "user_state"]

#: The public channels every user of the page sees, besides their DM with the bot.
PUBLIC_CHANNELS = ("C0AUDIT", "C0ACCESS")
#: How many webhook calls the state carries (the newest ones).
_MAX_CALLS = 20
#: How many emails of a user's Inbox, and how many cards of a Teams channel, the state carries (the newest).
_MAX_MAILS, _MAX_CARDS = 100, 50

_WEBHOOKS: weakref.WeakKeyDictionary[LocalSlack, WebhookTarget] = weakref.WeakKeyDictionary()
_MAILBOXES: weakref.WeakKeyDictionary[LocalSlack, Mailbox] = weakref.WeakKeyDictionary()
_TEAMS: weakref.WeakKeyDictionary[LocalSlack, TeamsChannels] = weakref.WeakKeyDictionary()


def attach_webhook(slack: LocalSlack, target: WebhookTarget) -> None:
    """Show `target`'s active grants and calls on `slack`'s page (call before the page is used)."""
    _WEBHOOKS[slack] = target


def attach_mailbox(slack: LocalSlack, mailbox: Mailbox) -> None:
    """Give each user of `slack`'s page an Inbox: the mail `mailbox` received for their email."""
    _MAILBOXES[slack] = mailbox


def attach_teams(slack: LocalSlack, teams: TeamsChannels) -> None:
    """Serve `teams`' webhooks on `slack`'s server and show their cards on the page."""
    _TEAMS[slack] = teams


def add_page_routes(app: web.Application, slack: LocalSlack) -> None:
    """Add the sandbox page and its JSON API to the local Slack's application."""
    page = _Page(slack)
    app.router.add_get("/", page.index)
    app.router.add_get("/sandbox/state", page.state)
    app.router.add_post("/sandbox/command", page.command)
    app.router.add_post("/sandbox/click", page.click)
    app.router.add_post("/sandbox/submit", page.submit)
    app.router.add_get("/sandbox/mail/{id}", page.mail)
    app.router.add_post("/sandbox/teams/{channel}", page.teams_post)


# -- rendering the workspace for one user ------------------------------------------------------------


def _text(obj: Any) -> str:
    """The string of a text object or a bare string."""
    if isinstance(obj, dict):
        return str(obj.get("text", ""))
    return obj if isinstance(obj, str) else ""


def _block_lines(blocks: list[JSON]) -> list[str]:
    """The readable text of each block (buttons excluded: they are rendered as buttons)."""
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind in {"section", "header"}:
            lines.append(_text(block.get("text")))
            lines.extend(_text(f) for f in block.get("fields") or [])
        elif kind == "context":
            lines.append("  ".join(_text(e) for e in block.get("elements") or [] if isinstance(e, dict)))
        elif kind == "divider":
            lines.append("---")
        elif kind == "rich_text":
            lines.append("".join(_rich_text(block)))
    return [line for line in lines if line]


def _rich_text(element: Any) -> list[str]:
    """The leaves of a rich text element, in order."""
    if not isinstance(element, dict):
        return []
    parts = [str(element["text"])] if isinstance(element.get("text"), str) else []
    for child in element.get("elements") or []:
        parts.extend(_rich_text(child))
    return parts


def _buttons(blocks: list[JSON]) -> list[JSON]:
    """The buttons a user can press, with what the page needs to press them."""
    return [
        {
            "action_id": str(button.get("action_id", "")),
            "value": button.get("value"),
            "text": _text(button.get("text")),
            "style": button.get("style") or "",
        }
        for _, button in iter_buttons(blocks)
    ]


def _message(message: Message) -> JSON:
    """A message as the page shows it."""
    return {
        "ts": message.ts,
        "channel": message.channel,
        "user": message.user,
        "from_bot": bool(message.bot_id),
        "ephemeral": bool(message.ephemeral_for),
        "text": message.text,
        "lines": _block_lines(message.blocks),
        "buttons": _buttons(message.blocks),
        "edited": message.edits > 0,
    }


def _view(view: View) -> JSON:
    """An open modal as the page shows it: its text and one field per input block."""
    inputs = []
    for block_id, element in iter_inputs(view.blocks):
        block = next((b for i, b in enumerate(view.blocks) if str(b.get("block_id") or f"b{i}") == block_id), {})
        # Option groups keep their label on each option, so the page can show them as Slack does.
        grouped = [("", o) for o in element.get("options") or []] + [
            (_text(g.get("label")), o) for g in element.get("option_groups") or [] for o in g.get("options") or []
        ]
        options = [{"value": o.get("value"), "text": _text(o.get("text")), "group": label} for label, o in grouped]
        inputs.append(
            {
                "block_id": block_id,
                "label": _text(block.get("label")),
                "type": element.get("type"),
                "multiline": bool(element.get("multiline")),
                "placeholder": _text(element.get("placeholder")),
                "initial": element.get("initial_value") or "",
                "optional": bool(block.get("optional")),
                "hint": _text(block.get("hint")),
                "options": options,
            }
        )
    return {
        "id": view.id,
        "title": _text(view.title),
        "submit": _text(view.submit) or "Submit",
        "lines": _block_lines(view.blocks),
        "inputs": inputs,
    }


def user_state(slack: LocalSlack, user_id: str) -> JSON:
    """Everything the page shows a user: people, channels with messages, modals, the demo webhook."""
    workspace = slack.workspace
    users = [
        {"id": u.id, "name": u.name, "real_name": u.real_name}
        for u in (workspace.user(uid) for uid in _seed_user_ids(slack))
        if u is not None and u.team_id == workspace.team_id and not (u.is_bot or u.deleted or u.is_restricted)
    ]
    channels: list[JSON] = []
    if workspace.user(user_id) is not None:
        ids = [workspace.dm_channel_id(user_id), *PUBLIC_CHANNELS]
        ephemerals = workspace.ephemerals(user_id)
        for channel_id in ids:
            channel = workspace.channel(channel_id)
            if channel is None:
                continue
            shown = workspace.messages(channel_id) + [m for m in ephemerals if m.channel == channel_id]
            shown.sort(key=lambda m: m.ts)
            name = "jit (DM)" if channel.is_im else "#" + channel.name
            channels.append({"id": channel_id, "name": name, "messages": [_message(m) for m in shown]})
    views = [_view(v) for v in workspace.views_for(user_id, include_closed=False) if v.type == "modal"]
    state: JSON = {"user": user_id, "users": users, "channels": channels, "views": views, "time": time.time()}
    target = _WEBHOOKS.get(slack)
    if target is not None:
        state["webhook"] = {
            "url": target.url,
            "active": list(target.active.values()),
            "calls": [
                {"time": c.time, "action": c.action, "request_id": c.request_id, "status": c.status}
                for c in target.calls[-_MAX_CALLS:]
            ],
        }
    mailbox = _MAILBOXES.get(slack)
    user = workspace.user(user_id)
    if mailbox is not None and user is not None and user.email:
        mails = mailbox.to(user.email)[-_MAX_MAILS:]
        state["inbox"] = {"address": user.email, "mails": [m.summary() for m in mails]}
    teams = _TEAMS.get(slack)
    if teams is not None:
        posts = teams.posts
        state["teams"] = [
            {
                "name": name,
                "cards": [{"time": p.time, "items": card_items(p.payload)} for p in posts if p.channel == name][
                    -_MAX_CARDS:
                ],
            }
            for name in teams.channels
        ]
    return state


def _seed_user_ids(slack: LocalSlack) -> list[str]:
    """The ids of the workspace's seeded users, in table order."""
    return [row[0] for row in SEED_USERS if slack.workspace.user(row[0]) is not None]


# -- handlers ----------------------------------------------------------------------------------------


async def _body(request: web.Request) -> JSON:
    """The JSON object a page request posted; 400 when it is not one."""
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="expected a JSON object") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return body


def _need(body: JSON, *names: str) -> list[str]:
    """The named string fields of a body; 400 naming the first missing one."""
    values = []
    for name in names:
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise web.HTTPBadRequest(text=f"missing {name}")
        values.append(value)
    return values


@functools.cache
def _page_html() -> str:
    """The page: one self-contained HTML file with its CSS and JavaScript, shipped beside this module."""
    return resources.files("bot.sandbox").joinpath("page.html").read_text(encoding="utf-8")


class _Page:
    """Request handlers bound to one `LocalSlack`."""

    def __init__(self, slack: LocalSlack) -> None:
        """Keep the local Slack whose workspace the page shows and whose driver it uses."""
        self.slack = slack

    async def index(self, request: web.Request) -> web.Response:
        """The page itself."""
        return web.Response(text=_page_html(), content_type="text/html", charset="utf-8")

    async def state(self, request: web.Request) -> web.Response:
        """What one user sees now."""
        return web.json_response(user_state(self.slack, request.query.get("user", "U0ALEX")))

    async def command(self, request: web.Request) -> web.Response:
        """Type `/jit {text}` as a user in the bot's DM; answer the bot's ack."""
        body = await _body(request)
        (user,) = _need(body, "user")
        text = body.get("text")
        if not isinstance(text, str):
            raise web.HTTPBadRequest(text="missing text")
        if self.slack.workspace.user(user) is None:
            raise web.HTTPBadRequest(text="unknown user")
        reply = await self.slack.async_driver.slash(user, text.removeprefix("/jit").strip())
        return web.json_response({"status": reply.status, "text": reply.text or ""})

    async def click(self, request: web.Request) -> web.Response:
        """Press a button on a stored message as a user."""
        body = await _body(request)
        user, channel, ts, action_id = _need(body, "user", "channel", "ts", "action_id")
        message = self.slack.workspace.message(channel, ts)
        if message is None:
            return web.json_response({"error": "message_not_found"}, status=404)
        value = body.get("value") if isinstance(body.get("value"), str) else None
        try:
            reply = await self.slack.async_driver.click(user, message, action_id, value)
        except LookupError:
            return web.json_response({"error": "button_not_shown"}, status=409)
        return web.json_response({"status": reply.status, "text": reply.text or ""})

    async def submit(self, request: web.Request) -> web.Response:
        """Submit an open modal with `{block_id: text}` as a user."""
        body = await _body(request)
        user, view_id = _need(body, "user", "view_id")
        values = body.get("values") or {}
        view = self.slack.workspace.view(view_id)
        if view is None or view.closed or view.user_id != user or not isinstance(values, dict):
            return web.json_response({"error": "view_not_found"}, status=404)
        try:
            reply = await self.slack.async_driver.submit_view(user, view, {str(k): v for k, v in values.items()})
        except LookupError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"status": reply.status, "errors": reply.errors, "text": reply.text or ""})

    async def mail(self, request: web.Request) -> web.Response:
        """One email of the mailbox, with its text and HTML parts, for the Inbox's reading pane."""
        mailbox = _MAILBOXES.get(self.slack)
        number = request.match_info["id"]
        mail = mailbox.get(int(number)) if mailbox is not None and number.isdigit() else None
        if mail is None:
            return web.json_response({"error": "mail_not_found"}, status=404)
        return web.json_response(mail.full())

    async def teams_post(self, request: web.Request) -> web.Response:
        """A Teams channel's webhook: keep the card jit posts and answer 202, as a Workflows webhook does."""
        teams = _TEAMS.get(self.slack)
        if teams is None:
            return web.json_response({"error": "no_teams_channels"}, status=404)
        if not teams.signed(request.query.get("sig")):
            return web.json_response({"error": "bad_signature"}, status=403)
        try:
            payload = await request.json()
        except ValueError:
            return web.json_response({"error": "expected a JSON message"}, status=400)
        if not is_message(payload):
            return web.json_response({"error": "expected a message with attachments"}, status=400)
        teams.record(request.match_info["channel"], payload)
        return web.Response(status=202)
