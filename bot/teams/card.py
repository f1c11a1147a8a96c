"""The Adaptive Cards jit posts to a Teams channel: the approval request, its outcome, a break-glass notice.

Pure: each builder takes a request and returns the payload a Workflows (or incoming) webhook takes,
``{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", ...}]}``,
holding one Adaptive Card of version :data:`CARD_VERSION` (what Teams renders on desktop, web and mobile).

Teams reads markdown in a ``TextBlock`` and in a ``FactSet`` (``**bold**``, ``[Approve](https://evil)``), but
not in the ``TextRun`` elements of a ``RichTextBlock``: their text shows as it is. So the cards are built of
``RichTextBlock``/``TextRun`` only, no ``TextBlock`` or ``FactSet`` at all, and every piece of text that varies
(a reason, a ticket, a name, an email, a deny reason, the policy's resource, role and rule names) is a
``TextRun`` of its own, after :func:`plain`: on one line (line breaks and control characters to spaces, bidi
overrides and zero-width characters dropped, as for Slack) and cut with an ellipsis. The only URLs in a card
are its two actions', which the caller makes from jit's public URL and a signed channel token (``bot.links``).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from bot.blocks.mrkdwn import clipped_line, one_line
from bot.core.durations import format_duration
from bot.core.model import AccessRequest, Principal, RequestStatus
from bot.core.policy import Rule

#: The Adaptive Card version the cards declare: 1.4 is what Teams renders everywhere (1.5 not on mobile).
CARD_VERSION = '1.4'
CARD_SCHEMA = 'http://adaptivecards.io/schemas/adaptive-card.json'
CARD_CONTENT_TYPE = 'application/vnd.microsoft.card.adaptive'
#: How much of each text a card shows (the audit trail has it all; Teams takes about 28 KB a message).
REASON_CHARS, TICKET_CHARS, NAME_CHARS, EMAIL_CHARS, LINE_CHARS, ID_CHARS = 1000, 200, 100, 200, 500, 100
#: An outcome: who decided (an email, up to 200) and the deny reason (up to 1,000).
OUTCOME_CHARS = 1300
#: Under the buttons: why a click asks for an email (a webhook card cannot tell jit who clicked).
LINK_NOTE = ("Approve and Deny open jit's page, which asks for your work email and sends you a personal link "
             'to decide with: Teams does not tell jit who clicked.')  # fmt: skip
#: An outcome card's heading and its colour, by the request's status (any other: approved, then granted or not).
_OUTCOME_HEADINGS = {
    RequestStatus.DENIED: ('Denied', 'Attention'),
    RequestStatus.EXPIRED: ('Expired', 'Warning'),
    RequestStatus.CANCELLED: ('Cancelled', 'Default'),
    RequestStatus.PENDING: ('Still waiting', 'Default'),
    RequestStatus.FAILED: ('Approved, but the grant failed', 'Warning'),
}

Card = dict[str, Any]
Element = dict[str, Any]


#: Text someone wrote, on one line, cut with an ellipsis (the same on every surface outside Slack).
plain = clipped_line


def person(who: Principal | None, *, nobody: str = 'someone') -> str:
    """How a card names someone: ``Alex Doe (alex@example.com)``, the email or name alone, or the pipeline."""
    if who is None:
        return nobody
    if who.pipeline:
        return 'pipeline:' + plain(who.pipeline, NAME_CHARS)
    name = plain(who.name, NAME_CHARS) if who.name else ''
    email = plain(who.email, EMAIL_CHARS) if who.email else ''
    if name and email and name.lower() != email.lower():
        return f'{name} ({email})'
    return name or email or (f'Slack user {plain(who.slack_id, ID_CHARS)}' if who.slack_id else nobody)


def approval_card(request: AccessRequest, rule: Rule, *, approve_url: str, deny_url: str, waiting: str) -> Card:
    """The card that asks a channel's approvers: who asks for what, for how long and why, the rule, where the
    request stands (``waiting``: ``1 of 2 approved — waiting for security``), its ID, and Approve and Deny,
    which open jit's decision page at ``approve_url`` and ``deny_url``.

    Raises:
        ValueError: an action URL that is not an absolute http(s) URL.
    """
    title = 'Request to extend access' if request.extends else 'Access request'
    body = [
        _heading(title),
        _para(*_asks(request)),
        *_why(request),
        _field('Rule', plain(rule.name, NAME_CHARS)),
        _field('Status', plain(waiting, LINE_CHARS) or 'waiting for approval'),
        _field('Request', plain(request.id, ID_CHARS), fontType='Monospace'),
        _para(_run(LINK_NOTE, isSubtle=True, size='Small'), separator=True),
    ]
    actions = [
        {'type': 'Action.OpenUrl', 'title': 'Approve', 'url': _own_url(approve_url), 'style': 'positive'},
        {'type': 'Action.OpenUrl', 'title': 'Deny', 'url': _own_url(deny_url), 'style': 'destructive'},
    ]
    return _message(body, actions)


def outcome_card(request: AccessRequest, rule: Rule | None, *, outcome: str) -> Card:
    """The card that follows an approval card once the request is decided elsewhere or ends undecided.

    Args:
        outcome: how it ended, a plain sentence (``Denied by sec@example.com: use the replica``, as
            ``bot.core.progress.outcome_text`` writes it). It may hold what someone wrote (a deny reason), so it
            is a run of its own like any such text; the heading comes from the request's status.
    """
    heading, color = _OUTCOME_HEADINGS.get(request.status, ('Approved', 'Good'))
    body = [
        _heading(heading, color=color),
        _para(*_asks(request, verb='asked')),
        _para(_run(plain(outcome, OUTCOME_CHARS) or '?')),
        _field('Rule', plain(rule.name if rule else request.rule, NAME_CHARS)),
        _field('Request', plain(request.id, ID_CHARS), fontType='Monospace'),
    ]
    return _message(body)


def breakglass_card(request: AccessRequest, rule: Rule | None) -> Card:
    """The notice that someone approved their own request under a break-glass rule: nothing to decide."""
    body = [
        _heading('Break-glass access', color='Attention'),
        _para(
            _run(person(request.requester), weight='Bolder'),
            _run(' approved their own request for '),
            *_grant(request),
            _run(f' for {format_duration(request.duration)}.'),
        ),
        *_why(request),
        _field('Rule', plain(rule.name if rule else request.rule, NAME_CHARS)),
        _field('Request', plain(request.id, ID_CHARS), fontType='Monospace'),
        _para(_run('Nobody else was asked: the rule allows break-glass. The audit trail records it.', isSubtle=True)),
    ]
    return _message(body)


def _message(body: list[Element], actions: list[Element] | None = None) -> Card:
    content: Card = {'$schema': CARD_SCHEMA, 'type': 'AdaptiveCard', 'version': CARD_VERSION, 'body': body}
    if actions:
        content['actions'] = actions
    return {
        'type': 'message',
        'attachments': [{'contentType': CARD_CONTENT_TYPE, 'contentUrl': None, 'content': content}],
    }


def _run(value: str, **style: Any) -> Element:
    """A run of text shown as it is: Teams renders no markdown in a ``TextRun``."""
    return {'type': 'TextRun', 'text': value, **style}


def _para(*runs: Element, **block: Any) -> Element:
    return {'type': 'RichTextBlock', 'inlines': list(runs), **block}


def _heading(value: str, *, color: str = 'Default') -> Element:
    return _para(_run(value, size='Medium', weight='Bolder', color=color))


def _field(label: str, value: str, **style: Any) -> Element:
    """``Label: value``, the value a run of its own (``?`` when nothing visible is left of it)."""
    return _para(_run(f'{label}: ', weight='Bolder'), _run(value or '?', **style), spacing='Small')


def _grant(request: AccessRequest) -> list[Element]:
    """``read on demo-app``, the names in bold runs of their own."""
    role, resource = plain(request.role, NAME_CHARS) or '?', plain(request.resource, NAME_CHARS) or '?'
    return [_run(role, weight='Bolder'), _run(' on '), _run(resource, weight='Bolder')]


def _asks(request: AccessRequest, *, verb: str = 'asks') -> list[Element]:
    """``Alex Doe (alex@example.com) asks for read on demo-app for 1h`` (or asks to extend a grant)."""
    who = _run(person(request.requester), weight='Bolder')
    duration = format_duration(request.duration)
    if request.extends:
        extended = _run(plain(request.extends, ID_CHARS), fontType='Monospace')
        return [who, _run(f' {verb} to extend '), extended, _run(' ('), *_grant(request), _run(f') by {duration}')]
    return [who, _run(f' {verb} for '), *_grant(request), _run(f' for {duration}')]


def _why(request: AccessRequest) -> list[Element]:
    reason = plain(request.reason, REASON_CHARS) if request.reason else ''
    out = [_field('Reason', reason) if reason else _field('Reason', 'none given', italic=True)]
    if request.ticket:
        out.append(_field('Ticket', plain(request.ticket, TICKET_CHARS)))
    return out


def _own_url(url: str) -> str:
    """An action's URL, as given: jit's own page (the caller builds it), so only checked for its shape."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ('https', 'http') or not parts.hostname or one_line(url) != url or ' ' in url:
        raise ValueError('a card action needs an absolute http(s) URL of jit')
    return url
