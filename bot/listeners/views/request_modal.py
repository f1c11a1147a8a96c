"""The request modal's submission: filed like ``/jit request``, refusals shown on the field they are about."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

from bot.blocks.request_modal import field_for, read_request_form
from bot.ids import BlockId
from bot.listeners.errors import refusals_on_field
from bot.listeners.middleware import deps_of, who_is


async def handle_request_submission(ack: AsyncAck, view: dict[str, Any], context: AsyncBoltContext) -> None:
    form = read_request_form(view)
    if isinstance(form, dict):
        await ack(response_action='errors', errors=form)
        return
    deps = deps_of(context)
    async with refusals_on_field(ack, view, field_for, fallback=BlockId.REQ_ACCESS.value) as refused:
        who = await who_is(context)
        await asyncio.to_thread(
            deps.submit.execute, requester=who, resource=form.resource, role=form.role, duration=form.duration,
            reason=form.reason, ticket=form.ticket)  # fmt: skip
    if refused.error:
        return
    await ack()  # closes the modal; the "Filed" DM comes from the request.created event
