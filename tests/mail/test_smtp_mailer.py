"""SmtpMailer against a real SMTP server (aiosmtpd, tests/support/smtp_server.py): STARTTLS and AUTH as production
servers ask, a certificate checked against the CA it is told to trust; each failure a DeliveryError that says
whether trying again can help, names the server, and never holds the password."""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import structlog

from bot.core.errors import DeliveryError
from bot.core.model import AccessRequest, Principal
from bot.core.policy import Rule, Step
from bot.logging import configure_logging
from bot.mail.message import approval_email
from bot.mail.smtp import SmtpMailer, parse_smtp_url
from tests.support.smtp_server import PASSWORD, USERNAME, SmtpServer, make_ca_file, running_smtp_server

SENDER = 'jit <jit@example.com>'
TO = 'sec@example.com'
APPROVE = 'https://jit.example.com/decide/v1.abc.def?do=approve'
DENY = 'https://jit.example.com/decide/v1.abc.def?do=deny'
RULE = Rule(name='prod-admins', steps=(Step(('group:security',)),), ask=('slack', 'email'))


def message(to: str = TO, reason: str = 'restore the orders table'):
    request = AccessRequest(
        id='r-abcd2345', requester=Principal(slack_id='U1', email='ada@example.com', name='Ada Lovelace'),
        resource='prod-db', role='admin', duration=3600, reason=reason, rule='prod-admins', policy_version='v1',
        created_at=time.time(), ticket='OPS-1',
    )  # fmt: skip
    return approval_email(request, RULE, to=to, sender=SENDER, approve_url=APPROVE, deny_url=DENY,
                          waiting='0 of 1 approved — waiting for security')  # fmt: skip


def mailer_for(server: SmtpServer, **options) -> SmtpMailer:
    return SmtpMailer.from_url(server.url, sender=SENDER, ca_file=str(server.ca_file), timeout=5, **options)


def refusal(mailer: SmtpMailer, **options) -> DeliveryError:
    with pytest.raises(DeliveryError) as refused:
        mailer.send(message(**options))
    error = refused.value
    for shown in (str(error), repr(error), error.user_message, *map(str, error.args)):
        assert PASSWORD not in shown and 'p%40ss' not in shown.lower(), shown
    # no smtplib exception chained to it, to be printed with it
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    return error


def test_sends_over_starttls_with_auth_and_the_server_gets_it_whole(smtp_server):
    """The URL's percent-encoded password (':', '@', '/', '%', '+', '?', '#' in it) logs in; the message arrives
    over TLS, to the one recipient, and parses back to what was sent."""
    assert '%40' in smtp_server.url and '%3A' in smtp_server.url  # the password needs decoding
    mailer_for(smtp_server).send(message())
    got = smtp_server.wait_for(lambda r: True)
    assert (got.mail_from, got.rcpt_tos, got.tls, got.login) == ('jit@example.com', (TO,), True, USERNAME)
    assert smtp_server.logins and all(encrypted for _, _, encrypted in smtp_server.logins)
    assert got.message['Subject'] == '[jit] Ada Lovelace asks for admin on prod-db (r-abcd2345)'
    assert got.message.get_all('To') == [TO] and got.message.get_all('Bcc') is None
    html = got.message.get_body(('html',))
    assert html is not None and APPROVE.replace('&', '&amp;') in html.get_content()


def test_a_reason_that_forges_headers_arrives_as_one_recipient_and_no_bcc(smtp_server):
    """The forged lines travel through a real SMTP session too: one envelope recipient, one To, no Bcc."""
    mailer_for(smtp_server).send(message(reason='x\r\nBcc: victim@example.com\r\n.\r\nRCPT TO:<victim@example.com>'))
    got = smtp_server.wait_for(lambda r: True)
    assert got.rcpt_tos == (TO,) and got.message.get_all('Bcc') is None and got.message.get_all('To') == [TO]
    assert len(smtp_server.received) == 1


def test_implicit_tls(tmp_path):
    with running_smtp_server(tmp_path, mode='smtps') as server:
        assert server.url.startswith('smtps://')
        mailer_for(server).send(message())
        assert server.wait_for(lambda r: True).tls


def test_no_starttls_offered_means_no_credentials_and_no_mail_in_clear(tmp_path):
    """smtp:// requires STARTTLS: against a server that offers AUTH in clear but no STARTTLS, nothing is sent,
    neither the login nor the message."""
    with running_smtp_server(tmp_path, mode='plain') as server:
        url = f'smtp://{server.url.removeprefix("smtp://")}'
        error = refusal(SmtpMailer.from_url(url, sender=SENDER, timeout=5))
        assert not error.transient and 'does not offer STARTTLS' in str(error)
        assert f'127.0.0.1:{server.port}' in str(error)
        assert server.logins == [] and server.received == []
        # without credentials in the URL, the mail alone is not sent in clear either
        refusal(SmtpMailer.from_url(f'smtp://127.0.0.1:{server.port}', sender=SENDER, timeout=5))
        assert server.received == []


def test_smtp_insecure_is_plain_and_takes_no_credentials(tmp_path):
    with running_smtp_server(tmp_path, mode='plain') as server:
        SmtpMailer.from_url(f'smtp+insecure://127.0.0.1:{server.port}', sender=SENDER, timeout=5).send(message())
        got = server.wait_for(lambda r: True)
        assert (got.tls, got.login) == (False, None)
    with pytest.raises(ValueError, match='takes no user name or password') as refused:
        SmtpMailer.from_url(f'smtp+insecure://{USERNAME}:secret-pw@127.0.0.1:25', sender=SENDER)
    assert 'secret-pw' not in str(refused.value)


def test_a_certificate_from_another_ca_is_refused_for_good(smtp_server, tmp_path):
    other = make_ca_file(tmp_path / 'other-ca.pem')
    error = refusal(SmtpMailer.from_url(smtp_server.url, sender=SENDER, ca_file=str(other), timeout=5))
    assert not error.transient and 'certificate that is not trusted' in str(error)
    assert smtp_server.logins == [] and smtp_server.received == []


def test_the_system_cas_alone_do_not_trust_a_private_ca(smtp_server):
    error = refusal(SmtpMailer.from_url(smtp_server.url, sender=SENDER, timeout=5))
    assert not error.transient and 'checked against the system CAs' in str(error)
    assert smtp_server.logins == []


def test_the_certificate_must_name_the_host(tmp_path):
    """A certificate from the trusted CA, but for another name than the one jit connects to, is refused."""
    with running_smtp_server(tmp_path, names=('mail.example.com',)) as server:
        error = refusal(mailer_for(server))
        assert not error.transient and 'IP address mismatch' in str(error)
        assert server.logins == [] and server.received == []


@pytest.mark.parametrize(
    ('command', 'reply', 'transient'),
    [
        ('RCPT', '451 4.3.0 Mailbox temporarily unavailable', True),
        ('RCPT', '550 5.1.1 No such user here', False),
        ('MAIL', '451 4.3.0 Try again later', True),
        ('MAIL', '553 5.7.1 Sender not allowed', False),
        ('DATA', '452 4.3.1 Insufficient system storage', True),
        ('DATA', '554 5.7.1 Message refused as spam', False),
        ('EHLO', '421 4.3.2 Service shutting down', True),
        ('RCPT', '421 4.4.5 Too busy', True),
        ('AUTH', '454 4.7.0 Temporary authentication failure', True),
        ('AUTH', '535 5.7.8 Authentication credentials invalid', False),
    ],
)
def test_the_server_s_answer_says_whether_to_try_again(smtp_server, command, reply, transient):
    """4xx: transient, 5xx: permanent; the error names the server and quotes its code and words."""
    smtp_server.fail(command, reply)
    error = refusal(mailer_for(smtp_server))
    assert error.transient is transient and error.retry_after is None
    code, words = reply.split(' ', 1)
    assert f'SMTP 127.0.0.1:{smtp_server.port}' in str(error) and f'{code} {words}' in str(error)
    assert smtp_server.received == []
    smtp_server.heal()
    mailer_for(smtp_server).send(message())  # the same mailer's next try works once the server does
    smtp_server.wait_for(lambda r: True)


def test_a_wrong_password_is_permanent(smtp_server):
    url = smtp_server.url.replace(smtp_server.url.split(':')[2].split('@')[0], 'not-the-password')
    error = refusal(SmtpMailer.from_url(url, sender=SENDER, ca_file=str(smtp_server.ca_file), timeout=5))
    assert not error.transient and 'refused the login: 535' in str(error)
    assert 'not-the-password' not in str(error)


def test_a_server_that_is_down_is_transient(tmp_path):
    with running_smtp_server(tmp_path) as server:
        mailer = mailer_for(server)
    error = refusal(mailer)  # stopped: the port refuses connections
    assert error.transient and 'refused the connection' in str(error) and f'127.0.0.1:{server.port}' in str(error)


def test_a_server_that_never_answers_times_out_transient():
    with socket.create_server(('127.0.0.1', 0)) as silent:  # listens (the kernel accepts), never speaks
        port = silent.getsockname()[1]
        url = f'smtp://{USERNAME}:{quote(PASSWORD, safe="")}@127.0.0.1:{port}'
        mailer = SmtpMailer.from_url(url, sender=SENDER, timeout=0.5)
        started = time.monotonic()
        error = refusal(mailer)
    assert error.transient and 'did not answer within 0.5 s' in str(error)
    assert time.monotonic() - started < 5


def test_the_password_is_in_no_repr_and_no_log(smtp_server, capsys, caplog):
    """The mailer's and the parsed URL's reprs leave it out; a failure logged with its traceback (as the outbox
    does) shows the server and the code, not the password, in JSON and on the console alike."""
    mailer = mailer_for(smtp_server)
    assert PASSWORD not in repr(mailer) and USERNAME not in repr(mailer)
    assert PASSWORD not in repr(parse_smtp_url(smtp_server.url))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        for as_json in (True, False):
            configure_logging(json=as_json, level='DEBUG')
            smtp_server.fail('RCPT', '550 5.1.1 No such user here')
            try:
                mailer.send(message())
            except DeliveryError:
                structlog.get_logger('test').exception('delivery.failed', channel='email', to=TO)
            smtp_server.fail('AUTH', '535 5.7.8 Authentication credentials invalid')
            try:
                mailer.send(message())
            except DeliveryError:
                structlog.get_logger('test').exception('delivery.failed', channel='email', to=TO)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()
    out = capsys.readouterr()
    logged = out.err + out.out + caplog.text
    assert '550 5.1.1 No such user here' in logged and 'refused the login: 535' in logged
    assert PASSWORD not in logged and 'p%40ss' not in logged.lower()
    assert any(
        json.loads(line).get('event') == 'delivery.failed' for line in out.err.splitlines() if line.startswith('{')
    )


@pytest.mark.parametrize(
    ('url', 'words'),
    [
        ('http://u:pw-secret@host', 'must start with smtp://'),
        ('smtp://u:pw-secret@host:99999', 'port that is not a number'),
        ('smtp://u:pw/secret@host:587', 'port that is not a number'),
        ('smtp://u:pw-secret@:587', 'names no host'),
        ('smtp://u:pw-secret@host/path', 'has a path'),
        ('smtp://u:pw-secret@host?x=1', 'has a path, query'),
        ('smtp://:pw-secret@host', 'has a password but no user name'),
        ('smtp://u:pw-secrét@host', 'not ASCII'),
    ],
)
def test_an_unusable_url_is_named_without_quoting_it(url, words):
    with pytest.raises(ValueError) as refused:
        SmtpMailer.from_url(url, sender=SENDER)
    assert words in str(refused.value)
    assert 'secret' not in str(refused.value) and 'secr' not in str(refused.value)


def test_default_ports_and_percent_decoding():
    assert parse_smtp_url('smtp://mail.example.com').port == 587
    assert parse_smtp_url('smtps://mail.example.com').port == 465
    assert parse_smtp_url('smtp+insecure://localhost').port == 25
    target = parse_smtp_url('smtp://a%40b.example:p%3Aw%2F%25@[::1]:2525/')
    assert (target.username, target.password, target.host, target.port) == ('a@b.example', 'p:w/%', '::1', 2525)
    assert target.where == '[::1]:2525'


def test_a_sender_without_an_address_is_refused():
    with pytest.raises(ValueError, match='not an email address'):
        SmtpMailer.from_url('smtp://mail.example.com', sender='jit')


def test_the_certificate_file_is_read_when_the_mailer_is_made(tmp_path: Path):
    (tmp_path / 'not-a-ca.pem').write_text('hello')
    with pytest.raises(Exception):  # noqa: B017 - ssl.SSLError: it fails at start, not at the first send
        SmtpMailer.from_url('smtp://mail.example.com', sender=SENDER, ca_file=str(tmp_path / 'not-a-ca.pem'))
