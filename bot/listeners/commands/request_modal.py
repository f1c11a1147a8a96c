"""``/jit`` or ``/jit request`` alone: the request form, with only what this user may request."""

from __future__ import annotations

from typing import Any

import structlog
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.request_modal import build_request_modal
from bot.core.policy import requestable
from bot.listeners.errors import refusals_in_ack
from bot.listeners.middleware import deps_of, who_is
from bot.listeners.tell import tell

log = structlog.get_logger(__name__)


async def open_request_modal(
    ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
) -> None:
    """``/jit`` or ``/jit request`` alone: the modal, with only what this user may request."""
    async with refusals_in_ack(ack) as refused:
        who = await who_is(context)
    if refused.error:
        return
    rows = requestable(deps_of(context).policy(), who)
    if not rows:
        await ack('There is nothing you may request under the current policy. `/jit help` for the commands.')
        return
    await ack()
    try:
        await client.views_open(trigger_id=command.get('trigger_id', ''), view=build_request_modal(rows))
    except SlackApiError as exc:  # expired_trigger_id: Slack took too long; the user must be told
        await tell(client, command, ':warning: The form could not open in time; type `/jit` again.')
        log.info('slack.views_open_failed', error=exc.response.get('error'))
