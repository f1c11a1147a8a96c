"""The errors of jit, each carrying a message that is safe to show to a user.

The hierarchy::

    * JitError                      base; ``.user_message`` is safe for Slack and the API
      x PolicyConfigError           a bad policy file: ``.problems`` lists ``file:line: what``
      x ConfigError                 bad settings: names every missing or invalid key
      x RequestError                the user asked for something the policy or the state refuses
        + UsageError                a command that cannot be read; the message says how to write it
        + PolicyDenied              no rule allows it; carries the decision with its reason
        + NotPermitted              not this person's to do: release or extend another's grant, cancel
                                    another's request, revoke without being an admin
          + NotAnApprover           the clicker may not decide (not an approver, or the requester)
        + IdentityRefused           deleted, bot, guest user, or another team
        + SlackUnavailable          Slack did not say who the user is in time; nothing was done
        + InvalidTransition         e.g. approve after deny; ``already decided`` is this
        + RequestNotFound           no such request ID
      x ProviderError
        + TransientProviderError    ``retryable``: timeouts, 5xx, throttling - tried again with backoff
        + PermanentProviderError    no retry: the grant fails and the requester is told

The edges map these in one place each (``bot.listeners.errors`` for Slack, ``bot.api.errors`` for the
HTTP API, the CLI); nothing below them catches ``Exception`` to hide a bug. Anything that is not a
``JitError`` is a bug: the edge logs it with :func:`new_error_id` and shows the user :func:`apology`.
"""

from __future__ import annotations

import secrets
from typing import Any

from bot.core.characters import visible


def new_error_id() -> str:
    """A short ID for one unexpected error: in its log line and in the apology, so a report finds the line."""
    return secrets.token_hex(4)


def apology(error_id: str) -> str:
    """What a user is told when jit failed for a reason of its own (a bug, not a refusal)."""
    return (f'Sorry, jit failed to do that (error ID `{error_id}`). Nothing you did caused it; '
            'if it happens again, give this ID to the people who run jit.')  # fmt: skip


class JitError(Exception):
    """Base of every error jit raises on purpose."""

    user_message: str = 'Something went wrong.'

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.user_message = message
        super().__init__(self.user_message)


class ConfigError(JitError):
    """Settings that cannot work. The message names every problem at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__('invalid settings:\n  ' + '\n  '.join(problems))


class PolicyConfigError(JitError):
    """A policy that cannot load. ``problems`` are ``file:line: message`` strings, all of them."""

    def __init__(self, problems: list[str]) -> None:
        # One line each, every character shown: a problem quotes what the file says (a name, a reference), and
        # is printed to terminals and CI logs, where a line break would start a line of its own (`::error::`).
        self.problems = [visible(problem) for problem in problems]
        super().__init__('\n'.join(self.problems))


class RequestError(JitError):
    """The user asked for something that is refused; nothing was changed."""


class UsageError(RequestError, ValueError):
    """A command that cannot be read (a missing word, a duration in the wrong place); the message says how to
    write it. A ``ValueError`` too, as parsing errors are."""


class PolicyDenied(RequestError):
    """No rule allows the request. ``decision`` says why, and what would be allowed."""

    def __init__(self, message: str, decision: Any = None) -> None:
        self.decision = decision
        super().__init__(message)


class TooManyRequests(RequestError):
    """The requester filed too many requests lately, or has too many waiting; nothing was filed.

    The limits keep approvers' DMs from being flooded, by a person or by a runaway script.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class NotPermitted(RequestError):
    """This step on this request is not this person's to take (it is the grantee's, the requester's, an admin's)."""

    user_message = 'You may not do that to this request.'


class NotAnApprover(NotPermitted):
    """The person who clicked may not decide this request."""

    user_message = 'You are not an approver of this request.'


class IdentityRefused(RequestError):
    """Deleted, bot and guest users, and users of another workspace, may neither request nor approve."""

    user_message = 'Your Slack account may not use jit (deleted, bot, guest or another workspace).'


class SlackUnavailable(RequestError):
    """Slack did not say in time who the user is (rate-limited, slow): nothing was done, try again."""

    user_message = 'Slack is slow right now, so nothing was done. Try again in a moment.'


class NotThisChannel(NotPermitted):
    """A decision through a channel the request's rule does not take decisions from (a link, when the rule asks
    only in Slack)."""

    user_message = 'This request is decided in Slack only.'


class InvalidTransition(RequestError):
    """The request is not in a state that allows this step (for example it was already decided)."""

    user_message = 'This request was already decided.'


class RequestNotFound(RequestError):
    """No request has that ID."""

    user_message = 'No request has that ID.'


class ProviderError(JitError):
    """A provider could not grant or revoke."""

    retryable = False


class TransientProviderError(ProviderError):
    """Worth trying again: a timeout, a 5xx, throttling."""

    retryable = True


class PermanentProviderError(ProviderError):
    """Trying again will not help: a bad setting, a refused role, a 4xx."""

    retryable = False


class DeliveryError(JitError):
    """A message to an approver outside Slack (an email, a Teams card) was not delivered.

    ``transient``: worth trying again later (the server is down, busy or rate-limiting); otherwise it will fail the
    same way every time (the address is refused, the webhook is gone, a setting is missing).
    """

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.transient, self.retry_after = transient, retry_after
