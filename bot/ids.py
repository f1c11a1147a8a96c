"""Every identifier jit gives Slack (action IDs, callback IDs, block IDs), in one place.

A button's ``value`` carries only a request ID: it says which request, never who may decide.
"""

from __future__ import annotations

from enum import StrEnum


class ActionId(StrEnum):
    APPROVE = 'jit.approve'
    DENY = 'jit.deny'
    EXTEND = 'jit.extend'
    RELEASE = 'jit.release'
    CANCEL = 'jit.cancel'


class CallbackId(StrEnum):
    DENY_MODAL = 'jit.deny_modal'
    REQUEST_MODAL = 'jit.request_modal'


class BlockId(StrEnum):
    DENY_REASON = 'deny_reason'
    DECISION = 'jit.decision'
    STATUS = 'jit.status'
    REQ_ACCESS = 'access'
    REQ_DURATION = 'duration'
    REQ_REASON = 'reason'
    REQ_TICKET = 'ticket'
