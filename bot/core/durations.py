"""Durations as people and policies write them: ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m``,
``2 hours``, ``30 minutes``.

Everything inside jit counts whole seconds (``int``); this module is the only place that
turns text into seconds and back. Every duration is at most :data:`MAX_DURATION`: the digits people
type are counted before Python reads them as a number (it refuses numbers of more than 4,300 digits
with a ``ValueError`` of its own), and a refusal never repeats more than a few dozen characters of them.
"""

from __future__ import annotations

import re

_UNITS = {
    's': 1, 'sec': 1, 'secs': 1, 'second': 1, 'seconds': 1,
    'm': 60, 'min': 60, 'mins': 60, 'minute': 60, 'minutes': 60,
    'h': 3600, 'hr': 3600, 'hrs': 3600, 'hour': 3600, 'hours': 3600,
    'd': 86400, 'day': 86400, 'days': 86400,
}  # fmt: skip
_PART = re.compile(r'\s*([0-9]+)\s*([a-z]+)\s*')  # ASCII digits only: int() reads other scripts' digits too

#: The shortest grant anyone may ask for, unless a rule sets ``min_duration``.
MIN_DURATION = 10
#: The longest duration jit reads, anywhere (a grant, a rule's timeout, ``--since``, a retention): ten years.
MAX_DURATION = 3650 * 86400
#: More significant digits than this is more than MAX_DURATION in any unit (it has 9).
_MAX_DIGITS = len(str(MAX_DURATION)) + 1
#: How much of what was typed a refusal quotes.
_QUOTE = 40


class DurationError(ValueError):
    """Text that is not a duration. The message is safe to show to a user."""


class DurationTooLong(DurationError):
    """Written as a duration, but longer than :data:`MAX_DURATION` (a number of any size)."""


def _quoted(value: str | int) -> str:
    """``value`` as a refusal quotes it: at most a few dozen characters (str() of a huge int would raise)."""
    if isinstance(value, int):
        return str(value) if abs(value) < 10**_QUOTE else f'a number of more than {_QUOTE} digits'
    return repr(value if len(value) <= _QUOTE else value[: _QUOTE - 1] + '…')


def _too_long(value: str | int) -> DurationTooLong:
    return DurationTooLong(f'{_quoted(value)} is too long a duration: jit takes at most '
                           f'{format_duration(MAX_DURATION)} (ten years)')  # fmt: skip


def _what(value: object) -> str:
    """A value that is neither text nor a whole number, as a refusal names it (short, whatever its size)."""
    if isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return 'a list'
    if isinstance(value, dict):
        return 'a mapping'
    return 'nothing' if value is None else f'a {type(value).__name__}'


def parse_duration(value: object) -> int:
    """Return the number of seconds ``value`` stands for.

    Args:
        value: ``"90s"``, ``"1h30m"``, ``"2 hours"``, ``"1 hour 30 minutes"``, or an int of seconds
            (YAML turns a bare ``30`` into an int: it is read as seconds). Anything else (a YAML ``1.5``, a list,
            a mapping) is refused.

    Raises:
        DurationTooLong: longer than :data:`MAX_DURATION`, however many digits it has.
        DurationError: when the text is not a duration, or is zero, or the value is neither text nor an int.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DurationError(f'{_what(value)} is not a duration (use e.g. 30m, 2h, "2 hours")')
    if isinstance(value, int):
        seconds = value
    else:
        text = str(value).strip().lower().replace(',', ' ').replace(' and ', ' ')
        pos, seconds = 0, 0
        if not text:
            raise DurationError('a duration is empty (use e.g. 30m, 2h, "2 hours")')
        while pos < len(text):
            match = _PART.match(text, pos)
            if not match or match.group(2) not in _UNITS:
                raise DurationError(f'{_quoted(value)} is not a duration (use e.g. 90s, 15m, 2h, 1d, 1h30m, "2 hours")')
            digits = match.group(1).lstrip('0')
            if len(digits) > _MAX_DIGITS:
                raise _too_long(value)
            seconds += int(digits or '0') * _UNITS[match.group(2)]
            if seconds > MAX_DURATION:  # checked as it grows: "1d1d1d…" is refused at the first part too many
                raise _too_long(value)
            pos = match.end()
    if seconds <= 0:
        raise DurationError(f'{_quoted(value)} is not a positive duration')
    if seconds > MAX_DURATION:
        raise _too_long(value)
    return seconds


def seconds_value(text: object) -> int | None:
    """A number of seconds carried in a button value or a select option (``'1800'``), or None when it is not one:
    ASCII digits only (``'²'.isdigit()`` is true, and ``int('²')`` raises), at most :data:`MAX_DURATION`."""
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or len(text) > _MAX_DIGITS:
        return None
    value = int(text)
    return value if value <= MAX_DURATION else None


def looks_like_duration(text: str) -> bool:
    """True when ``text`` parses as a duration (used to tell ``ROLE`` from ``DURATION`` in a command).

    Also True for one written as a duration but too long (``99999999999h``): it stands where the duration
    goes, and :func:`parse_duration` then says why it is refused, rather than the word being taken for a
    role or the start of a reason (and the rule's default duration filed instead).
    """
    try:
        parse_duration(text)
    except DurationTooLong:
        return True
    except DurationError:
        return False
    return True


def format_duration(seconds: int) -> str:
    """The compact form, ``1h30m``, ``20m``, ``45s``, ``1d2h``: what jit prints everywhere."""
    seconds = int(seconds)
    if seconds <= 0:
        return '0s'
    out = []
    for unit, size in (('d', 86400), ('h', 3600), ('m', 60), ('s', 1)):
        if seconds >= size:
            count, seconds = divmod(seconds, size)
            out.append(f'{count}{unit}')
    return ''.join(out)
