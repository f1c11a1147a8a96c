"""The deny modal's submission: the reason, and the decision (re-checked: the modal may be stale)."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

from bot.core.errors import JitError
from bot.ids import BlockId


async def handle_deny_submission(ack: AsyncAck, view: dict[str, Any], context: AsyncBoltContext) -> None:
    values = (view.get('state') or {}).get('values') or {}
    reason = ((values.get(BlockId.DENY_REASON) or {}).get('reason') or {}).get('value') or ''
    try:
        approver = await context['who']()
        await asyncio.to_thread(context['deps'].deny.execute, str(view.get('private_metadata', '')), approver,
                                reason.strip())  # fmt: skip
    except JitError as exc:
        await ack(response_action='errors', errors={BlockId.DENY_REASON.value: exc.user_message})
        return
    await ack()
