"""The deny modal's submission: the reason, and the decision (re-checked: the modal may be stale)."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

from bot.ids import BlockId
from bot.listeners.errors import refusals_on_field
from bot.listeners.middleware import deps_of, who_is


async def handle_deny_submission(ack: AsyncAck, view: dict[str, Any], context: AsyncBoltContext) -> None:
    values = (view.get('state') or {}).get('values') or {}
    reason = ((values.get(BlockId.DENY_REASON) or {}).get('reason') or {}).get('value') or ''
    reason_field = BlockId.DENY_REASON.value
    async with refusals_on_field(ack, view, lambda _message: reason_field, fallback=reason_field) as refused:
        approver = await who_is(context)
        await asyncio.to_thread(deps_of(context).deny.execute, str(view.get('private_metadata', '')), approver,
                                reason.strip())  # fmt: skip
    if refused.error:
        return
    await ack()
