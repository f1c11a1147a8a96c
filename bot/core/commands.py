"""What a user typed after ``/jit``, parsed: ``request RESOURCE [ROLE] [DURATION] [REASON...]`` and friends.

Parsing needs the policy only to tell a role from the first word of a reason: the word after
the resource is the role when the resource has a role by that name.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.durations import DurationError, looks_like_duration, parse_duration
from bot.core.errors import UsageError
from bot.core.policy import Policy

SUBCOMMANDS = ('request', 'list', 'release', 'extend', 'revoke', 'cancel', 'resources', 'ssh-key', 'help')

#: The resource and role the examples name when the policy has no resource with a role.
FALLBACK_EXAMPLE = ('demo-app', 'read')

_HELP = """*jit* - just-in-time access. Usage:
• `/jit request RESOURCE [ROLE] [DURATION] [REASON...]` - ask for access,
  e.g. {example}
• `/jit resources` - what you may request, for how long, and who approves
• `/jit list` - your requests and grants, and requests waiting for you
• `/jit release ID` - you are done: end your grant now
• `/jit extend ID DURATION [REASON...]` - more time on your grant (the rule decides if it needs approval)
• `/jit cancel ID` - withdraw your pending request
• `/jit revoke ID` - (admins) end anyone's grant now
• `/jit ssh-key [PUBLIC KEY]` - register the key SSH certificates are signed for (alone: show it)
• `/jit help` - this text
Durations: `90s`, `15m`, `2h`, `1d`, `1h30m`."""


def example_request(policy: Policy) -> str:
    """A ``/jit request`` that names a resource and role of ``policy`` (the first that has one), so an example
    works where it is shown: in the sandbox that is ``demo-app read``, not a resource it does not have."""
    resource, role = next(((name, next(iter(res.roles))) for name, res in policy.resources.items() if res.roles),
                          FALLBACK_EXAMPLE)  # fmt: skip
    return f'`/jit request {resource} {role} 30m debugging INC-4711`'


def help_text(policy: Policy) -> str:
    """What ``/jit help`` answers, its example from the policy in force (:func:`example_request`)."""
    return _HELP.format(example=example_request(policy))


@dataclass(frozen=True, slots=True)
class RequestArgs:
    """The parts of ``/jit request ...``; ``role``/``duration`` None means the rule's default."""

    resource: str
    role: str | None
    duration: int | None
    reason: str


def split_command(text: str) -> tuple[str, str]:
    """``"request prod-db read"`` -> ``("request", "prod-db read")``; empty or unknown -> ``("help", ...)``."""
    words = (text or '').strip().split(None, 1)
    if not words:
        return 'help', ''
    sub = words[0].lower()
    return (sub if sub in SUBCOMMANDS else 'help'), (words[1] if len(words) > 1 else '')


def parse_request_id(text: str, sub: str) -> str:
    """The ID after ``release``, ``revoke`` or ``cancel``."""
    words = text.split()
    if len(words) != 1:
        raise UsageError(f'Say which request: `/jit {sub} ID` (the IDs are in `/jit list`).')
    return words[0].strip('`')


def parse_extend_args(text: str) -> tuple[str, int, str]:
    """``ID DURATION [REASON...]`` of ``/jit extend``.

    Raises:
        UsageError: no ID or no duration, or a duration too long to read.
    """
    words = text.split()
    if len(words) < 2 or not looks_like_duration(words[1]):
        raise UsageError('Say which grant and how much more time: `/jit extend ID DURATION [REASON...]`, '
                         'e.g. `/jit extend r-abcd2345 30m still debugging`.')  # fmt: skip
    return words[0].strip('`'), _duration(words[1]), ' '.join(words[2:])


def _duration(word: str) -> int:
    """The seconds of a word :func:`looks_like_duration` accepted; too long to read is a usage error."""
    try:
        return parse_duration(word)
    except DurationError as exc:  # DurationTooLong: written as a duration, but more than jit takes
        raise UsageError(f'{exc}.') from exc


def parse_request_args(text: str, policy: Policy) -> RequestArgs:
    """Read ``RESOURCE [ROLE] [DURATION] [REASON...]``.

    Raises:
        UsageError: no resource, or a duration in its place that is too long (however many digits): it is
            refused rather than read as the reason's first word and the rule's default filed instead.
    """
    words = text.split()
    if not words:
        raise UsageError('Say what you need: `/jit request RESOURCE [ROLE] [DURATION] [REASON...]`, '
                         f'e.g. {example_request(policy)}.')  # fmt: skip
    resource, rest = words[0], words[1:]
    role: str | None = None
    res = policy.resources.get(resource)
    if rest and ((res is None and not looks_like_duration(rest[0])) or (res is not None and rest[0] in res.roles)):
        role, rest = rest[0], rest[1:]
    duration: int | None = None
    if rest and looks_like_duration(rest[0]):
        duration, rest = _duration(rest[0]), rest[1:]
    return RequestArgs(resource, role, duration, ' '.join(rest))
