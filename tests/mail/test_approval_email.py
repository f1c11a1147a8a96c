"""The approval email and the break-glass notice: what they say (text and HTML), and that nothing a requester
wrote becomes markup, a link, a line of its own or a header.

The messages are checked as a mail client would see them: serialised, parsed back with the stdlib parser, and
the HTML read with ``html.parser`` (tags, attributes, text apart).
"""

from __future__ import annotations

import email
import email.policy
import re
import time
from email.message import EmailMessage
from html.parser import HTMLParser

import pytest

from bot.core.model import AccessRequest, Principal
from bot.core.policy import Rule, Step
from bot.mail.message import approval_email, breakglass_email

TO = 'sec@example.com'
SENDER = 'jit <jit@example.com>'
APPROVE = 'https://jit.example.com/decide/v1.abc.def?do=approve'
DENY = 'https://jit.example.com/decide/v1.abc.def?do=deny'
WAITING = '1 of 2 approved — waiting for security'
RULE = Rule(name='prod-admins', steps=(Step(('group:oncall',)), Step(('group:security',))), ask=('slack', 'email'))
#: Every tag the HTML part may have.
TAGS = {'html', 'head', 'meta', 'title', 'body', 'p', 'strong', 'table', 'tr', 'th', 'td', 'a'}
#: The headers of jit's emails, and no others.
HEADERS = ['From', 'To', 'Subject', 'Date', 'Message-ID', 'Auto-Submitted', 'X-Auto-Response-Suppress', 'MIME-Version',
           'Content-Type']  # fmt: skip
EVIL = '"><img src=x onerror=alert(1)><script>alert("x")</script> & Tom\'s \u202eevil\u202c\u200b'


def make_request(**changes) -> AccessRequest:
    fields = {
        'id': 'r-abcd2345', 'requester': Principal(slack_id='U1', email='ada@example.com', name='Ada Lovelace'),
        'resource': 'prod-db', 'role': 'admin', 'duration': 5400, 'reason': 'restore the orders table',
        'rule': 'prod-admins', 'policy_version': 'v1', 'created_at': time.time(), 'ticket': 'OPS-1234',
        'pending_until': 1767283200.0,  # 2026-01-01 16:00 UTC
    }  # fmt: skip
    return AccessRequest(**{**fields, **changes})


def reparse(msg: EmailMessage) -> EmailMessage:
    """The message as the receiving end reads it: its bytes, parsed back."""
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(msg: EmailMessage) -> tuple[str, str]:
    plain, page = msg.get_body(('plain',)), msg.get_body(('html',))
    assert plain is not None and page is not None
    # the parts are as sent, with SMTP's CRLF line ends
    return plain.get_content().replace('\r\n', '\n'), page.get_content().replace('\r\n', '\n')


class Page(HTMLParser):
    """The HTML as a browser reads it: each tag with its attributes, and the text between."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self.feed(source)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.texts.append(data)

    @property
    def text(self) -> str:
        return ' '.join(''.join(self.texts).split())

    def links(self) -> list[str | None]:
        return [attrs.get('href') for tag, attrs in self.tags if tag == 'a']


def test_the_email_says_who_asks_for_what_why_and_where_it_stands():
    msg = reparse(approval_email(make_request(), RULE, to=TO, sender=SENDER, approve_url=APPROVE, deny_url=DENY,
                                 waiting=WAITING))  # fmt: skip
    text, html = parts(msg)
    page = Page(html)
    for shown in (text, page.text):
        assert 'Ada Lovelace (ada@example.com) asks for admin on prod-db for 1h30m.' in shown
        for fact in ('restore the orders table', 'OPS-1234', 'prod-admins', WAITING, 'r-abcd2345',
                     '2026-01-01 16:00 UTC', 'they decide as sec@example.com', 'Do not forward this message',
                     'Opening a link decides nothing: the page shows the request and asks you to confirm'):  # fmt: skip
            assert fact in shown, (fact, shown)
    assert re.search(r'^Approve: +' + re.escape(APPROVE) + '$', text, re.M)
    assert re.search(r'^Deny: +' + re.escape(DENY) + '$', text, re.M)
    assert page.links() == [APPROVE, DENY]
    assert [t for t in page.texts if t in ('Approve', 'Deny')] == ['Approve', 'Deny']
    assert msg['Subject'] == '[jit] Ada Lovelace asks for admin on prod-db (r-abcd2345)'
    assert (msg['To'], msg['From']) == (TO, SENDER)


def test_an_extension_reads_as_asking_to_extend_the_grant():
    request = make_request(id='r-ext00001', extends='r-abcd2345', duration=1800, pending_until=None)
    text, html = parts(approval_email(request, RULE, to=TO, sender=SENDER, approve_url=APPROVE, deny_url=DENY,
                                      waiting='0 of 1 approved'))  # fmt: skip
    line = 'Ada Lovelace (ada@example.com) asks to extend r-abcd2345 (admin on prod-db) by 30m.'
    assert line in text and line in Page(html).text
    assert 'Decide by' not in text  # no pending_until: nothing to say


def test_a_pipeline_is_named_as_one():
    request = make_request(requester=Principal(pipeline='deploy-main'), ticket=None, reason='')
    msg = approval_email(request, RULE, to=TO, sender=SENDER, approve_url=APPROVE, deny_url=DENY, waiting=WAITING)
    text, _ = parts(msg)
    assert text.startswith('pipeline:deploy-main asks for admin on prod-db')
    assert 'Reason:' in text and '(none given)' in text and 'Ticket' not in text
    assert msg['Subject'] == '[jit] pipeline:deploy-main asks for admin on prod-db (r-abcd2345)'


def test_the_message_has_the_headers_a_mail_server_expects_and_no_others():
    sent = approval_email(make_request(), RULE, to=TO, sender=SENDER, approve_url=APPROVE, deny_url=DENY,
                          waiting=WAITING)  # fmt: skip
    msg = reparse(sent)
    assert sorted(msg.keys()) == sorted(['From', 'To', 'Subject', 'Date', 'Message-ID', 'Auto-Submitted',
                                         'X-Auto-Response-Suppress', 'MIME-Version', 'Content-Type'])  # fmt: skip
    assert msg['Auto-Submitted'] == 'auto-generated'
    assert re.fullmatch(r'<[^<>@\s]+@example\.com>', msg['Message-ID'])
    assert msg['Date'].datetime.timestamp() == pytest.approx(time.time(), abs=60)
    assert msg.get_content_type() == 'multipart/alternative'
    assert [p.get_content_type() for p in msg.iter_parts()] == ['text/plain', 'text/html']
    # 7-bit clean on the wire: no hop needs 8BITMIME, and no line is longer than SMTP allows
    raw = sent.as_bytes()
    assert raw.isascii() and max(len(line) for line in raw.split(b'\r\n')) <= 78


@pytest.mark.parametrize('field', ['name', 'email', 'reason', 'ticket', 'resource', 'role', 'rule', 'waiting'])
def test_what_anyone_wrote_is_text_in_the_html_never_markup_or_an_attribute(field):
    """Every field that comes from a requester, a pipeline or a policy carries markup; the HTML still has only
    jit's own tags, its only links are the two given, and the markup shows as the characters written."""
    request, rule, waiting = make_request(), RULE, WAITING
    if field in ('name', 'email'):
        request = make_request(requester=Principal(slack_id='U1', **{'name': 'Ada', 'email': 'ada@example.com',
                                                                        field: EVIL}))  # fmt: skip
    elif field == 'rule':
        rule = Rule(name=EVIL, steps=RULE.steps, ask=RULE.ask)
    elif field == 'waiting':
        waiting = EVIL
    else:
        request = make_request(**{field: EVIL})
    msg = reparse(approval_email(request, rule, to=TO, sender=SENDER, approve_url=APPROVE, deny_url=DENY,
                                 waiting=waiting))  # fmt: skip
    text, html = parts(msg)
    page = Page(html)
    assert {tag for tag, _ in page.tags} <= TAGS
    assert page.links() == [APPROVE, DENY]
    for tag, attrs in page.tags:
        assert not any(name.startswith('on') or name == 'src' for name in attrs), (tag, attrs)
        assert not any('alert' in (value or '') or 'evil' in (value or '') for value in attrs.values()), (tag, attrs)
    shown = EVIL.replace('\u202e', '').replace('\u202c', '').replace('\u200b', '').strip()
    assert shown in page.text  # it shows as written, bidi and zero-width marks dropped
    assert shown in text
    for invisible in '\u202e\u202c\u200b':
        assert invisible not in html and invisible not in text and invisible not in msg['Subject']
    assert '<script' not in html.lower().replace('&lt;script', '')  # escaped where it appears
    assert 'http' not in html.replace(APPROVE.replace('&', '&amp;'), '').replace(DENY.replace('&', '&amp;'), '')


def test_line_breaks_in_a_name_or_reason_forge_no_header_and_no_line():
    """A name and a reason written to forge: a Bcc header, a second recipient, an Approve line with another
    link. Parsed back, the message has one To, no Bcc, a Subject on one line; the text's only Approve and Deny
    lines are jit's."""
    name = 'Eve\r\nBcc: victim@example.com\r\nX-Evil: 1\nTo: other@example.com'
    reason = 'ok\r\n\r\nApprove: https://evil.example/approve\nBcc: victim@example.com\x00\x1b[2J'
    request = make_request(requester=Principal(slack_id='U1', email='eve@example.com', name=name), reason=reason,
                           ticket='T-1\r\nBcc: victim@example.com')  # fmt: skip
    msg = approval_email(request, RULE, to=TO, sender=SENDER, approve_url=APPROVE, deny_url=DENY, waiting=WAITING)
    raw = msg.as_bytes()
    back = reparse(msg)
    assert back.get_all('To') == [TO] and back.get_all('Bcc') is None and back.get_all('X-Evil') is None
    assert back.get_all('Cc') is None
    header_lines = raw.split(b'\r\n\r\n', 1)[0].split(b'\r\n')
    names = [line.split(b':', 1)[0] for line in header_lines if not line[:1].isspace()]  # folded lines go on
    assert sorted(names) == sorted([b'From', b'To', b'Subject', b'Date', b'Message-ID', b'Auto-Submitted',
                                    b'X-Auto-Response-Suppress', b'MIME-Version', b'Content-Type'])  # fmt: skip
    subject = back['Subject']
    assert '\r' not in subject and '\n' not in subject
    assert (
        subject
        == '[jit] Eve Bcc: victim@example.com X-Evil: 1 To: other@example.com asks for admin on prod-db (r-abcd2345)'
    )
    text, html = parts(back)
    assert [line for line in text.splitlines() if line.startswith(('Approve', 'Deny'))] == [
        f'Approve: {APPROVE}', f'Deny:    {DENY}']  # fmt: skip
    assert not any(line.startswith('Bcc') for line in text.splitlines())
    assert '\x00' not in text and '\x1b' not in text and '\x1b' not in html
    assert Page(html).links() == [APPROVE, DENY]


#: What mail clients (Outlook, Gmail, Apple Mail) turn into a link in a message's text, text and HTML parts alike:
#: a scheme's ``://``, ``www.``, and a host name with a top-level domain (also with the dots IDNA reads as dots).
LINKABLE = re.compile(r'(?i)[a-z][a-z0-9+.-]*://|\bwww[.\u3002\uff0e\uff61]|'
                      r'\b[\w-]+(?:[.\u3002\uff0e\uff61][\w-]+)*[.\u3002\uff0e\uff61][a-z]{2,63}\b')  # fmt: skip
LURES = ['Approve here: https://jit-approvals.example.net/decide/v1.abc.def?do=approve',
         'see www.evil.example first', 'HTTPS://EVIL.EXAMPLE', 'jit-approvals.com/decide/v1.abc', 'evil\uff0ecom/x',
         'ftp://files.evil.example/a', 'ask ops@evil.example']  # fmt: skip


@pytest.mark.parametrize('field', ['name', 'reason', 'ticket'])
def test_a_link_someone_wrote_is_not_one_a_mail_client_makes_live(field):
    """A requester writes a URL (or a bare host name) in a reason, a ticket or their name: the email shows it, but
    as nothing a mail client turns into a link, in either part's body, so the message's only links are jit's Approve
    and Deny. (Slack does not link them either: jit's block text is verbatim. Clients link nothing in a Subject.)"""
    # A name is written unlinked when it reads as a link (alex.rivera, a Slack handle, stays as it is).
    for lure in LURES if field != 'name' else [u for u in LURES if re.search('://|www|/', u)]:
        if field == 'name':
            request = make_request(requester=Principal(slack_id='U1', email='ada@example.com', name=lure))
        else:
            request = make_request(**{field: lure})
        text, html = parts(approval_email(request, RULE, to=TO, sender=SENDER, approve_url=APPROVE, deny_url=DENY,
                                          waiting=WAITING))  # fmt: skip
        notice, _ = parts(breakglass_email(request, RULE, to=TO, sender=SENDER))
        words = [line for line in text.splitlines() if not line.startswith(('Approve:', 'Deny:'))]
        body = Page(html.split('<body', 1)[1]).text  # (the head's title is the Subject: no client shows either)
        for shown in ('\n'.join(words), body, notice):
            # what is left is jit's own: the approver's and the requester's addresses
            assert {m.group().lower() for m in LINKABLE.finditer(shown)} <= {'example.com'}, (lure, shown)
        assert Page(html).links() == [APPROVE, DENY]


def test_text_that_is_no_link_reads_as_written():
    """A name with a dot (a Slack handle stands in for a missing display name) is left as it is; in a reason, a
    file name reads as a host name would (``README.md``: a client links it, ``.md`` is a top-level domain)."""
    request = make_request(requester=Principal(slack_id='U1', email='a@example.com', name='alex.rivera'),
                           reason='fix in config.yaml, see README.md, v2.3.1', ticket='OPS-1.2')  # fmt: skip
    text, _ = parts(approval_email(request, RULE, to=TO, sender=SENDER, approve_url=APPROVE, deny_url=DENY,
                                   waiting=WAITING))  # fmt: skip
    assert 'alex.rivera (a@example.com) asks' in text
    assert 'fix in config[.]yaml, see README[.]md, v2.3.1' in text and 'OPS-1.2' in text


@pytest.mark.parametrize('field', ['name', 'role', 'resource'])
def test_encoded_words_in_a_name_forge_no_header_and_no_body(field):
    """RFC 2047 encoded words are decoded by whoever parses a header: the stdlib does it as the Subject is set,
    and a mail client as it shows it. Written in a requester's display name (or a policy's role or resource names),
    ``=?utf-8?q?x=0D=0AX-Evil=3A_1?=`` would be a line break in the Subject: a header of its own, or an empty
    line and then a body of the requester's writing. Parsed back, the message has jit's headers only, one line of
    Subject with no control or bidi character, and jit's two parts."""
    lures = ['=?utf-8?q?x=0D=0AX-Evil=3A_1?=', '=?utf-8?q?=0D=0A=0D=0AApprove:_https://evil.example?=',
             '=?utf-8?b?4oCuZXZpbA==?=', 'x =?us-ascii?q?Reply-To=3A_e=40evil.example=0D=0A?= y']  # fmt: skip
    for lure in lures:
        if field == 'name':
            request = make_request(requester=Principal(slack_id='U1', email='ada@example.com', name=lure))
        else:
            request = make_request(**{field: lure})
        asked = approval_email(request, RULE, to=TO, sender=SENDER, approve_url=APPROVE, deny_url=DENY,
                               waiting=WAITING)  # fmt: skip
        for msg in (asked, breakglass_email(request, RULE, to=TO, sender=SENDER)):
            back = reparse(msg)
            assert sorted(back.keys()) == sorted(HEADERS), (lure, back.keys())
            subject = back['Subject']
            assert not any(c in subject for c in '\r\n\u202e'), (lure, subject)
            assert subject.endswith('(r-abcd2345)'), (lure, subject)
            assert back.is_multipart() and [p.get_content_type() for p in back.iter_parts()] == [
                'text/plain',
                'text/html',
            ]


def test_a_long_reason_is_cut_and_the_subject_stays_short():
    request = make_request(reason='why ' * 2500, requester=Principal(slack_id='U1', name='N' * 500))  # 10,000 chars
    msg = reparse(approval_email(request, RULE, to=TO, sender=SENDER, approve_url=APPROVE, deny_url=DENY,
                                 waiting=WAITING))  # fmt: skip
    text, html = parts(msg)
    [reason] = [line for line in text.splitlines() if line.startswith('Reason:')]
    assert reason.endswith('why…') and len(reason) < 1100
    assert len(text) < 3000 and len(html) < 6000
    assert len(msg['Subject']) <= 200 and msg['Subject'].count('N') == 59  # the name cut to 60 with the ellipsis


@pytest.mark.parametrize(
    'to', ['sec@example.com\r\nBcc: victim@example.com', 'sec@example.com, other@example.com', 'Sec <sec@example.com>',
           'not an address', '',
           # what a policy may name as an approver (anything with an @) that the header parser itself refuses
           '<sec@example.com>', 'sec@example.com.', 'sec@example..com', 'sec@ex@ample.com', '@example.com',
           '[@example.com', 'sec@"example".com', 'sec@['],
)  # fmt: skip
def test_the_recipient_is_exactly_one_address(to):
    with pytest.raises(ValueError):
        approval_email(make_request(), RULE, to=to, sender=SENDER, approve_url=APPROVE, deny_url=DENY, waiting=WAITING)
    with pytest.raises(ValueError):
        breakglass_email(make_request(), RULE, to=to, sender=SENDER)


@pytest.mark.parametrize('url', ['javascript:alert(1)', 'data:text/html,<script>', '/decide/x', 'https://', 'ftp://x/y',
                                 'https://jit.example.com/a b', 'https://jit.example.com/\u202ex'])  # fmt: skip
def test_links_are_absolute_http_urls_only(url):
    with pytest.raises(ValueError):
        approval_email(make_request(), RULE, to=TO, sender=SENDER, approve_url=url, deny_url=DENY, waiting=WAITING)
    with pytest.raises(ValueError):
        approval_email(make_request(), RULE, to=TO, sender=SENDER, approve_url=APPROVE, deny_url=url, waiting=WAITING)


def test_a_url_with_quotes_or_ampersands_stays_inside_its_attribute():
    odd = 'https://jit.example.com/decide/t?do=approve&x="><script>alert(1)</script>'
    page = Page(parts(approval_email(make_request(), RULE, to=TO, sender=SENDER, approve_url=odd, deny_url=DENY,
                                     waiting=WAITING))[1])  # fmt: skip
    assert page.links() == [odd, DENY]
    assert {tag for tag, _ in page.tags} <= TAGS


def test_breakglass_notice_says_what_was_taken_and_has_no_links():
    request = make_request(reason='prod is down, nobody answers', pending_until=None)
    msg = reparse(breakglass_email(request, RULE, to=TO, sender=SENDER))
    text, html = parts(msg)
    page = Page(html)
    line = 'Ada Lovelace (ada@example.com) used break-glass: admin on prod-db for 1h30m, approved by themself.'
    assert line in text and line in page.text
    for fact in ('prod is down, nobody answers', 'OPS-1234', 'prod-admins', 'r-abcd2345', 'Nothing to decide'):
        assert fact in text and fact in page.text
    assert page.links() == [] and 'http' not in text and 'http' not in html
    assert msg['Subject'] == '[jit] Break-glass: Ada Lovelace took admin on prod-db (r-abcd2345)'
    assert msg['Auto-Submitted'] == 'auto-generated' and msg.get_all('To') == [TO]


def test_breakglass_notice_escapes_like_the_approval_email():
    request = make_request(reason=EVIL, requester=Principal(slack_id='U1', name='Eve\r\nBcc: v@example.com'))
    msg = reparse(breakglass_email(request, RULE, to=TO, sender=SENDER))
    _, html = parts(msg)
    page = Page(html)
    assert {tag for tag, _ in page.tags} <= TAGS - {'a'}
    assert msg.get_all('Bcc') is None and '\n' not in msg['Subject']
