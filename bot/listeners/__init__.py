"""Bolt listeners: thin. Each acks, reads the payload, calls a use case, answers.

``register_listeners(app)`` wires them all; the ``Deps`` arrive through Bolt's ``context``
(put there by ``bot.listeners.middleware``), never through module globals.
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.ids import ActionId, CallbackId
from bot.listeners.actions.approve_request import handle_approve_request
from bot.listeners.actions.deny_request import handle_deny_request
from bot.listeners.actions.end_or_extend_grant import handle_cancel_request, handle_extend_grant, handle_release_grant
from bot.listeners.commands.jit_command import handle_jit_command
from bot.listeners.errors import handle_unexpected_error
from bot.listeners.events.app_home import handle_app_home_opened
from bot.listeners.middleware import bind_request_context
from bot.listeners.views.deny_request import handle_deny_submission
from bot.listeners.views.request_modal import handle_request_submission


def register_listeners(app: AsyncApp) -> None:
    app.use(bind_request_context)
    app.command('/jit')(handle_jit_command)
    app.action(ActionId.APPROVE.value)(handle_approve_request)
    app.action(ActionId.DENY.value)(handle_deny_request)
    app.action(ActionId.EXTEND.value)(handle_extend_grant)
    app.action(ActionId.RELEASE.value)(handle_release_grant)
    app.action(ActionId.CANCEL.value)(handle_cancel_request)
    app.view(CallbackId.DENY_MODAL.value)(handle_deny_submission)
    app.view(CallbackId.REQUEST_MODAL.value)(handle_request_submission)
    app.event('app_home_opened')(handle_app_home_opened)
    app.error(handle_unexpected_error)
