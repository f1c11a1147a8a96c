"""Errors at the HTTP edge, mapped in one place: each refusal's status, message and headers.

=========================  ======  =========================================================
error                      status  body / headers
=========================  ======  =========================================================
``PolicyDenied``           403     ``allowed``: what the policy would allow this pipeline
``IdentityRefused``        403
``NotPermitted``           403     (``NotAnApprover`` among them)
``RequestNotFound``        404
``InvalidTransition``      409     (already decided, already ending)
``TooManyRequests``        429     ``Retry-After``
``SlackUnavailable``       503     ``Retry-After``
any other refusal          400     (``UsageError`` and the rest of ``RequestError``)
anything else              500     an apology with an error ID, the same ID as in the log line
=========================  ======  =========================================================

A handler raises :class:`ApiError` for what only HTTP knows (a bad header, a body too large), or lets a use
case's :class:`~bot.core.errors.JitError` through; ``bot.api.server.api_guard`` turns either into its JSON
answer with :func:`answer_for`.
"""

from __future__ import annotations

import math
from typing import Any

from bot.core.errors import (
    IdentityRefused,
    InvalidTransition,
    JitError,
    NotPermitted,
    PolicyDenied,
    RequestError,
    RequestNotFound,
    SlackUnavailable,
    TooManyRequests,
    apology,
)


class ApiError(Exception):
    """An answer other than success: status, message, and optional fields or headers."""

    def __init__(self, status: int, error: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(error)
        self.status, self.error, self.headers, self.extra = status, error, headers or {}, extra


#: Refusals by their status, most specific first (``isinstance`` order).
_STATUS: tuple[tuple[type[RequestError], int], ...] = (
    (PolicyDenied, 403), (IdentityRefused, 403), (NotPermitted, 403), (RequestNotFound, 404),
    (InvalidTransition, 409), (TooManyRequests, 429), (SlackUnavailable, 503),
)  # fmt: skip


def answer_for(exc: JitError) -> ApiError:
    """The HTTP answer to a refusal from a use case (a ``JitError`` that is not a refusal is a bug: 500)."""
    if not isinstance(exc, RequestError):
        raise TypeError(f'{type(exc).__name__} is not a refusal')  # the guard answers it as a bug
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
    if isinstance(exc, PolicyDenied):
        return ApiError(status, exc.user_message, allowed=list(getattr(exc.decision, 'allowed', ()) or ()))
    if isinstance(exc, TooManyRequests):
        wait = str(math.ceil(exc.retry_after)) if exc.retry_after else '60'
        # The Slack wording names a command a pipeline cannot type.
        return ApiError(
            status, exc.user_message.replace('/jit cancel ID', 'release one'), headers={'Retry-After': wait}
        )
    if isinstance(exc, SlackUnavailable):
        return ApiError(status, exc.user_message, headers={'Retry-After': '5'})
    return ApiError(status, exc.user_message)


def unexpected(error_id: str) -> ApiError:
    """The answer to a bug: 500, an apology and the error ID of the log line."""
    return ApiError(500, apology(error_id).replace('`', ''), error_id=error_id)
