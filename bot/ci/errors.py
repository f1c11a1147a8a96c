"""How ``jit ci`` ends when it does not succeed: each error carries its one-line message and exit code.

The hierarchy::

    CiError            ends the command: ``message`` on stderr, ``code`` as the exit code (2 by default)
     ├── Unreachable   no HTTP answer at all (2); ``--wait`` waits it out, a single call stops
     │    └── AnswerLost   the call may have arrived (reset, timed out): filing asks again, same key
     ├── Unusable      granted, but the details cannot be handed over (1); the access is released
     └── TimedOut      ``--wait`` ran past ``--timeout`` (3); the request is released

    BaseException
     └── _Interrupted  SIGINT or SIGTERM while a request is open (128 + the signal); it is released

The exit codes themselves are listed in :mod:`bot.ci`. Whose problem it is decides the code: the
policy's or the request's (1), the caller's settings or call (2), time (3).
"""

from __future__ import annotations

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3


class CiError(Exception):
    """Ends the command: ``message`` (one line, never the token) on stderr, ``code`` as the exit code."""

    code = EXIT_USAGE

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class Unreachable(CiError):
    """No HTTP answer at all: refused, reset, timed out, DNS, TLS. ``--wait`` keeps trying; a single call stops."""


class AnswerLost(Unreachable):
    """The call may have reached the server, but no answer came back (reset, closed, timed out)."""


class Unusable(CiError):
    """The access was granted but cannot be handed to the pipeline (unreadable details, an impossible
    env line); the caller releases it, since nobody could use it."""

    code = EXIT_REFUSED


class TimedOut(CiError):
    """``--wait`` waited ``--timeout`` without a grant."""

    code = EXIT_TIMEOUT


# BaseException: a signal is control flow, and must get past any ``except Exception`` inside urllib.
class _Interrupted(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
