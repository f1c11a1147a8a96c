"""Errors at the Slack edge, mapped in one place: refusals (:class:`~bot.core.errors.JitError`) where the user looks.

=====================  ====================================================  ==========================
surface                how a refusal is shown                                used by
=====================  ====================================================  ==========================
slash command          the ack's text (ephemeral)                            :func:`refusals_in_ack`
button                 an ephemeral message beside the button (else a DM)    :func:`refusals_told`
modal submission       an error under the field it is about                  :func:`refusals_on_field`
App Home               the tab shows the refusal instead of the requests     :func:`refusal_home`
=====================  ====================================================  ==========================

A listener wraps what may be refused in one of these (``async with refusals_told(...)``); the text is
:func:`answer_for` on every ephemeral surface. Anything else is a bug: :func:`handle_unexpected_error` logs it
with its traceback and an error ID and tells the user an apology with the same ID (never the traceback).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.answers import denial_answer, refusal
from bot.blocks.mrkdwn import message, section
from bot.core.errors import JitError, PolicyDenied, apology, new_error_id
from bot.listeners.tell import tell

log = structlog.get_logger(__name__)

#: Slack shows at most this much under a modal field.
FIELD_ERROR_LIMIT = 1900


def answer_for(exc: JitError) -> str:
    """The ephemeral answer to a refusal (a command's ack, a message beside a button)."""
    if isinstance(exc, PolicyDenied):
        return denial_answer(exc.user_message, exc.decision)
    return refusal(exc.user_message)


def refusal_home(exc: JitError) -> dict[str, Any]:
    """The App Home tab of someone jit refuses (deleted, guest, Slack too slow to say who they are)."""
    return {'type': 'home', 'blocks': [section(message(exc.user_message))]}


@dataclass
class Refused:
    """What a ``refusals_*`` block ended with: ``error`` is the refusal that was shown, None if it went through."""

    error: JitError | None = None


@asynccontextmanager
async def refusals_in_ack(ack: AsyncAck) -> AsyncIterator[Refused]:
    """A slash command's refusal is its ack's text."""
    outcome = Refused()
    try:
        yield outcome
    except JitError as exc:
        outcome.error = exc
        await ack(answer_for(exc))


@asynccontextmanager
async def refusals_told(client: AsyncWebClient, body: dict[str, Any], ack: AsyncAck | None = None
                        ) -> AsyncIterator[Refused]:  # fmt: skip
    """A button's refusal, told ephemerally to whoever pressed it (the click is acked first, if it was not yet)."""
    outcome = Refused()
    try:
        yield outcome
    except JitError as exc:
        outcome.error = exc
        if ack is not None and ack.response is None:
            await ack()
        await tell(client, body, answer_for(exc))


@asynccontextmanager
async def refusals_on_field(ack: AsyncAck, view: dict[str, Any], field: Callable[[str], str],
                            fallback: str) -> AsyncIterator[Refused]:  # fmt: skip
    """A modal submission's refusal, under the field ``field(message)`` names; under ``fallback`` when the modal
    has no such field (a ticket field exists only when a rule asks for one). The modal stays open."""
    outcome = Refused()
    try:
        yield outcome
    except JitError as exc:
        outcome.error = exc
        text = exc.user_message[:FIELD_ERROR_LIMIT]
        blocks = {b.get('block_id') for b in view.get('blocks') or [] if isinstance(b, dict)}
        wanted = field(text)
        await ack(response_action='errors', errors={wanted if wanted in blocks else fallback: text})


async def handle_unexpected_error(error: Exception, body: dict[str, Any], response: BoltResponse | None,
                                  client: AsyncWebClient) -> BoltResponse | None:  # fmt: skip
    """Bolt's global error handler: a bug. Logged with an error ID; the user gets an apology with that ID.

    ``response`` is what Bolt will answer Slack with when the listener had not acked yet (None when it had); the
    answer returned here replaces it. A slash command's answer is shown to the user, so it carries the apology;
    any other payload is answered 200 (Slack would show its own failure notice, or keep a modal waiting) and
    the apology is told beside it.
    """
    error_id = new_error_id()
    log.error('listener.unexpected_error', error_id=error_id, error_type=type(error).__name__, exc_info=error)
    text = f':warning: {apology(error_id)}'
    if response is not None and body.get('command'):
        return BoltResponse(status=200, body={'response_type': 'ephemeral', 'text': text})
    try:
        await tell(client, body, text)
    except Exception:
        log.warning('slack.apology_failed', error_id=error_id)
    return BoltResponse(status=200, body='') if response is not None else None
