"""A rule's ``ticket_pattern``: compiled by RE2, refused in words when it cannot be, read by Python for lint.

The decision (:func:`bot.core.policy.evaluate`) matches a request's ticket with :func:`compile_ticket_pattern`;
the loader refuses, where it is written, a pattern that does not compile, saying why with
:func:`ticket_pattern_problem`; lint walks Python's parse of it (:func:`python_parse`, :func:`python_nodes`).
One home, so that what loads, what matches and what lint reads are the same pattern read the same way.
"""

from __future__ import annotations

import functools
import importlib
import re
import warnings
from collections.abc import Iterator
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

#: A ticket is short: a word of the reason (or a ticket field) longer than this is never matched against a
#: rule's ``ticket_pattern``, and an explicit ticket longer than this is refused.
MAX_TICKET_LENGTH = 128
#: The longest ``ticket_pattern`` a policy may hold (the loader refuses longer ones).
MAX_TICKET_PATTERN_LENGTH = 200
#: The memory RE2 may use for one compiled ticket pattern (its program and its matching caches). A ticket
#: pattern needs a few kilobytes; one over this does not compile and is refused when the policy loads.
_TICKET_PATTERN_MEMORY = 1 << 20
#: Python's own parser of regular expressions (``sre_parse`` before 3.11): it names, for a ticket pattern RE2
#: refuses, the construct that needs backtracking, and lint walks its tree. Private, and stable for years.
_PY_PARSER: Any = importlib.import_module('re._parser')
#: What needs backtracking, by the name of Python's parse node: RE2 has none of these.
_BACKTRACKING = {
    'ASSERT': 'a look-ahead (`(?=…)`)',
    'ASSERT_NOT': 'a negative look-ahead (`(?!…)`)',
    'GROUPREF': 'a backreference (`\\1`, `(?P=name)`)',
    'GROUPREF_EXISTS': 'a conditional group (`(?(1)…|…)`)',
    'ATOMIC_GROUP': 'an atomic group (`(?>…)`)',
    'POSSESSIVE_REPEAT': 'a possessive repeat (`*+`, `++`, `?+`, `{m,n}+`)',
}
#: ``{,n}``: Python reads it as ``{0,n}``, RE2 as the text ``{,n}``.
_OPEN_COUNT = re.compile(r'\{,([0-9]+)\}')


class TicketPatternError(ValueError):
    """A ``ticket_pattern`` that RE2 does not compile; the message is RE2's reason, as text."""


@functools.lru_cache(maxsize=256)
def compile_ticket_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2, which matches in time linear in the text whatever the pattern.

    A ticket pattern is policy text and the words it is matched against are the requester's: with a
    backtracking engine (Python's ``re``), ``^([A-Z0-9]+-?)+$`` and 25 letters followed by ``!`` held the
    interpreter for seconds, doubling with each letter. RE2 has no backtracking, so it has no look-around and
    no backreferences: such a pattern does not compile, and the loader refuses it where it is written.
    Compiling is bounded too (repeat counts at most 1,000, :data:`_TICKET_PATTERN_MEMORY`).

    Raises:
        TicketPatternError: RE2 cannot compile ``pattern``.
    """
    options = re2.Options()
    options.log_errors = False  # RE2 would write every refusal to stderr, outside jit's logs
    options.max_mem = _TICKET_PATTERN_MEMORY
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        raise TicketPatternError(
            reason.decode('utf-8', 'replace') if isinstance(reason, bytes) else str(reason)
        ) from None
    except UnicodeEncodeError:  # a lone surrogate (the loader refuses those before)
        raise TicketPatternError('the pattern is not valid Unicode') from None


def ticket_pattern_problem(pattern: Any, rule: str) -> str | None:
    """Why ``pattern`` cannot be rule ``rule``'s ``ticket_pattern``, or None when it can.

    It is compiled here, when the policy loads, by the engine that matches it (RE2, linear in the text:
    :func:`compile_ticket_pattern`), so a pattern that loads is one that can be matched.
    What RE2 refuses because it needs backtracking is named as Python would read it, with what to write.
    """
    what = f'`ticket_pattern` of rule `{rule}`'
    if not isinstance(pattern, str):
        return f'{what} must be text: a regular expression, in quotes'
    if not pattern:
        return f'{what} is empty: leave it out, or write the pattern a ticket must match'
    if len(pattern) > MAX_TICKET_PATTERN_LENGTH:
        return (f'{what} has {len(pattern)} characters; a ticket pattern has at most {MAX_TICKET_PATTERN_LENGTH} '
                f'characters (a ticket at most {MAX_TICKET_LENGTH})')  # fmt: skip
    try:
        compile_ticket_pattern(pattern)
    except TicketPatternError as exc:
        return f'{what} {_unmatchable(pattern, str(exc))}'
    count = _open_count(pattern)
    if count is not None:
        return (f'{what} writes `{{,{count}}}`, which RE2 reads as that text, not as a count: '
                f'write `{{0,{count}}}`')  # fmt: skip
    return None


def _unmatchable(pattern: str, reason: str) -> str:
    """Why RE2 refused ``pattern``, in words: the construct that needs backtracking when there is one."""
    for op, arg in python_nodes(python_parse(pattern)):
        if op in _BACKTRACKING:
            construct = _BACKTRACKING[op]
            if op.startswith('ASSERT') and arg[0] != 1:  # the direction: 1 ahead, -1 behind
                construct = construct.replace('ahead', 'behind').replace('(?', '(?<')
            return (f'uses {construct}, which only a backtracking engine has: jit matches ticket patterns with RE2, '
                    'in time linear in the text, so write the pattern without it')  # fmt: skip
        if op == 'AT' and getattr(arg, 'name', None) == 'AT_END_STRING':
            return 'writes `\\Z`: in RE2 the end of the text is written `\\z`'
    hint = ''
    if 'repetition' in reason:
        hint = ' (a count is at most 1000, and counts inside counts at most 1000 multiplied together)'
    elif 'too large' in reason:
        hint = ' (it needs more memory than a ticket pattern may have: write it shorter)'
    return f'is not a valid regular expression: {reason[:200]}{hint}'


def _open_count(pattern: str) -> str | None:
    """The ``n`` of a ``{,n}`` outside a character class: Python would read a count where RE2 reads text."""
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == '\\':
            i += 2
            continue
        if in_class:
            in_class = char != ']'
        elif char == '[':
            in_class = True
            i += 1
            i += pattern.startswith('^', i)
            i += pattern.startswith(']', i)  # a `]` first in a class is itself
            continue
        elif char == '{':
            found = _OPEN_COUNT.match(pattern, i)
            if found:
                return found.group(1)
        i += 1
    return None


def python_parse(pattern: str) -> Any:
    """Python's parse of ``pattern``, or None when Python does not read it (RE2 syntax, like ``\\pL``)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # FutureWarning: "possible nested set", of a pattern RE2 reads anyway
        try:
            return _PY_PARSER.parse(pattern)
        except Exception:  # re.error, or a RecursionError of a pattern nested hundreds deep: not Python's
            return None


def python_nodes(parsed: Any) -> Iterator[tuple[str, Any]]:
    """Every node of a parse by :func:`python_parse` (none for None), as (its name, its argument)."""
    stack = [parsed] if parsed is not None else []
    while stack:
        item = stack.pop()
        if isinstance(item, _PY_PARSER.SubPattern):
            stack.extend(reversed(item.data))
        elif isinstance(item, tuple) and len(item) == 2 and hasattr(item[0], 'name'):
            yield item[0].name, item[1]
            stack.extend(_children(item[1]))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed([x for x in item if isinstance(x, (list, tuple, _PY_PARSER.SubPattern))]))


def _children(arg: Any) -> list[Any]:
    """The sub-patterns inside one node's argument (a repeat's body, a group's pattern, a branch's choices)."""
    if isinstance(arg, _PY_PARSER.SubPattern):
        return [arg]
    if isinstance(arg, (list, tuple)):
        return [x for x in reversed(arg) if isinstance(x, (list, tuple, _PY_PARSER.SubPattern))]
    return []
