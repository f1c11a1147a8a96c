"""Fixtures for the local Slack's own tests.

- `threaded_slack`: a seeded `LocalSlack` served on a daemon thread, for blocking clients (`WebClient`).
- `slack`: a seeded `LocalSlack` served on the test's event loop, for `AsyncWebClient` and `AsyncDriver`.
- `bolt`: a tiny real Bolt `AsyncApp` (a `BoltProbe`) served on the test's loop and wired to `slack`: its
  listeners record what reached them, so tests can check that the driver's requests pass Bolt's checks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox._server import AppServer
from bot.sandbox.local_slack import LocalSlack

SIGNING_SECRET = "test-signing-secret"

REQUEST_MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "probe_request",
    "private_metadata": "from-probe",
    "title": {"type": "plain_text", "text": "Request access"},
    "submit": {"type": "plain_text", "text": "Request"},
    "blocks": [
        {
            "type": "input",
            "block_id": "resource",
            "label": {"type": "plain_text", "text": "Resource"},
            "element": {
                "type": "static_select",
                "action_id": "pick",
                "options": [
                    {"text": {"type": "plain_text", "text": "prod-db"}, "value": "prod-db"},
                    {"text": {"type": "plain_text", "text": "deploy-hook"}, "value": "deploy-hook"},
                ],
            },
        },
        {
            "type": "input",
            "block_id": "reason",
            "label": {"type": "plain_text", "text": "Reason"},
            "element": {"type": "plain_text_input", "action_id": "text"},
        },
    ],
}

APPROVAL_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "<@U0ALEX> asks for prod-db read"}},
    {
        "type": "actions",
        "block_id": "decision",
        "elements": [
            {"type": "button", "action_id": "approve", "value": "req-1", "style": "primary",
             "text": {"type": "plain_text", "text": "Approve"}},
            {"type": "button", "action_id": "deny", "value": "req-1", "style": "danger",
             "text": {"type": "plain_text", "text": "Deny"}},
        ],
    },
]


@dataclass
class BoltProbe:
    """A Bolt app whose listeners write down every body that reached them, by kind."""

    app: AsyncApp
    server: AppServer
    seen: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def record(self, kind: str, body: dict[str, Any]) -> None:
        """Keep a body a listener received."""
        self.seen.setdefault(kind, []).append(body)


def build_probe(slack: LocalSlack) -> BoltProbe:
    """Build the probe app against a local Slack; the caller serves `probe.server`."""
    # Give Bolt only the client: with `token=` as well, Bolt logs that it ignores the token.
    app = AsyncApp(client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url), signing_secret=SIGNING_SECRET)
    probe = BoltProbe(app=app, server=AppServer(app.web_app, name="bolt-probe"))

    @app.command("/jit")
    async def on_command(ack: Any, body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        probe.record("command", body)
        if body["text"] == "modal":
            await ack()
            await client.views_open(trigger_id=body["trigger_id"], view=REQUEST_MODAL)
        elif body["text"] == "shout":
            await ack(text="everyone sees this", response_type="in_channel")
        else:
            await ack(f"hello <@{body['user_id']}>")
            await respond("a later answer through the response_url")

    @app.action("approve")
    async def on_approve(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        probe.record("approve", body)
        await respond(replace_original=True, text=f"Approved by <@{body['user']['id']}>")

    @app.view("probe_request")
    async def on_submit(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        probe.record("submit", body)
        if not view["state"]["values"]["reason"]["text"]["value"]:
            await ack(response_action="errors", errors={"reason": "Say why you need it"})
        else:
            await ack()

    @app.event("app_home_opened")
    async def on_home(event: dict[str, Any], client: AsyncWebClient) -> None:
        probe.record("home", event)
        button = {"type": "button", "action_id": "release", "value": "req-9", "text": {"type": "plain_text", "text": "Release"}}
        view = {"type": "home", "blocks": [{"type": "actions", "elements": [button]}]}
        await client.views_publish(user_id=event["user"], view=view)

    @app.action("release")
    async def on_release(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        probe.record("release", body)

    return probe


@pytest.fixture(name="threaded_slack")
def _threaded_slack() -> Iterator[LocalSlack]:
    slack = LocalSlack(signing_secret=SIGNING_SECRET)
    slack.start_in_thread()
    yield slack
    slack.stop_thread()


@pytest.fixture(name="slack")
async def _slack() -> AsyncIterator[LocalSlack]:
    slack = LocalSlack(signing_secret=SIGNING_SECRET)
    await slack.start()
    yield slack
    await slack.stop()


@pytest.fixture(name="bolt")
async def _bolt(slack: LocalSlack) -> AsyncIterator[BoltProbe]:
    probe = build_probe(slack)
    slack.app_url = await probe.server.start() + "slack/events"
    yield probe
    await probe.server.stop()
