"""Posting cards to a Teams webhook, here a real HTTP(S) server on a loopback port (tests/support/teams_receiver.py).

2xx is delivered; 429, 5xx, a timeout and a refused connection are transient (Retry-After honoured); any other
answer, a redirect included, is permanent, and the redirect is not followed. The URL is a secret: no error
names more of it than the host, and none chains urllib3's exceptions, whose messages quote it.
"""

from __future__ import annotations

import json
import logging
import time
from email.utils import formatdate

import pytest
import structlog

from bot.core.errors import DeliveryError
from bot.logging import configure_logging
from bot.teams.card import approval_card
from bot.teams.webhook import TeamsWebhook
from tests.support.teams_receiver import Answer, TeamsReceiver, card_text
from tests.teams.cards import APPROVE_URL, DENY_URL, RULE, WAITING, a_request

PAYLOAD = approval_card(a_request(), RULE, approve_url=APPROVE_URL, deny_url=DENY_URL, waiting=WAITING)


@pytest.fixture(name='teams')
def _teams():
    with TeamsReceiver() as receiver:
        yield receiver


@pytest.fixture(name='webhook', scope='module')
def _webhook():
    return TeamsWebhook(timeout=2)


def refused(webhook: TeamsWebhook, receiver: TeamsReceiver, url: str | None = None) -> DeliveryError:
    """The error posting raises; checked to name nothing of the URL but the host, and to chain nothing."""
    with pytest.raises(DeliveryError) as info:
        webhook.post(url or receiver.url, PAYLOAD)
    error = info.value
    for text in (str(error), repr(error), error.user_message):
        for secret in (receiver.path_secret, receiver.sig, 'workflows', 'sig=', str(receiver.port)):
            assert secret not in text, f'{secret!r} in {text!r}'
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    return error


def test_a_card_is_delivered_when_the_webhook_answers_202(teams, webhook):
    webhook.post(teams.url, PAYLOAD)
    assert teams.wait_for(lambda p: 'Approve' in card_text(p), timeout=5) == PAYLOAD
    (got,) = teams.received
    assert got.status == 202 and got.path == teams.path
    assert got.headers['Content-Type'] == 'application/json'
    assert json.loads(got.body) == PAYLOAD


def test_an_old_incoming_webhooks_200_with_1_is_delivered(teams, webhook):
    teams.answer_next(Answer(200, b'1'))
    webhook.post(teams.url, PAYLOAD)
    assert teams.payloads == [PAYLOAD]


def test_posts_reuse_one_connection(teams, webhook):
    for _ in range(5):
        webhook.post(teams.url, PAYLOAD)
    assert len(teams.payloads) == 5
    assert len({r.client_port for r in teams.received}) == 1


@pytest.mark.parametrize(('retry_after', 'expected'), [('3', 3.0), ('0.5', 0.5), (None, None), ('soon', None)])
def test_429_is_transient_with_the_wait_retry_after_asks_for(teams, webhook, retry_after, expected):
    teams.answer_next(Answer.throttled(retry_after))
    error = refused(webhook, teams)
    assert (error.transient, error.retry_after) == (True, expected)
    assert '429' in str(error) and '127.0.0.1' in str(error)
    assert len(teams.received) == 1  # not retried here: the outbox retries, with its backoff


def test_retry_after_as_an_http_date(teams, webhook):
    teams.answer_next(Answer.throttled(formatdate(time.time() + 30, usegmt=True)))
    error = refused(webhook, teams)
    assert error.transient and 25 <= (error.retry_after or 0) <= 31


@pytest.mark.parametrize('status', [500, 502, 503, 504])
def test_5xx_is_transient(teams, webhook, status):
    teams.answer_next(Answer(status, headers=(('Retry-After', '7'),)))
    error = refused(webhook, teams)
    assert error.transient and error.retry_after == 7.0 and str(status) in str(error)


@pytest.mark.parametrize('status', [400, 401, 403, 404, 410, 413])
def test_other_4xx_is_permanent(teams, webhook, status):
    teams.answer_next(Answer(status, b'{"error": "Unauthorized"}'))
    error = refused(webhook, teams)
    assert not error.transient and error.retry_after is None and str(status) in str(error)


@pytest.mark.parametrize(('code', 'transient'), [(429, True), (502, True), (400, False), (413, False)])
def test_an_error_an_old_incoming_webhook_wraps_in_a_200_is_that_error(teams, webhook, code, transient):
    body = (f'Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error {code} '
            'with ContextId tcid=0,server=msgapi-production,cv=x.0..').encode()  # fmt: skip
    teams.answer_next(Answer(200, body))
    error = refused(webhook, teams)
    assert error.transient is transient and f'HTTP {code}' in str(error)


@pytest.mark.parametrize('status', [301, 302, 307, 308])
def test_a_redirect_is_not_followed(teams, webhook, status):
    with TeamsReceiver() as elsewhere:
        teams.answer_next(Answer.redirect(elsewhere.url, status))
        error = refused(webhook, teams)
        assert not error.transient and 'redirect' in str(error)
        assert len(teams.received) == 1 and elsewhere.received == []


def test_a_webhook_that_does_not_answer_times_out_as_transient(teams):
    teams.answer_next(Answer.hanging())
    started = time.monotonic()
    error = refused(TeamsWebhook(timeout=0.5), teams)
    assert error.transient and 'timed out' in str(error)
    assert time.monotonic() - started < 5


def test_a_refused_connection_is_transient():
    with TeamsReceiver() as teams:
        url = teams.url
    error = refused(TeamsWebhook(timeout=2), teams, url)  # closed: nothing listens on its port now
    assert error.transient and 'refused' in str(error).lower()


def test_https_with_a_certificate_jit_does_not_trust_is_refused_and_sends_nothing():
    with TeamsReceiver(tls=True) as teams:
        error = refused(TeamsWebhook(timeout=2), teams)
        assert not error.transient and 'TLS' in str(error) and 'certificate' in str(error)
        assert teams.received == []


def test_https_with_a_certificate_of_a_trusted_ca_is_delivered():
    with TeamsReceiver(tls=True) as teams:
        TeamsWebhook(timeout=2, ca_file=teams.ca_file).post(teams.url, PAYLOAD)
        assert teams.payloads == [PAYLOAD]


@pytest.mark.parametrize(
    'url',
    [
        'http://teams.example.com/workflows/SECRET?sig=SECRET',  # plain http beyond this machine
        'ftp://teams.example.com/SECRET',
        'https:///SECRET',
        'https://teams.example.com:99999/SECRET',
        'SECRET',
    ],
)
def test_a_url_that_is_not_https_is_refused_before_anything_is_sent(webhook, url):
    with pytest.raises(DeliveryError) as info:
        webhook.post(url, PAYLOAD)
    assert not info.value.transient and 'SECRET' not in str(info.value)


@pytest.fixture(name='restore_logging')
def _restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    pool_level = logging.getLogger('urllib3.connectionpool').level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger('urllib3.connectionpool').setLevel(pool_level)
    structlog.reset_defaults()


def test_the_url_is_not_logged_even_at_debug_level(teams, capsys, restore_logging):
    """urllib3 logs each request's path and query at debug level: jit's logging keeps those lines out."""
    configure_logging(json=True, level='DEBUG')
    teams.answer_next(Answer(500))
    with pytest.raises(DeliveryError):
        TeamsWebhook(timeout=2).post(teams.url, PAYLOAD)
    TeamsWebhook(timeout=2).post(teams.url, PAYLOAD)
    logging.getLogger('jit.test').debug('debug lines do show')
    err = capsys.readouterr().err
    assert 'debug lines do show' in err
    assert teams.path_secret not in err and teams.sig not in err
