"""The `jit sandbox` web page: a minimal Slack in the browser, served by the local Slack's aiohttp app.

Part of `bot/sandbox/`. `add_page_routes` adds `GET /` (one self-contained HTML page) and a small JSON API
the page polls and posts to: `GET /sandbox/state?user=U...` (what that user sees), `POST /sandbox/command`
(type `/jit ...`), `POST /sandbox/click` (press a button on a stored message) and `POST /sandbox/submit`
(submit an open modal). Every action goes through `LocalSlack.async_driver`, so the bot receives exactly
the signed requests Slack would send. `attach_webhook` lets the page show the demo webhook's grants.
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.sandbox._blocks import iter_buttons, iter_inputs
from bot.sandbox._models import JSON, Message, View
from bot.sandbox.workspace import SEED_USERS

if TYPE_CHECKING:
    from bot.sandbox.local_slack import LocalSlack
    from bot.sandbox.webhook_target import WebhookTarget

__all__ = ["add_page_routes", "attach_webhook", "user_state"]

#: The public channels every user of the page sees, besides their DM with the bot.
PUBLIC_CHANNELS = ("C0AUDIT", "C0ACCESS")
#: How many webhook calls the state carries (the newest ones).
_MAX_CALLS = 20

_WEBHOOKS: weakref.WeakKeyDictionary[LocalSlack, WebhookTarget] = weakref.WeakKeyDictionary()


def attach_webhook(slack: LocalSlack, target: WebhookTarget) -> None:
    """Show `target`'s active grants and calls on `slack`'s page (call before the page is used)."""
    _WEBHOOKS[slack] = target


def add_page_routes(app: web.Application, slack: LocalSlack) -> None:
    """Add the sandbox page and its JSON API to the local Slack's application."""
    page = _Page(slack)
    app.router.add_get("/", page.index)
    app.router.add_get("/sandbox/state", page.state)
    app.router.add_post("/sandbox/command", page.command)
    app.router.add_post("/sandbox/click", page.click)
    app.router.add_post("/sandbox/submit", page.submit)


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
        options = [{"value": o.get("value"), "text": _text(o.get("text"))} for o in element.get("options") or []]
        inputs.append(
            {
                "block_id": block_id,
                "label": _text(block.get("label")),
                "type": element.get("type"),
                "multiline": bool(element.get("multiline")),
                "placeholder": _text(element.get("placeholder")),
                "initial": element.get("initial_value") or "",
                "optional": bool(block.get("optional")),
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


class _Page:
    """Request handlers bound to one `LocalSlack`."""

    def __init__(self, slack: LocalSlack) -> None:
        """Keep the local Slack whose workspace the page shows and whose driver it uses."""
        self.slack = slack

    async def index(self, request: web.Request) -> web.Response:
        """The page itself."""
        return web.Response(text=PAGE_HTML, content_type="text/html", charset="utf-8")

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


PAGE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>jit sandbox</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1d1c1d}
body{display:flex;height:100vh}
#side{width:230px;background:#3f0e40;color:#e8dfe8;padding:12px;display:flex;flex-direction:column;gap:6px}
#side h1{font-size:17px;margin:0 0 8px;color:#fff}
#side select{width:100%;padding:4px}
#side .label{font-size:12px;opacity:.7;margin-top:10px}
.chan{padding:3px 8px;border-radius:4px;cursor:pointer}
.chan.sel{background:#1164a3;color:#fff}
.chan .n{float:right;font-size:11px;opacity:.7}
#main{flex:1;display:flex;flex-direction:column;min-width:0}
#head{padding:10px 16px;border-bottom:1px solid #ddd;font-weight:bold}
#msgs{flex:1;overflow-y:auto;padding:8px 16px}
.msg{padding:6px 0;border-bottom:1px solid #f3f3f3}
.msg .who{font-weight:bold}.msg .ts{color:#888;font-size:11px;margin-left:6px}
.msg .eph{color:#888;font-size:11px;margin-left:6px;font-style:italic}
.msg .line{white-space:pre-wrap}
.btns{margin-top:4px;display:flex;gap:6px;flex-wrap:wrap}
button{border:1px solid #bbb;background:#fff;border-radius:4px;padding:4px 12px;cursor:pointer;font:inherit}
button.primary{background:#007a5a;color:#fff;border-color:#007a5a}
button.danger{background:#e01e5a;color:#fff;border-color:#e01e5a}
#cmd{display:flex;gap:6px;padding:10px 16px;border-top:1px solid #ddd}
#cmd input{flex:1;padding:8px;border:1px solid #bbb;border-radius:4px;font:inherit}
#ack{padding:0 16px 8px;color:#555;white-space:pre-wrap;min-height:1em}
#right{width:300px;border-left:1px solid #ddd;padding:12px;overflow-y:auto;font-size:13px}
#right h2{font-size:14px;margin:0 0 6px}
.grant{background:#e8f5e9;border-radius:4px;padding:6px;margin-bottom:6px}
.call{color:#555}
#modal{position:fixed;inset:0;background:rgba(0,0,0,.4);display:none;align-items:center;justify-content:center}
#modal .box{background:#fff;border-radius:8px;padding:16px;width:480px;max-height:90vh;overflow-y:auto}
#modal h3{margin:0 0 10px}
#modal label{display:block;font-weight:bold;margin-top:10px}
#modal input,#modal textarea,#modal select{width:100%;padding:6px;font:inherit;border:1px solid #bbb;border-radius:4px}
#modal .err{color:#e01e5a;font-size:12px}
#modal .actions{margin-top:14px;text-align:right}
</style></head>
<body>
<div id="side"><h1>jit sandbox</h1>
<div class="label">You are</div><select id="user"></select>
<div class="label">Channels</div><div id="chans"></div></div>
<div id="main"><div id="head"></div><div id="msgs"></div><div id="ack"></div>
<form id="cmd"><input id="text" autocomplete="off" placeholder="/jit request demo-app read 15m why you need it">
<button class="primary">Send</button></form></div>
<div id="right"><h2>Demo webhook: active grants</h2><div id="grants"></div>
<h2 style="margin-top:14px">Webhook calls</h2><div id="calls"></div></div>
<div id="modal"><form class="box" id="modalform"></form></div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g,
  (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);
let user = localStorage.getItem("jit-user") || "U0ALEX";
let channel = null, state = null, shownView = null, errors = {};
const names = {};

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  return node;
}
async function post(path, body) {
  const headers = {"Content-Type": "application/json"};
  const r = await fetch(path, {method: "POST", headers, body: JSON.stringify(body)});
  let data = {};
  try { data = await r.json(); } catch (e) { data = {error: r.statusText}; }
  return data;
}
function mention(text) {
  return esc(text).replace(/&lt;@(U[A-Z0-9]+)&gt;/g, (m, id) => "<b>@" + esc(names[id] || id) + "</b>")
                  .replace(/\\*([^*\\n]+)\\*/g, "<b>$1</b>").replace(/`([^`\\n]+)`/g, "<code>$1</code>");
}
function renderUsers() {
  const sel = $("user");
  if (sel.options.length) return;
  for (const u of state.users) {
    names[u.id] = u.name;
    const opt = el("option", {value: u.id}, u.name + " (" + u.real_name + ")");
    if (u.id === user) opt.selected = true;
    sel.appendChild(opt);
  }
}
function renderChannels() {
  const box = $("chans");
  box.replaceChildren();
  if (!channel || !state.channels.some((c) => c.id === channel)) {
    channel = state.channels.length ? state.channels[0].id : null;
  }
  for (const c of state.channels) {
    const row = el("div", {class: "chan" + (c.id === channel ? " sel" : "")}, c.name);
    row.appendChild(el("span", {class: "n"}, String(c.messages.length)));
    row.onclick = () => { channel = c.id; render(true); };
    box.appendChild(row);
  }
}
function renderMessages(scroll) {
  const c = state.channels.find((x) => x.id === channel);
  $("head").textContent = c ? c.name : "";
  const box = $("msgs");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  box.replaceChildren();
  if (!c) return;
  for (const m of c.messages) {
    const row = el("div", {class: "msg"});
    const head = el("div");
    head.appendChild(el("span", {class: "who"}, m.from_bot ? "jit" : (names[m.user] || m.user)));
    head.appendChild(el("span", {class: "ts"}, new Date(parseFloat(m.ts) * 1000).toLocaleTimeString()));
    if (m.ephemeral) head.appendChild(el("span", {class: "eph"}, "only visible to you"));
    if (m.edited) head.appendChild(el("span", {class: "ts"}, "(edited)"));
    row.appendChild(head);
    const lines = m.lines.length ? m.lines : [m.text];
    for (const line of lines) { const d = el("div", {class: "line"}); d.innerHTML = mention(line); row.appendChild(d); }
    if (m.buttons.length) {
      const btns = el("div", {class: "btns"});
      for (const b of m.buttons) {
        const button = el("button", {class: b.style || ""}, b.text);
        button.onclick = async () => {
          button.disabled = true;
          const click = {user, channel: m.channel, ts: m.ts, action_id: b.action_id, value: b.value};
          const r = await post("/sandbox/click", click);
          $("ack").textContent = r.error ? "error: " + r.error : (r.text || "");
          refresh();
        };
        btns.appendChild(button);
      }
      row.appendChild(btns);
    }
    box.appendChild(row);
  }
  if (scroll || atBottom) box.scrollTop = box.scrollHeight;
}
function renderWebhook() {
  const g = $("grants"), calls = $("calls");
  g.replaceChildren(); calls.replaceChildren();
  if (!state.webhook) { g.textContent = "(no demo webhook attached)"; return; }
  if (!state.webhook.active.length) g.appendChild(el("div", {class: "call"}, "none"));
  for (const a of state.webhook.active) {
    const who = (a.user && (a.user.email || a.user.slack_id)) || "?";
    const box = el("div", {class: "grant"}, a.resource + " / " + a.role + " for " + who);
    const expires = new Date(a.expires_at).toLocaleTimeString();
    box.appendChild(el("div", {class: "call"}, a.request_id + ", expires " + expires));
    g.appendChild(box);
  }
  for (const c of state.webhook.calls.slice().reverse()) {
    calls.appendChild(el("div", {class: "call"},
      new Date(c.time * 1000).toLocaleTimeString() + " " + c.action + " " + c.request_id + " -> " + c.status));
  }
}
function renderModal() {
  const view = state.views.length ? state.views[state.views.length - 1] : null;
  const modal = $("modal");
  if (!view) { modal.style.display = "none"; shownView = null; return; }
  modal.style.display = "flex";
  const key = view.id + JSON.stringify(view.inputs) + JSON.stringify(view.lines);
  if (shownView === key) return;
  shownView = key;
  const form = $("modalform");
  form.replaceChildren(el("h3", {}, view.title));
  for (const line of view.lines) {
    const d = el("div", {class: "line"});
    d.innerHTML = mention(line);
    form.appendChild(d);
  }
  for (const i of view.inputs) {
    form.appendChild(el("label", {for: "in-" + i.block_id}, i.label + (i.optional ? " (optional)" : "")));
    let input;
    if (i.options.length) {
      input = el("select", {});
      for (const o of i.options) input.appendChild(el("option", {value: o.value}, o.text));
    } else {
      input = el(i.multiline ? "textarea" : "input", {placeholder: i.placeholder});
      input.value = i.initial;
    }
    input.id = "in-" + i.block_id; input.dataset.block = i.block_id;
    form.appendChild(input);
    form.appendChild(el("div", {class: "err", id: "err-" + i.block_id}, errors[i.block_id] || ""));
  }
  const actions = el("div", {class: "actions"});
  actions.appendChild(el("button", {class: "primary", type: "submit"}, view.submit));
  form.appendChild(actions);
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const values = {};
    for (const node of form.querySelectorAll("[data-block]")) {
      if (node.value !== "") values[node.dataset.block] = node.value;
    }
    const r = await post("/sandbox/submit", {user, view_id: view.id, values});
    errors = r.errors || {};
    for (const node of form.querySelectorAll(".err")) node.textContent = errors[node.id.slice(4)] || "";
    if (r.error) $("ack").textContent = "error: " + r.error;
    refresh();
  };
}
function render(scroll) { renderUsers(); renderChannels(); renderMessages(scroll); renderWebhook(); renderModal(); }
async function refresh(scroll) {
  try {
    const r = await fetch("/sandbox/state?user=" + encodeURIComponent(user));
    state = await r.json();
    render(scroll);
  } catch (e) { $("ack").textContent = "sandbox not reachable: " + e; }
}
$("user").onchange = (ev) => {
  user = ev.target.value; localStorage.setItem("jit-user", user);
  channel = null; shownView = null; errors = {}; $("ack").textContent = ""; refresh(true);
};
$("cmd").onsubmit = async (ev) => {
  ev.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  $("text").value = "";
  $("ack").textContent = "/jit " + text.replace(/^\\/jit\\s*/, "") + " ...";
  const r = await post("/sandbox/command", {user, text});
  $("ack").textContent = r.error ? "error: " + r.error : (r.text || "(no reply, status " + r.status + ")");
  refresh(true);
};
refresh(true);
setInterval(refresh, 1000);
</script></body></html>
"""
