"""The decision page's HTML: plain, accessible, no JavaScript, nothing loaded from elsewhere.

Pure: these take a request (and its rule) and return HTML text. Everything a user or a pipeline wrote, and every
name from the policy, goes through :func:`esc` (``html.escape`` with quotes, after the invisible and control
characters are taken out), so no text becomes markup, an attribute or a link. The only links and form targets
are jit's own (the page posts to its own address).
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

from bot.core.durations import format_duration
from bot.core.model import MAX_REASON, AccessRequest, Principal, RequestStatus
from bot.core.policy import Rule
from bot.core.progress import outcome_text

S = RequestStatus
#: Bidi controls, zero-width characters and C0/C1 controls but tab and newline: invisible or reordering text.
_HIDDEN = re.compile('[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\x00-\x08\x0b-\x1f\x7f-\x9f]')
_SURROGATE = re.compile('[\ud800-\udfff]')
#: How much of a free text the page shows (the audit trail has it all).
REASON_CHARS = MAX_REASON

_STYLE = (
    'body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1d1c1d}'
    'dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dt{font-weight:600}dd{margin:0;'
    'white-space:pre-wrap;overflow-wrap:anywhere}button{font:inherit;padding:.5rem 1.25rem;margin-right:.5rem;'
    'border-radius:.25rem;border:1px solid #555;cursor:pointer}.approve{background:#007a5a;color:#fff;'
    'border-color:#007a5a}.deny{background:#e01e5a;color:#fff;border-color:#e01e5a}textarea,input{font:inherit;'
    'width:100%;box-sizing:border-box}.note{color:#555;font-size:.9rem}.outcome{font-size:1.15rem;font-weight:600}'
    ':focus{outline:3px solid #1264a3;outline-offset:2px}'
)


def esc(value: object, limit: int = 200) -> str:
    """Text for HTML: invisible and control characters out, cut with an ellipsis, escaped (quotes too)."""
    clean = _SURROGATE.sub('\ufffd', _HIDDEN.sub('', str(value)))
    if len(clean) > limit:
        clean = clean[: limit - 1] + '…'
    return html.escape(clean, quote=True)


def when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime('%Y-%m-%d %H:%M UTC') if ts else '?'


def who(principal: Principal | None, *, nobody: str = 'someone') -> str:
    """A person as the page names them: ``Alex Doe <alex@example.com>``, a pipeline's name, else the ID."""
    if principal is None:
        return esc(nobody)
    if principal.pipeline:
        return esc(f'pipeline:{principal.pipeline}')
    if principal.name and principal.email and principal.name.lower() != principal.email.lower():
        return f'{esc(principal.name, 100)} &lt;{esc(principal.email)}&gt;'
    return esc(principal.email or principal.name or principal.slack_id or nobody)


def page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="referrer" content="no-referrer"><title>{esc(title)} · jit</title>'
        f'<style>{_STYLE}</style></head><body><main>{body}</main></body></html>'
    )


def facts(request: AccessRequest, rule: Rule | None, waiting: str) -> str:
    """The request as an approver decides on it."""
    asks = f'asks to extend <code>{esc(request.extends)}</code> by' if request.extends else 'asks for'
    rows = [
        ('Who', who(request.requester)),
        ('Asks', f'{asks} <strong>{esc(request.role, 100)}</strong> on <strong>{esc(request.resource, 100)}'
                 f'</strong> for {esc(format_duration(request.duration))}'),
        ('Reason', esc(request.reason, REASON_CHARS) if request.reason else '<em>none given</em>'),
    ]  # fmt: skip
    if request.ticket:
        rows.append(('Ticket', esc(request.ticket)))
    rows.append(('Rule', f'<code>{esc(request.rule, 100)}</code>'))
    rows.append(('Request', f'<code>{esc(request.id, 64)}</code>, filed {when(request.created_at)}'))
    if request.status is S.PENDING:
        rows.append(('Approvals', esc(waiting, 500)))
        if request.pending_until:
            rows.append(('Decide by', when(request.pending_until)))
    items = ''.join(f'<dt>{k}</dt><dd>{v}</dd>' for k, v in rows)
    return f'<dl>{items}</dl>'


def outcome(request: AccessRequest) -> str:
    """How a request that is no longer pending stands, in a sentence (the plain one of every surface outside Slack)."""
    until = f'; granted until {when(request.expires_at)}' if request.status is S.ACTIVE else ''
    return f'{esc(outcome_text(request), REASON_CHARS + 200)}{until}.'


def decision_form(action: str, *, require_reason: bool) -> str:
    """The confirm form for ``action`` (``approve`` or ``deny``); it posts to the page's own address."""
    if action == 'approve':
        return (
            '<form method="post"><input type="hidden" name="do" value="approve">'
            '<p><button class="approve" type="submit">Approve</button></p></form>'
            '<p><a href="?do=deny">Deny instead</a></p>'
        )
    required = ' required' if require_reason else ''
    label = 'Why? (required)' if require_reason else 'Why? (optional; the requester sees it)'
    return (
        '<form method="post"><input type="hidden" name="do" value="deny">'
        f'<p><label for="reason">{label}</label><br>'
        f'<textarea id="reason" name="reason" rows="3" maxlength="{MAX_REASON}"'
        f'{required}></textarea></p><p><button class="deny" type="submit">Deny</button></p></form>'
        '<p><a href="?do=approve">Approve instead</a></p>'
    )


def confirm_page(request: AccessRequest, rule: Rule | None, waiting: str, *, action: str, approver: str) -> str:
    verb = 'Approve' if action == 'approve' else 'Deny'
    body = (
        f'<h1>{verb} this access request?</h1>{facts(request, rule, waiting)}'
        f'{decision_form(action, require_reason=bool(rule and rule.require_deny_reason))}'
        f'<p class="note">You decide as <strong>{esc(approver)}</strong>, the address this link was sent to. '
        'Opening this page decided nothing; the button does.</p>'
    )
    return page(f'{verb} request {request.id}', body)


def decided_page(request: AccessRequest, rule: Rule | None, *, headline: str, waiting: str = '') -> str:
    """After a decision, or when the request is no longer waiting: where it stands, no form."""
    state = outcome(request) if request.status is not S.PENDING else esc(waiting, 500)
    body = f'<h1>{esc(headline)}</h1><p class="outcome" role="status">{state}</p>{facts(request, rule, waiting)}'
    return page(headline, body)


def refused_page(title: str, message: str) -> str:
    return page(title, f'<h1>{esc(title)}</h1><p role="alert">{esc(message, 500)}</p>')


def email_form_page(request: AccessRequest, rule: Rule | None, waiting: str, *, action: str) -> str:
    """A Teams card's link: ask the reader who they are; a personal link goes to that address."""
    verb = 'approve' if action == 'approve' else 'deny'
    body = (
        f'<h1>Decide on this access request</h1>{facts(request, rule, waiting)}'
        '<p>Teams does not tell jit who pressed the button, so jit sends a personal link to your work email: '
        'it decides as that address.</p>'
        f'<form method="post"><input type="hidden" name="do" value="{verb}">'
        '<p><label for="email">Your work email</label><br>'
        '<input id="email" name="email" type="email" autocomplete="email" required maxlength="254"></p>'
        '<p><button type="submit">Email me a link</button></p></form>'
    )
    return page(f'Request {request.id}', body)


def link_sent_page(email: str) -> str:
    body = (
        '<h1>Check your email</h1>'
        f'<p role="status">If <strong>{esc(email)}</strong> may decide this request, a personal link is on its '
        'way there. Open it to approve or deny.</p>'
    )
    return page('Check your email', body)
