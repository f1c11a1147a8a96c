"""Text a user or a pipeline wrote, made safe for Slack mrkdwn: the one place every builder escapes through.

Slack reads ``<`` up to the next ``>`` as a control sequence anywhere in mrkdwn (backticks do not protect):
``<!channel>`` pings a channel and ``<https://evil.example|Approve>`` is a link whose target nobody sees. So
a reason, a ticket, a deny reason, a pipeline's name or context, an error from a provider, a name someone
typed: all of it goes through :func:`text` (or :func:`code`), which

* escapes ``&``, ``<`` and ``>`` as ``&amp;``, ``&lt;``, ``&gt;`` (Slack's rule, and all of it: only these
  three are entities, so ``&lt;`` written by someone shows as ``&lt;``, not as ``<``);
* shows the markup characters ``*``, ``_``, ``~`` and the backtick as look-alikes (U+2217, U+02CD, U+223C,
  U+02CB), so they cannot pair with each other or with jit's own ``*Reason:*`` (mrkdwn has no backslash
  escape; ``_`` between two letters or digits, as in ``snake_case``, is not markup and stays);
* puts it on one line (line breaks and other control characters become spaces), so it cannot forge a second
  "Approved by" line or start a quote, and drops characters that reorder or hide text (bidi overrides such
  as U+202E, zero-width spaces);
* cuts it to a length with an ellipsis, between escapes, never inside ``&amp;``.

Mentions are written only by :func:`mention`, from a Slack user ID of the right shape (a verified one: the
requester, an approver, an admin). Block text objects are ``verbatim``, so Slack does not turn a bare
``@channel``, ``#channel`` or URL into a live one either. Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Any

from bot.core.characters import CONTROL, INVISIBLE
from bot.core.model import Principal

#: A Slack user ID (``U…``/``W…``): the only thing jit ever puts in a ``<@…>`` mention.
SLACK_USER_ID = re.compile(r'[UW][A-Z0-9]{2,}')
#: Slack's limit on a text object's text.
MAX_TEXT = 3000
ELLIPSIS = '…'
_INVISIBLE, _CONTROL = INVISIBLE, CONTROL  # what hides or reorders text, and controls (bot.core.characters)
#: Lone surrogates: Slack's JSON would refuse them.
_SURROGATE = re.compile('[\ud800-\udfff]')
_LOOKALIKE = {'*': '\u2217', '_': '\u02cd', '~': '\u223c', '`': '\u02cb'}
ENTITIES = {'&': '&amp;', '<': '&lt;', '>': '&gt;'}
_DECODED = {v: k for k, v in ENTITIES.items()}
_SLACK_ENTITY = re.compile('&(?:amp|lt|gt);')


def one_line(value: object) -> str:
    """One line of visible text: control characters and line breaks to spaces, invisible ones (bidi controls,
    zero-width spaces) gone, runs of white space to one space, lone surrogates to U+FFFD. Nothing is escaped:
    the flattening alone, for surfaces that are not mrkdwn (a Teams card's text runs)."""
    visible = _SURROGATE.sub('\ufffd', _CONTROL.sub(' ', _INVISIBLE.sub('', str(value))))
    return ' '.join(visible.split())


def clipped_line(value: object, limit: int) -> str:
    """:func:`one_line`, at most ``limit`` characters (an ellipsis ends a cut): what an email or a Teams card shows
    of something someone wrote."""
    line = one_line(value)
    return line if len(line) <= limit else line[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def literal(value: object) -> str:
    """Every character as it is, for a code span or block (access details): ``& < >`` escaped, line breaks
    kept, only control characters and those that reorder or hide text dropped."""
    kept = _SURROGATE.sub('\ufffd', _INVISIBLE.sub('', str(value)))
    return ''.join(ENTITIES.get(c) or c for c in kept if c == '\n' or not _CONTROL.match(c))


def typed(value: str) -> str:
    """What a user typed, from the form Slack sends it in (a slash command's text): Slack writes ``&``, ``<``
    and ``>`` as entities, which are decoded once here, so that what is stored (and escaped again for every
    message) is what was typed; ``<…>`` sequences Slack made stay as they are, and are text to jit."""
    return _SLACK_ENTITY.sub(lambda m: _DECODED[m.group()], value)


def _word(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _fit(pieces: list[str], limit: int) -> str:
    """The pieces joined, or as many as fit before an ellipsis within ``limit``: never half an escape."""
    if sum(map(len, pieces)) <= limit:
        return ''.join(pieces)
    out, size = [], 0
    for piece in pieces:
        if size + len(piece) > limit - len(ELLIPSIS):
            break
        out.append(piece)
        size += len(piece)
    kept = ''.join(out).rstrip()
    if kept.endswith('_'):  # it was inside a word; before the ellipsis it would be markup
        kept = kept[:-1] + _LOOKALIKE['_']
    return kept + ELLIPSIS


def text(value: object, limit: int = 1000) -> str:
    """Anything a user, a pipeline or another system wrote, as inert mrkdwn on one line, at most ``limit``
    characters: it shows as written (markup characters as look-alikes) and is never a mention, a link or
    markup."""
    clean = one_line(value)
    pieces, size = [], 0
    for i, char in enumerate(clean):
        if char == '_' and 0 < i < len(clean) - 1 and _word(clean[i - 1]) and _word(clean[i + 1]):
            piece = char  # snake_case: Slack does not read an underscore inside a word as markup
        elif char == '>' and i == 0:
            piece = '\u203a'  # `&gt;` opening a line would be a quote
        else:
            piece = ENTITIES.get(char) or _LOOKALIKE.get(char) or char
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            break  # it is cut anyway
    return _fit(pieces, limit)


def code(value: object, limit: int = 200) -> str:
    """A value in a code span (`` `r-abcd2345` ``, a resource name): the backticks included. Inside one, Slack
    shows ``*`` and ``_`` as they are but still reads ``<…>`` and entities, and a backtick would close it.
    Nothing to show (empty, or invisible characters only) is ``?``."""
    pieces = [ENTITIES.get(char) or ('\u02cb' if char == '`' else char) for char in one_line(value)[: limit + 1]]
    return f'`{_fit(pieces, limit) or "?"}`'  # an empty span is two backticks, which may make three with the next


def message(value: str, limit: int = MAX_TEXT) -> str:
    """A message jit wrote that may echo what someone typed (a refusal: ``No request has the ID `x```): its
    code spans and line breaks stay; ``& < >`` are escaped and invisible characters dropped, so nothing in it
    is a mention or a link."""
    lines = []
    for line in value.split('\n'):
        kept = _CONTROL.sub('', _SURROGATE.sub('\ufffd', _INVISIBLE.sub('', line)))
        bare = kept.lstrip()
        if bare.startswith('>'):  # `&gt;` opening a line would be a quote
            kept = kept[: len(kept) - len(bare)] + '\u203a' + bare[1:]
        lines.append(''.join(ENTITIES.get(c) or c for c in kept))
    return cut('\n'.join(lines), limit)


def mention(who: Principal | None, *, nobody: str = 'someone') -> str:
    """How messages name a principal: a live ``<@U…>`` mention for a Slack user (the one place jit writes
    one), else the pipeline's name or the email as text."""
    if who is None:
        return nobody
    if who.slack_id and SLACK_USER_ID.fullmatch(who.slack_id):
        return f'<@{who.slack_id}>'
    if who.pipeline:
        return 'pipeline:' + text(who.pipeline, 100)
    return text(who.email or who.slack_id or nobody, 200)


def user(identity: object) -> str:
    """An identity as recorded (an audit actor, a policy approver): a mention when it is a Slack user ID."""
    value = str(identity)
    return f'<@{value}>' if SLACK_USER_ID.fullmatch(value) else text(value, 200)


def cut(value: str, limit: int = MAX_TEXT) -> str:
    """Composed mrkdwn cut to ``limit`` with an ellipsis, never inside an entity or a ``<…>`` sequence."""
    if len(value) <= limit:
        return value
    head = value[: limit - len(ELLIPSIS)]
    amp, lt = head.rfind('&'), head.rfind('<')
    if amp > head.rfind(';'):
        head = head[:amp]
    if lt > head.rfind('>'):
        head = head[:lt]
    return head + ELLIPSIS


def section(value: str, accessory: dict[str, Any] | None = None) -> dict[str, Any]:
    """A section block of jit's mrkdwn, ``verbatim`` so that Slack adds no links or mentions of its own."""
    block: dict[str, Any] = {'type': 'section', 'text': {'type': 'mrkdwn', 'text': cut(value), 'verbatim': True}}
    if accessory:
        block['accessory'] = accessory
    return block


def context(value: str) -> dict[str, Any]:
    """A context block of jit's mrkdwn (``verbatim``, like :func:`section`)."""
    return {'type': 'context', 'elements': [{'type': 'mrkdwn', 'text': cut(value), 'verbatim': True}]}
