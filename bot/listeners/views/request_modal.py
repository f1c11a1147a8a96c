"""The request modal's submission: filed like ``/jit request``, refusals shown on the field they are about."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

from bot.blocks.request_modal import field_for, read_request_form
from bot.core.errors import JitError
from bot.ids import BlockId


async def handle_request_submission(ack: AsyncAck, view: dict[str, Any], context: AsyncBoltContext) -> None:
    form = read_request_form(view)
    if isinstance(form, dict):
        await ack(response_action='errors', errors=form)
        return
    deps = context['deps']
    try:
        who = await context['who']()
        await asyncio.to_thread(
            deps.submit.execute, requester=who, resource=form.resource, role=form.role, duration=form.duration,
            reason=form.reason, ticket=form.ticket)  # fmt: skip
    except JitError as exc:
        message = exc.user_message[:1900]
        # A ticket field exists only when a rule asks for one; otherwise the error goes where it can be seen.
        blocks = {b.get('block_id') for b in view.get('blocks') or [] if isinstance(b, dict)}
        field = field_for(message)
        await ack(response_action='errors', errors={field if field in blocks else BlockId.REQ_ACCESS.value: message})
        return
    await ack()  # closes the modal; the "Filed" DM comes from the request.created event
