"""A tiny real Bolt app for the local Slack's tests: its listeners write down what reached them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
        """`/jit modal` opens a modal, `/jit shout` acks in channel, anything else acks and responds."""
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
        """Acks, then replaces the clicked message through the response_url."""
        await ack()
        probe.record("approve", body)
        await respond(replace_original=True, text=f"Approved by <@{body['user']['id']}>")

    @app.view("probe_request")
    async def on_submit(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Refuses an empty reason with a field error, accepts anything else."""
        probe.record("submit", body)
        if not view["state"]["values"]["reason"]["text"]["value"]:
            await ack(response_action="errors", errors={"reason": "Say why you need it"})
        else:
            await ack()

    @app.event("app_home_opened")
    async def on_home(event: dict[str, Any], client: AsyncWebClient) -> None:
        """Publishes a Home tab with one Release button."""
        probe.record("home", event)
        button = {
            "type": "button",
            "action_id": "release",
            "value": "req-9",
            "text": {"type": "plain_text", "text": "Release"},
        }
        view = {"type": "home", "blocks": [{"type": "actions", "elements": [button]}]}
        await client.views_publish(user_id=event["user"], view=view)

    @app.action("release")
    async def on_release(ack: Any, body: dict[str, Any]) -> None:
        """Acks a Release click from the Home tab."""
        await ack()
        probe.record("release", body)

    return probe
