"""Characters that do something other than show: the one statement of which they are, and what jit does with them.

Text from people and pipelines (a reason, a ticket) and from policy files (a rule's name) ends up on terminals,
in CI logs, in Markdown comments and in Slack. Three kinds of character there act instead of showing:

* **controls** (C0, DEL, C1, and the Unicode line and paragraph separators): ``ESC [2K`` erases a terminal
  line, ``ESC ]0;`` retitles the window, a line break starts a forged line (a GitHub Actions ``::error::``
  command, a second "approved by");
* **invisible** characters that reorder or hide text: bidi embeddings, overrides, isolates and marks
  ("Trojan Source"), zero-width spaces;
* **blank-looking letters** (U+3164 HANGUL FILLER, U+2800 BRAILLE PATTERN BLANK, ...): text that is there and
  shows nothing, so a reason of them passes for one while saying nothing.

:func:`visible` shows the first two as escapes (``\\x1b``, ``\\u202e``) where every character must be accounted
for (a terminal, a CSV an auditor opens, a policy problem); :func:`control_in` finds a control where none
belongs (at filing); :func:`is_blank` says whether text says anything at all. Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata

#: Control characters (C0, DEL, C1) and the Unicode line and paragraph separators.
CONTROL = re.compile('[\x00-\x1f\x7f-\x9f\u2028\u2029]')
#: Characters that reorder or hide text: bidi embeddings, overrides, isolates and marks; zero-width spaces.
INVISIBLE = re.compile('[\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]')
#: What :func:`visible` writes as an escape: controls, invisible characters, and lone surrogates (which cannot
#: even be written as UTF-8).
ESCAPED = re.compile(f'{CONTROL.pattern}|{INVISIBLE.pattern}|[\ud800-\udfff]')
#: What :func:`hidden_in` looks for, in one pass: controls but tabs and line breaks, and invisible characters.
_ACTING = re.compile('[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]|' + INVISIBLE.pattern)
#: Letters and symbols that render as nothing (they are not white space to ``str.strip``).
_BLANK_LOOKING = frozenset('\u115f\u1160\u17b4\u17b5\u180e\u2800\u3164\uffa0')
#: Categories that show nothing on their own: controls, formats, separators, combining marks.
_SHOWS_NOTHING = frozenset({'Cc', 'Cf', 'Zs', 'Zl', 'Zp', 'Mn', 'Me'})


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f'\\x{code:02x}' if code < 0x100 else f'\\u{code:04x}'


def visible(text: str, *, keep: str = '') -> str:
    """``text`` with every control and invisible character (and lone surrogate) written as an escape (``\\x1b``,
    ``\\u202e``), but those in ``keep`` (e.g. ``'\\n'`` where a format has lines of its own)."""
    if keep:
        return ESCAPED.sub(lambda m: m.group() if m.group() in keep else _escape(m), text)
    return ESCAPED.sub(_escape, text)


def control_in(text: str, *, allowed: str = '\t\n\r') -> str | None:
    """The first control character of ``text`` not in ``allowed``, as :func:`visible` writes it; None if none."""
    for match in CONTROL.finditer(text):
        if match.group() not in allowed:
            return _escape(match)
    return None


def hidden_in(text: str) -> str | None:
    """The first character of ``text`` that acts instead of showing, but tabs and line breaks (a control or an
    invisible one), named with its escape (``the control character \\x1b``); None if none. One regex pass:
    policy files are checked with it, every value."""
    found = _ACTING.search(text)
    if found is None:
        return None
    kind = 'control' if CONTROL.match(found.group()) else 'invisible'
    return f'the {kind} character {_escape(found)}'


def is_blank(text: str) -> bool:
    """True when ``text`` shows nothing: white space, controls, zero-width and format characters, combining marks
    alone, blank-looking letters. ``str.strip`` alone lets ``"\\u200b"`` or ``"\\u3164"`` pass for a reason."""
    return all(c in _BLANK_LOOKING or unicodedata.category(c) in _SHOWS_NOTHING for c in text)
