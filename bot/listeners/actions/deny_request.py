"""The Deny button: checks the clicker may decide, then opens the modal that asks for the reason."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.messages import build_deny_modal
from bot.listeners.errors import refusals_told
from bot.listeners.middleware import deps_of, who_is
from bot.listeners.tell import tell

log = structlog.get_logger(__name__)


async def handle_deny_request(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
) -> None:
    await ack()
    deps, request_id = deps_of(context), str(action.get('value', ''))
    async with refusals_told(client, body) as refused:
        approver = await who_is(context)
        request = await asyncio.to_thread(deps.deny.check, request_id, approver)
    if refused.error:
        return
    rule = deps.policy().rule_named(request.rule)
    modal = build_deny_modal(request, reason_required=bool(rule and rule.require_deny_reason))
    try:
        await client.views_open(trigger_id=body.get('trigger_id', ''), view=modal)
    except SlackApiError as exc:  # expired_trigger_id: press Deny again
        await tell(client, body, ':warning: The deny form could not open in time; press Deny again.')
        log.info('slack.views_open_failed', error=exc.response.get('error'))
