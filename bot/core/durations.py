"""Durations as people and policies write them: ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m``,
``2 hours``, ``30 minutes``.

Everything inside jit counts whole seconds (``int``); this module is the only place that
turns text into seconds and back.
"""

from __future__ import annotations

import re

_UNITS = {
    's': 1, 'sec': 1, 'secs': 1, 'second': 1, 'seconds': 1,
    'm': 60, 'min': 60, 'mins': 60, 'minute': 60, 'minutes': 60,
    'h': 3600, 'hr': 3600, 'hrs': 3600, 'hour': 3600, 'hours': 3600,
    'd': 86400, 'day': 86400, 'days': 86400,
}  # fmt: skip
_PART = re.compile(r'\s*(\d+)\s*([a-z]+)\s*')

#: The shortest grant anyone may ask for, unless a rule sets ``min_duration``.
MIN_DURATION = 10


class DurationError(ValueError):
    """Text that is not a duration. The message is safe to show to a user."""


def parse_duration(value: str | int) -> int:
    """Return the number of seconds ``value`` stands for.

    Args:
        value: ``"90s"``, ``"1h30m"``, ``"2 hours"``, ``"1 hour 30 minutes"``, or an int of seconds
            (YAML turns a bare ``30`` into an int: it is read as seconds).

    Raises:
        DurationError: when the text is not a duration, or is zero.
    """
    if isinstance(value, bool):
        raise DurationError(f'{value!r} is not a duration (use e.g. 30m, 2h, "2 hours")')
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
                raise DurationError(f'{value!r} is not a duration (use e.g. 90s, 15m, 2h, 1d, 1h30m, "2 hours")')
            seconds += int(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
    if seconds <= 0:
        raise DurationError(f'{value!r} is not a positive duration')
    return seconds


def looks_like_duration(text: str) -> bool:
    """True when ``text`` parses as a duration (used to tell ``ROLE`` from ``DURATION`` in a command)."""
    try:
        parse_duration(text)
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
