"""The local Slack's HTTP side: the Web API at `/api/{method}` and the `response_url`s at `/response/{token}`.

Part of `bot/sandbox/`; aiohttp only. It answers like Slack does: HTTP 200 with `{"ok": false, "error"}` for
API errors (`not_authed`, `invalid_auth`, `unknown_method`, ...), HTTP 429 with `Retry-After` when a rate
limit was injected, and it records every call on the `LocalSlack` for assertions.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.sandbox._loopback import loopback_only
from bot.sandbox._models import JSON, ApiCall, ResponsePost, ResponseUrl, SlackError
from bot.sandbox._web_methods import METHODS
from bot.sandbox.page import add_page_routes

if TYPE_CHECKING:
    from bot.sandbox.local_slack import LocalSlack

__all__ = ["create_web_api_app"]

_TRUE = {True, "true", "True", "1"}
#: Methods called with the app-level token (`xapp-`), which every other method refuses.
APP_TOKEN_METHODS = {"apps.connections.open"}


def create_web_api_app(slack: LocalSlack) -> web.Application:
    """Build the aiohttp application serving a `LocalSlack`'s Web API, `response_url`s and page.

    Every route answers only to a loopback `Host`, and the page's POSTs only to JSON from the page (`_loopback.py`).
    """
    api = _WebApi(slack)
    app = web.Application(middlewares=[loopback_only])
    app.router.add_route("*", "/api/{method}", api.handle_method)
    app.router.add_post("/response/{token}", api.handle_response_url)
    app.router.add_get("/socket-mode", slack.socket_mode.handle_socket)
    add_page_routes(app, slack)
    return app


async def _read_params(request: web.Request) -> JSON:
    """Merge the query string, a form body (urlencoded or multipart) and a JSON body into one dict.

    slack_sdk sends JSON for chat.* and views.*, query strings for `conversations.open`, GET for `users.*`
    and forms from other clients; Slack accepts them all, so the local Slack does too.

    Raises:
        SlackError: `invalid_json` for a JSON body that does not parse to an object.
    """
    params: JSON = dict(request.query)
    if not request.body_exists:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise SlackError("invalid_json") from None
        if not isinstance(body, dict):
            raise SlackError("invalid_json")
        params.update(body)
    elif request.content_type in {"application/x-www-form-urlencoded", "multipart/form-data"}:
        form = await request.post()
        params.update({key: value for key, value in form.items() if isinstance(value, str)})
    return params


def _token(request: web.Request, params: JSON) -> str | None:
    """Return the bearer token, or the legacy `token` parameter Slack still accepts."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip()
    token = params.get("token")
    return str(token) if token else None


class _WebApi:
    """Request handlers bound to one `LocalSlack`."""

    def __init__(self, slack: LocalSlack) -> None:
        """Keep the `LocalSlack` whose workspace the handlers read and write."""
        self.slack = slack

    async def handle_method(self, request: web.Request) -> web.Response:
        """Serve one Web API call, record it, and answer with Slack's envelope."""
        method = request.match_info["method"]
        status, headers = 200, {}
        try:
            params = await _read_params(request)
        except SlackError as exc:
            params, body = {}, {"ok": False, "error": exc.error}
        else:
            token = _token(request, params)
            params.pop("token", None)
            retry_after = self.slack.take_rate_limit(method)
            if retry_after is not None:
                status, headers = 429, {"Retry-After": str(retry_after)}
                body = {"ok": False, "error": "ratelimited"}
            else:
                body = self._call(method, token, params)
        error = None if body.get("ok") else str(body.get("error"))
        call = ApiCall(method, params, request.method, status, bool(body.get("ok")), error, time.time())
        self.slack.record_call(call)
        return web.json_response(body, status=status, headers=headers)

    def _call(self, method: str, token: str | None, params: JSON) -> JSON:
        """Check the method and the token, then run the method; every outcome is a Slack answer."""
        implementation = _open_connection if method in APP_TOKEN_METHODS else METHODS.get(method)
        if implementation is None:
            return {"ok": False, "error": "unknown_method", "req_method": method}
        if not token:
            return {"ok": False, "error": "not_authed"}
        if method in APP_TOKEN_METHODS:
            # Only an app-level token opens a socket; a bot token is the wrong kind, any other is unknown.
            if token != self.slack.app_token:
                error = "not_allowed_token_type" if token == self.slack.bot_token else "invalid_auth"
                return {"ok": False, "error": error}
        elif token != self.slack.bot_token:
            error = "not_allowed_token_type" if token == self.slack.app_token else "invalid_auth"
            return {"ok": False, "error": error}
        try:
            return {"ok": True, **implementation(self.slack, params)}
        except SlackError as exc:
            return {"ok": False, "error": exc.error}

    async def handle_response_url(self, request: web.Request) -> web.Response:
        """Serve a post to a `response_url`: a new message, a replacement, or a deletion of the original."""
        token = request.match_info["token"]
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            status, answer = 400, {"ok": False, "error": "invalid_payload"}
            payload = {}
        elif (url := self.slack.claim_response_url(token)) is None:
            status, answer = 404, {"ok": False, "error": "expired_url"}
        else:
            status, answer = self._respond(url, payload)
        self.slack.record_response(ResponsePost(token, payload, status))
        return web.json_response(answer, status=status)

    def _respond(self, url: ResponseUrl, payload: JSON) -> tuple[int, JSON]:
        """Apply a `response_url` payload to the workspace, as Slack shows it to the user."""
        workspace = self.slack.workspace
        text, blocks = str(payload.get("text") or ""), _blocks_of(payload)
        try:
            if payload.get("delete_original") in _TRUE:
                if url.original_ts:
                    workspace.delete(url.channel_id, url.original_ts)
                self.slack.set_response_original(url.token, None)
                return 200, {"ok": True}
            if payload.get("replace_original") in _TRUE and url.original_ts:
                # A replacement is the whole message: blocks left out are gone, unlike chat.update.
                workspace.update(url.channel_id, url.original_ts, text, blocks or [])
                return 200, {"ok": True}
            if payload.get("response_type") == "in_channel":
                message = workspace.post(url.channel_id, text, blocks, thread_ts=payload.get("thread_ts"))
            else:
                message = workspace.post_ephemeral(url.channel_id, url.user_id, text, blocks)
        except SlackError as exc:
            return 404, {"ok": False, "error": exc.error}
        self.slack.set_response_original(url.token, message.ts)
        return 200, {"ok": True}


def _open_connection(slack: LocalSlack, _params: JSON) -> JSON:
    """`apps.connections.open`: a WebSocket URL for Socket Mode."""
    return slack.socket_mode.open_connection()


def _blocks_of(payload: JSON) -> list[JSON] | None:
    """Return a response payload's blocks, which Bolt sends as a list and other clients as a JSON string."""
    blocks: Any = payload.get("blocks")
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return None
    return blocks if isinstance(blocks, list) else None
