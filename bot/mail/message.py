"""The emails jit sends approvers who are asked by email: the approval request, and the break-glass notice.

Each is an :class:`~email.message.EmailMessage` with a text part and an HTML alternative, built under
``email.policy.SMTP``: a header value with a line break raises instead of starting a header of its own.

What a requester, a pipeline or a policy wrote (names, email, reason, ticket, resource, role, rule) is

* flattened to one line (``bot.blocks.mrkdwn.one_line``: line breaks and control characters to spaces, bidi
  controls and zero-width characters dropped) and cut to a length, so it cannot forge a line of its own
  ("Approve: https://…") in either part nor reorder what surrounds it;
* written so that no mail client makes a link of it (:func:`unlinked`: ``https[:]//evil[.]example``): clients link
  the URLs and host names they find in a message's text, which would put a link of the requester's choosing
  beside Approve and Deny (the reason and the ticket always; a name when it reads as a link);
* in the HTML, escaped with ``html.escape(quote=True)``, and only ever text between tags: no user text is in an
  attribute. The HTML loads nothing (no images, fonts or styles from elsewhere) and runs nothing (no scripts);
  its only links are ``approve_url`` and ``deny_url``, which must be ``https://`` (or ``http://``) URLs.

Headers hold no user text but the Subject, which is built from the policy's names (role, resource), the request
ID and the requester's display name, each flattened and cut, and in which no RFC 2047 encoded word can start
(``=?`` is written ``= ?``: the stdlib decodes encoded words in a value it is given, line breaks included).
``To`` is exactly one address. ``Auto-Submitted: auto-generated`` (RFC 3834) keeps vacation responders quiet, as
does Exchange's ``X-Auto-Response-Suppress``.

Pure: no I/O. Imports the core and the flattening rules of ``bot.blocks.mrkdwn``, none of its Slack escaping.
"""

from __future__ import annotations

import email.policy
import html
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from urllib.parse import urlsplit

from bot.blocks.mrkdwn import clipped_line, one_line
from bot.core.durations import format_duration
from bot.core.model import AccessRequest, Principal
from bot.core.policy import Rule

#: How much of each text the emails show (the audit trail has all of it).
NAME_CHARS, EMAIL_CHARS, REASON_CHARS, TICKET_CHARS, POLICY_CHARS = 100, 254, 1000, 200, 100
#: How much of the requester's name the Subject shows, and of the whole Subject.
SUBJECT_NAME_CHARS, SUBJECT_CHARS = 60, 200
#: The policy: CRLF line ends (SMTP's), and quoted-printable or base64 bodies, so that no hop needs 8BITMIME.
POLICY = email.policy.SMTP.clone(cte_type='7bit')


#: Text someone wrote, on one line, cut with an ellipsis (the same on every surface outside Slack).
plain = clipped_line


#: What mail clients make a link of in a message's text: a scheme's ``:`` before ``//``, and the dots of a host name
#: whose last label is a top-level domain (``www.evil.example``, ``ops@evil.example``), IDNA's other dots too.
_SCHEME = re.compile(r'(?i)\b([a-z][a-z0-9+.-]{0,31}):(?=//)')
_HOST = re.compile(r'[\w-]+(?:[.\u3002\uff0e\uff61][\w-]+)+')
_DOTS = re.compile('[.\u3002\uff0e\uff61]')
_URLISH = re.compile(r'(?i)://|\bwww[.\u3002\uff0e\uff61]|[.\u3002\uff0e\uff61][\w-]+/')


def unlinked(value: object, limit: int) -> str:
    """What someone wrote, as :func:`plain`, and written so that no mail client makes a link of it: Outlook, Gmail
    and Apple Mail link URLs and host names they find in text (in the HTML part as well), which would put a link of
    the requester's choosing beside jit's Approve and Deny. ``https://evil.example/x`` shows as
    ``https[:]//evil[.]example/x``, the usual way to write a link not to be followed."""

    def host(match: re.Match[str]) -> str:
        name = match.group()
        last = _DOTS.split(name)[-1]
        return _DOTS.sub('[.]', name) if len(last) >= 2 and any(c.isalpha() for c in last) else name

    return plain(_HOST.sub(host, _SCHEME.sub(r'\1[:]', one_line(value))), limit)


def _h(value: object, limit: int) -> str:
    """The same, escaped for HTML text."""
    return html.escape(plain(value, limit), quote=True)


def who(principal: Principal) -> str:
    """The requester as an email names them: ``Ada Lovelace (ada@example.com)``, ``pipeline:deploy``, an ID."""
    if principal.pipeline:
        return 'pipeline:' + plain(principal.pipeline, NAME_CHARS)
    name = principal.name or ''
    # A name with a dot is common (a Slack handle, alex.rivera, stands in for a missing display name): only a name
    # that reads as a link (a scheme, www., a path) is written unlinked.
    name = unlinked(name, NAME_CHARS) if _URLISH.search(name) else plain(name, NAME_CHARS)
    address = plain(principal.email or '', EMAIL_CHARS)
    if name and address:
        return f'{name} ({address})'
    return name or address or plain(principal.slack_id or 'someone', NAME_CHARS)


def _short_name(principal: Principal) -> str:
    """The requester in a Subject: the display name, else the email or pipeline."""
    if principal.pipeline:
        return 'pipeline:' + plain(principal.pipeline, SUBJECT_NAME_CHARS)
    return plain(principal.name or principal.email or principal.slack_id or 'someone', SUBJECT_NAME_CHARS)


def when(ts: float) -> str:
    """``2025-06-01 14:30 UTC``: with the date, as mail is read hours later."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime('%Y-%m-%d %H:%M UTC')


def _grant(request: AccessRequest) -> str:
    return f'{plain(request.role, NAME_CHARS)} on {plain(request.resource, NAME_CHARS)}'


def _link(url: str, name: str) -> str:
    """``url`` checked as a link jit may put in a message: an absolute http(s) URL of visible characters."""
    parts = urlsplit(url)
    if parts.scheme not in ('https', 'http') or not parts.netloc or url != one_line(url) or ' ' in url:
        raise ValueError(f'{name} must be an absolute https:// URL')
    return url


def _headers(msg: EmailMessage, *, to: str, sender: str, subject: str) -> None:
    display, address = parseaddr(sender)
    if '@' not in address:
        raise ValueError('sender has no email address (jit <jit@example.com>)')
    try:
        recipient = Address(addr_spec=to)  # one address: "a@x, b@y" or "a@x\nBcc: c@z" raise
    except (ValueError, IndexError, AttributeError, MessageError):
        # The parser's own errors too: IndexError for an empty address, HeaderParseError for "<a@x>", "a@x." or
        # "a@b@x" (a policy names as an approver anything with an @), AttributeError for "a@[".
        raise ValueError('to must be one email address') from None
    if '@' not in recipient.addr_spec:
        raise ValueError('to must be one email address')
    msg['From'] = Address(display_name=plain(display, NAME_CHARS), addr_spec=address)
    msg['To'] = recipient
    # '=?' opens an RFC 2047 encoded word, which the stdlib decodes as the header is set (and a client as it shows
    # it): in a name it would bring back the line breaks and bidi controls flattening took out, as a header of its
    # own or a body. Written '= ?', it is text.
    msg['Subject'] = plain(subject, SUBJECT_CHARS).replace('=?', '= ?')
    msg['Date'] = format_datetime(datetime.now(tz=UTC))
    msg['Message-ID'] = make_msgid(domain=address.rpartition('@')[2])
    msg['Auto-Submitted'] = 'auto-generated'
    msg['X-Auto-Response-Suppress'] = 'All'


def _facts(request: AccessRequest, rule: Rule, extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """The lines both parts show, as (label, plain text)."""
    facts = [('Reason', unlinked(request.reason, REASON_CHARS) if request.reason else '(none given)')]
    if request.ticket:
        facts.append(('Ticket', unlinked(request.ticket, TICKET_CHARS)))
    facts.append(('Rule', plain(rule.name or request.rule, POLICY_CHARS)))
    if request.decision:
        facts.append(('Policy', plain(request.decision, REASON_CHARS)))
    facts.extend(extra)
    facts.append(('Request', plain(request.id, POLICY_CHARS)))
    return facts


def _text(head: str, facts: list[tuple[str, str]], tail: list[str]) -> str:
    width = max(len(label) for label, _ in facts) + 2
    lines = [head, '', *(f'{label + ":":<{width}}{value}' for label, value in facts), '', *tail]
    return '\n'.join(lines) + '\n'


def _html(title: str, head: str, facts: list[tuple[str, str]], middle: str, notes: list[str]) -> str:
    """The HTML part: ``title``, ``head`` and ``notes`` are HTML already (escaped by the caller); facts are text."""
    rows = ''.join(
        f'<tr><th scope="row" style="text-align:left;vertical-align:top;padding:2px 12px 2px 0">{label}</th>'
        f'<td style="padding:2px 0">{html.escape(value, quote=True)}</td></tr>\n'
        for label, value in facts
    )
    small = ''.join(f'<p style="color:#555555;font-size:13px">{note}</p>\n' for note in notes)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<title>{title}</title>\n</head>\n'
        '<body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:15px;color:#1d1c1d">\n'
        f'<p>{head}</p>\n<table role="presentation" style="border-collapse:collapse">\n{rows}</table>\n'
        f'{middle}{small}</body>\n</html>\n'
    )


def _message(*, to: str, sender: str, subject: str, text: str, page: str) -> EmailMessage:
    msg = EmailMessage(policy=POLICY)
    _headers(msg, to=to, sender=sender, subject=subject)
    msg.set_content(text, cte='quoted-printable')
    msg.add_alternative(page, subtype='html', cte='quoted-printable')
    return msg


def approval_email(request: AccessRequest, rule: Rule, *, to: str, sender: str, approve_url: str, deny_url: str,
                   waiting: str, asked_for: bool = False) -> EmailMessage:  # fmt: skip
    """The email asking approver ``to`` to decide ``request``.

    Args:
        request: the pending request (or extension).
        rule: the rule that decides it.
        to: the approver's address; the links decide as this address.
        sender: ``JIT_MAIL_FROM`` (``jit <jit@example.com>``).
        approve_url: the approver's personal link to the decision page, approving.
        deny_url: the same, denying.
        waiting: where the request stands: ``1 of 2 approved — waiting for security``.
        asked_for: the approver asked for this link on jit's page (from a Teams card), rather than being asked.

    Raises:
        ValueError: ``to`` is not one address, ``sender`` holds none, or a URL is not an absolute http(s) URL.
    """
    approve, deny = _link(approve_url, 'approve_url'), _link(deny_url, 'deny_url')
    requester, grant, duration = who(request.requester), _grant(request), format_duration(request.duration)
    if request.extends:
        extends = plain(request.extends, POLICY_CHARS)
        head = f'{requester} asks to extend {extends} ({grant}) by {duration}.'
        html_head = (f'<strong>{html.escape(requester)}</strong> asks to extend {html.escape(extends)} '
                     f'(<strong>{html.escape(grant)}</strong>) by {html.escape(duration)}.')  # fmt: skip
        verb = 'asks to extend'
    else:
        head = f'{requester} asks for {grant} for {duration}.'
        html_head = (f'<strong>{html.escape(requester)}</strong> asks for <strong>{html.escape(grant)}</strong> '
                     f'for {html.escape(duration)}.')  # fmt: skip
        verb = 'asks for'
    extra = [('Approvals', plain(waiting, 300))]
    if request.pending_until:
        extra.append(('Decide by', when(request.pending_until)))
    facts = _facts(request, rule, extra)
    address = plain(to, EMAIL_CHARS)
    personal = (f'These links are yours: they decide as {address}, the address this message was sent to. '
                'Do not forward this message.')  # fmt: skip
    confirm = 'Opening a link decides nothing: the page shows the request and asks you to confirm.'
    why = (
        'You get this message because you asked for a link on jit\'s page (from a Teams card); if you did not, '
        'ignore it.'
        if asked_for
        else 'You get this message because a rule of jit\'s access policy names you as an approver and asks by email.'
    )
    text = _text(head, facts, [f'Approve: {approve}', f'Deny:    {deny}', '', personal, confirm, '', '-- ', why])
    button = 'display:inline-block;padding:10px 22px;border-radius:4px;text-decoration:none;font-weight:bold'
    buttons = (
        '<p style="margin:20px 0">'
        f'<a href="{html.escape(approve, quote=True)}" style="{button};background:#007a5a;color:#ffffff">Approve</a>'
        '&nbsp;&nbsp;'
        f'<a href="{html.escape(deny, quote=True)}" style="{button};background:#e01e5a;color:#ffffff">Deny</a>'
        '</p>\n'
    )
    subject = f'[jit] {_short_name(request.requester)} {verb} {grant} ({plain(request.id, POLICY_CHARS)})'
    page = _html(html.escape(plain(subject, SUBJECT_CHARS)), html_head, facts, buttons,
                 [html.escape(personal), html.escape(confirm), html.escape(why)])  # fmt: skip
    return _message(to=to, sender=sender, subject=subject, text=text, page=page)


def breakglass_email(request: AccessRequest, rule: Rule, *, to: str, sender: str) -> EmailMessage:
    """The notice to approver ``to`` (asked by email under ``rule``) that ``request`` was approved by its own
    requester under break-glass: nothing to decide, so no links.

    Raises:
        ValueError: ``to`` is not one address, or ``sender`` holds none.
    """
    requester, grant, duration = who(request.requester), _grant(request), format_duration(request.duration)
    head = f'{requester} used break-glass: {grant} for {duration}, approved by themself.'
    html_head = (f'<strong>{html.escape(requester)}</strong> used <strong>break-glass</strong>: <strong>'
                 f'{html.escape(grant)}</strong> for {html.escape(duration)}, approved by themself.')  # fmt: skip
    facts = _facts(request, rule)
    notes = ['Nothing to decide: this is a notice. Break-glass is for emergencies; review the reason, and if it does '
             'not hold, an admin ends the access with /jit revoke ' + plain(request.id, POLICY_CHARS) + ' in Slack.',
             "You get this message because a rule of jit's access policy names you as an approver and asks by "
             'email.']  # fmt: skip
    subject = f'[jit] Break-glass: {_short_name(request.requester)} took {grant} ({plain(request.id, POLICY_CHARS)})'
    text = _text(head, facts, [notes[0], '', '-- ', notes[1]])
    page = _html(html.escape(plain(subject, SUBJECT_CHARS)), html_head, facts, '',
                 [html.escape(note) for note in notes])  # fmt: skip
    return _message(to=to, sender=sender, subject=subject, text=text, page=page)
