"""Does a ticket pattern repeat a repeat ambiguously, as ``(x+)+``? The analysis behind lint's nested-quantifier.

Part of lint (:mod:`bot.core.policy_lint`): a walk over Python's parse of the pattern
(:func:`~bot.core._ticket_pattern.python_parse`) that asks which characters a repeated part can start and
end with. jit itself matches with RE2, in linear time; the warning is for the tools that backtrack.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bot.core._ticket_pattern import python_nodes, python_parse

_REPEATS = frozenset({'MAX_REPEAT', 'MIN_REPEAT', 'POSSESSIVE_REPEAT'})
#: Characters tried when asking whether two sets of characters meet: ASCII, and a few beyond it that the
#: classes ``\w``, ``\d``, ``\s`` and ``.`` hold; the characters a pattern names are added to them.
_SAMPLES = frozenset(map(chr, range(128))) | frozenset('\u00a0\u00e9\u00df\u0661\u20ac\u4e00')
_CATEGORIES: dict[str, Callable[[str], bool]] = {
    'CATEGORY_DIGIT': str.isdecimal,
    'CATEGORY_NOT_DIGIT': lambda c: not c.isdecimal(),
    'CATEGORY_SPACE': str.isspace,
    'CATEGORY_NOT_SPACE': lambda c: not c.isspace(),
    'CATEGORY_WORD': lambda c: c.isalnum() or c == '_',
    'CATEGORY_NOT_WORD': lambda c: not (c.isalnum() or c == '_'),
}
#: One character that a match can start or end with: (parse node name, argument).
_Char = tuple[str, Any]


def ambiguous_repeat(pattern: str) -> bool:
    """Does ``pattern`` repeat a body that holds a repeat of variable length, and can end where it starts?

    Those are the repeats a backtracking engine explores exponentially: ``(x+)+`` against ``xxx…x!`` tries every
    way of cutting the x's into repetitions. ``(-[A-Z0-9]+)*`` is not one (each repetition starts with ``-``,
    which the one before cannot end with), nor ``(?:[A-Z]{2}-){3}`` (nothing inside varies). A pattern
    Python does not read (RE2's own syntax) is not analysed.
    """
    parsed = python_parse(pattern)
    if parsed is None:
        return False
    ignore_case = bool(parsed.state.flags & re.IGNORECASE)
    samples = set(_SAMPLES)
    for op, arg in python_nodes(parsed):
        if op == 'LITERAL':
            samples.add(chr(arg))
        elif op == 'RANGE':
            samples.update(map(chr, arg))
    for op, arg in python_nodes(parsed):
        if op not in _REPEATS or arg[1] <= 1:
            continue
        body = arg[2]
        if not any(o in _REPEATS and a[0] != a[1] and a[1] > 1 for o, a in python_nodes(body)):
            continue
        first, last = _edge(body, first=True)[0], _edge(body, first=False)[0]
        if first is None or last is None:
            if first != [] and last != []:
                return True
            continue
        if any(_holds(first, c, ignore_case) and _holds(last, c, ignore_case) for c in samples):
            return True
    return False


def _edge(items: Any, *, first: bool) -> tuple[list[_Char] | None, bool]:
    """The characters a match of ``items`` can start (``first``) or end with, and whether it can be empty.

    None for the characters: any character at all (a node this does not know, a backreference).
    """
    found: list[_Char] = []
    chars: list[_Char] | None
    for item in list(items) if first else list(items)[::-1]:
        op, arg = item[0].name, item[1]
        if op in ('LITERAL', 'NOT_LITERAL', 'ANY', 'IN'):
            chars, empty = [(op, arg)], False
        elif op in ('AT', 'ASSERT', 'ASSERT_NOT'):
            chars, empty = [], True
        elif op == 'SUBPATTERN':
            chars, empty = _edge(arg[3], first=first)
        elif op == 'ATOMIC_GROUP':
            chars, empty = _edge(arg, first=first)
        elif op in _REPEATS:
            chars, empty = _edge(arg[2], first=first)
            empty = empty or arg[0] == 0
        elif op == 'BRANCH':
            edges = [_edge(choice, first=first) for choice in arg[1]]
            chars = None if any(e[0] is None for e in edges) else [c for e in edges for c in e[0] or ()]
            empty = any(e[1] for e in edges)
        else:  # a backreference, a conditional group: anything
            return None, True
        if chars is None:
            return None, True
        found.extend(chars)
        if not empty:
            return found, False
    return found, True


def _holds(chars: list[_Char], c: str, ignore_case: bool) -> bool:
    """Can one of ``chars`` be the character ``c`` (or, ignoring case, its other case)?"""
    forms = {c, c.lower(), c.upper()} if ignore_case else {c}
    return any(_is(op, arg, form) for op, arg in chars for form in forms)


def _is(op: str, arg: Any, c: str) -> bool:
    if op == 'LITERAL':
        return bool(ord(c) == arg)
    if op == 'NOT_LITERAL':
        return bool(ord(c) != arg)
    if op == 'ANY':
        return c != '\n'
    if op == 'RANGE':
        return bool(arg[0] <= ord(c) <= arg[1])
    if op == 'CATEGORY':
        category = _CATEGORIES.get(arg.name)
        return True if category is None else category(c)  # one this does not know: it may be any character
    if op == 'IN':
        negate = bool(arg) and arg[0][0].name == 'NEGATE'
        members = arg[1:] if negate else arg
        return any(_is(item[0].name, item[1], c) for item in members) != negate
    return True  # a node this does not know: it may be any character
