"""The Approve button. The decision is stored before the ack (Slack does not resend a click it got 200 for)."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners.errors import refusals_told
from bot.listeners.events.app_home import from_home, publish_home
from bot.listeners.middleware import deps_of, who_is


async def handle_approve_request(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
) -> None:
    async with refusals_told(client, body, ack) as refused:  # a refusal acks, then is told
        approver = await who_is(context)
        await asyncio.to_thread(deps_of(context).approve.execute, str(action.get('value', '')), approver)
    if refused.error:
        return
    await ack()
    if from_home(body):
        await publish_home(context, client, body['user']['id'])
