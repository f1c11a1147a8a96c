"""The Deny button: checks the clicker may decide, then opens the modal that asks for the reason."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.messages import build_deny_modal
from bot.core.errors import JitError
from bot.listeners.errors import tell


async def handle_deny_request(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
) -> None:
    await ack()
    deps, request_id = context['deps'], str(action.get('value', ''))
    try:
        approver = await context['who']()
        await asyncio.to_thread(deps.deny.check, request_id, approver)
    except JitError as exc:
        await tell(client, body, f':warning: {exc.user_message}')
        return
    request = deps.store.get(request_id)
    rule = deps.policy().rule_named(request.rule)
    modal = build_deny_modal(request, reason_required=bool(rule and rule.require_deny_reason))
    await client.views_open(trigger_id=body['trigger_id'], view=modal)
