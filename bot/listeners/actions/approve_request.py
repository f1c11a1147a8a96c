"""The Approve button. The decision is stored before the ack (Slack does not resend a click it got 200 for)."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.answers import refusal
from bot.core.errors import JitError
from bot.listeners.errors import tell
from bot.listeners.events.app_home import from_home, publish_home


async def handle_approve_request(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
) -> None:
    try:
        approver = await context['who']()
        await asyncio.to_thread(context['deps'].approve.execute, str(action.get('value', '')), approver)
    except JitError as exc:
        await ack()
        await tell(client, body, refusal(exc.user_message))
        return
    await ack()
    if from_home(body):
        await publish_home(context, client, body['user']['id'])
