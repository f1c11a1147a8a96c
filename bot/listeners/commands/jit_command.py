"""``/jit ...``: one slash command, sub-commands after it. Answers are ephemeral (the ack's text)."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.answers import (
    ended_answer,
    extend_answer,
    filed_answer,
    list_answer,
    resources_answer,
    ssh_key_answer,
)
from bot.blocks.mrkdwn import typed
from bot.core.commands import help_text, parse_extend_args, parse_request_args, parse_request_id, split_command
from bot.core.errors import UsageError
from bot.core.model import Principal
from bot.listeners.commands.request_modal import open_request_modal
from bot.listeners.errors import refusals_in_ack
from bot.listeners.middleware import deps_of, who_is
from bot.usecases.queries import mine, waiting_for

if TYPE_CHECKING:
    from bot.deps import Deps

#: What a resource, a role or a request ID looks like. A typed word that cannot be one names nothing: it is
#: refused before it is looked up, and not echoed (answers show names in code spans, which a backtick ends).
TYPED_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,99}')
UNREADABLE = ('There is no resource, role or request by that name: names are letters, digits, `.`, `_` and `-`. '
              '`/jit resources` shows what you may request, `/jit list` your requests.')  # fmt: skip


def _readable(*words: str | None) -> None:
    if not all(word is None or TYPED_NAME.fullmatch(word) for word in words):
        raise UsageError(UNREADABLE)


async def handle_jit_command(
    ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
) -> None:
    deps = deps_of(context)
    text = command.get('text', '')
    if not isinstance(text, str) or not text.strip() or text.strip().lower() == 'request':
        await open_request_modal(ack, command, context, client)
        return
    sub, rest = split_command(typed(text))
    if sub == 'help':
        await ack(help_text(deps.policy()))
        return
    async with refusals_in_ack(ack):
        who = await who_is(context)
        policy = deps.policy()
        if sub == 'request':
            args = parse_request_args(rest, policy)
            _readable(args.resource, args.role)
            request = await asyncio.to_thread(
                deps.submit.execute, requester=who, resource=args.resource, role=args.role,
                duration=args.duration, reason=args.reason)  # fmt: skip
            await ack(filed_answer(request, policy))
        elif sub == 'extend':
            request_id, extra, reason = parse_extend_args(rest)
            _readable(request_id)
            result = await asyncio.to_thread(deps.extend.execute, request_id, who, extra, reason)
            await ack(extend_answer(result))
        elif sub in ('release', 'revoke', 'cancel'):
            request_id = parse_request_id(rest, sub)
            _readable(request_id)
            await asyncio.to_thread(getattr(deps.end, sub), request_id, who)
            await ack(ended_answer(sub, request_id))
        elif sub == 'ssh-key':
            await ack(await asyncio.to_thread(_ssh_key, deps, who, rest))
        elif sub == 'resources':
            await ack(resources_answer(policy, who))
        else:  # list
            requests = await asyncio.to_thread(mine, deps.store, who)
            waiting = await asyncio.to_thread(waiting_for, deps.store, policy, who)
            await ack(list_answer(requests, waiting, deps.clock.now()))


def _ssh_key(deps: Deps, who: Principal, text: str) -> str:
    """``/jit ssh-key KEY`` registers (or replaces) the key; alone, it shows the one registered."""
    if text.strip():
        return ssh_key_answer(deps.ssh_keys.register(who, text), registered=True)
    return ssh_key_answer(deps.ssh_keys.show(who))
