"""Reads Slack mrkdwn the way Slack does, to tell what in a message is live: control sequences, markup, lines.

Slack's rules, as far as text that a user or a pipeline wrote is concerned:

* ``<`` up to the next ``>`` is a control sequence, wherever it stands (inside backticks too): ``<!channel>``,
  ``<!here>``, ``<@U…>``, ``<#C…>``, ``<!subteam^…>``, ``<http://…|label>``. The only literal way to write
  ``<``, ``>`` and ``&`` is the entity (``&lt;``, ``&gt;``, ``&amp;``), and those three are the only entities.
* ``*bold*``, ``_italic_``, ``~strike~``, `` `code` `` and ```` ```blocks``` ```` are markup; ``_`` between two
  letters or digits (``snake_case``) is not. A line that starts with ``>`` (sent as ``&gt;``) is a quote.
* A line break starts a new line, which is how a reason could forge a second "Approved by" line.

A checker cannot tell on its own which parts of a text jit wrote, so it answers two questions: what is live
(:func:`problems`: every control sequence must be one jit may write, e.g. the requester's ``<@U…>`` from a
verified user ID, which the caller lists) and what the markup looks like with the words taken out
(:func:`skeleton`), to compare with the same message built from harmless text: any markup a user's text
added, or line it broke, shows as a difference.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

CONTROL = re.compile(r'<[^>]*>?')
ENTITY = re.compile(r'&(?:amp|lt|gt);')
#: Characters that reorder or hide text (bidi controls, zero-width spaces), and C0/C1 controls but the newline.
INVISIBLE = re.compile('[\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff'
                       '\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]')  # fmt: skip
MARKER = re.compile(r'<[^>]*>?|[*~`_]')
#: Slack's limit on a text object's text.
MAX_TEXT = 3000


def problems(text: str, *, allowed: Iterable[str] = ()) -> list[str]:
    """What in ``text`` is live, or unsafe, that jit did not mean: an empty list when nothing is.

    Args:
        text: the text as jit sent it to Slack (a message's ``text``, or one text object's ``text``).
        allowed: the control sequences jit itself writes here (``<@U0ALEX>``: a mention from a verified ID).
    """
    found = []
    allowed = set(allowed)
    for match in CONTROL.finditer(text):
        if match.group() not in allowed:
            found.append(f'live control sequence {match.group()!r}')
    rest = CONTROL.sub('', text)
    if '>' in rest:
        found.append('a bare ">"')
    for match in re.finditer('&', text):
        if not ENTITY.match(text, match.start()):
            found.append(f'"&" that is not one of &amp; &lt; &gt; ({text[match.start() : match.start() + 8]!r})')
    in_block = False  # inside a ``` code block every line is shown as it is: no quote starts there
    for line in text.split('\n'):
        if not in_block and line.lstrip().startswith(('&gt;', '>')):
            found.append(f'a quote line {line[:40]!r}')
        in_block ^= line.count('```') % 2 == 1
    for match in INVISIBLE.finditer(text):
        found.append(f'invisible or control character U+{ord(match.group()):04X}')
    return found


def skeleton(text: str) -> tuple[tuple[str, ...], ...]:
    """The markup of ``text`` with the words taken out: per line, its control sequences, code spans and markers.

    Inside a code span (a backtick up to the next one on the line) Slack shows ``*``, ``_`` and ``~`` as they
    are, but still reads control sequences; outside, it is conservative on purpose: every ``*``, ``~`` and
    lone backtick counts (whether or not Slack would pair it), and every ``_`` but one between two ASCII
    letters or digits, so that any marker a user's text brings shows.
    """
    lines = []
    for line in text.split('\n'):
        items: list[str] = []
        at = 0
        while (match := MARKER.search(line, at)) is not None:
            token, at = match.group(), match.end()
            if token == '`' and not line.startswith('``', match.start()) and (close := line.find('`', at)) != -1:
                items += ['`code`', *CONTROL.findall(line, at, close)]
                at = close + 1
            elif token == '`' and line.startswith('```', match.start()):
                items.append('```')
                at = match.start() + 3
            elif token != '_' or not (_word(line[match.start() - 1 : match.start()]) and _word(line[at : at + 1])):
                items.append(token)
        lines.append(tuple(items))
    return tuple(lines)


def _word(char: str) -> bool:
    return len(char) == 1 and char.isascii() and char.isalnum()


def text_objects(node: Any, where: str = '') -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Block Kit text object (``{"type": "mrkdwn"|"plain_text", "text": ...}``) in blocks or a view."""
    if isinstance(node, dict):
        if node.get('type') in ('mrkdwn', 'plain_text') and isinstance(node.get('text'), str):
            yield where, node
            return
        for key, value in node.items():
            yield from text_objects(value, f'{where}.{key}')
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from text_objects(value, f'{where}[{index}]')


def block_problems(blocks: Any, *, allowed: Iterable[str] = ()) -> list[str]:
    """:func:`problems` of every mrkdwn text object in ``blocks``, and those Slack parses beyond mrkdwn itself:
    a mrkdwn object without ``verbatim`` has bare ``@channel``, ``#channel`` and URLs turned into live ones."""
    found = []
    for where, obj in text_objects(blocks):
        if len(obj['text']) > MAX_TEXT:
            found.append(f'{where}: {len(obj["text"])} characters (Slack takes {MAX_TEXT})')
        if obj['type'] != 'mrkdwn':
            continue
        if obj.get('verbatim') is not True:
            found.append(f'{where}: mrkdwn without verbatim: Slack links bare @mentions, #channels and URLs')
        found += [f'{where}: {problem}' for problem in problems(obj['text'], allowed=allowed)]
    return found


def block_skeleton(blocks: Any) -> tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]:
    """:func:`skeleton` of every mrkdwn text object in ``blocks``, with where it is."""
    return tuple((where, skeleton(obj['text'])) for where, obj in text_objects(blocks) if obj['type'] == 'mrkdwn')
