"""``jit ci`` without a server: settings, answers mapped to exit codes, the wait loop, output formats.

The client is handed a fake transport (scripted answers) and, for waiting, a fake clock, as httpx's
``MockTransport`` is used: nothing is patched and nothing sleeps.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from bot import ci
from bot.api.tokens import new_token
from bot.sealed_box import Recipient, seal

TOKEN = new_token()
URL = 'http://127.0.0.1:3000'
Reply = tuple[int, Any, dict[str, str]] | BaseException | Callable[['FakeApi'], Any]


class FakeApi:
    """A transport answering from a script: ``{(method, path): [reply, ...]}``; the last reply repeats."""

    def __init__(self, script: dict[tuple[str, str], list[Reply]]) -> None:
        self.script, self.sent = script, []

    def __call__(self, req: urllib.request.Request, timeout: float) -> tuple[int, bytes, Mapping[str, str]]:
        path = req.full_url.removeprefix(f'{URL}/api/v1')
        self.sent.append((req.get_method(), path, req.data, dict(req.header_items())))
        replies = self.script[(req.get_method(), path)]
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if callable(reply):
            reply = reply(self)
        if isinstance(reply, BaseException):
            raise reply
        status, body, headers = reply
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return status, raw, headers

    def calls(self, method: str) -> int:
        return sum(1 for sent in self.sent if sent[0] == method)


class Clock:
    """Monotonic time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now, self.slept = 0.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def client(script: dict[tuple[str, str], list[Reply]]) -> tuple[ci.Client, FakeApi]:
    api = FakeApi(script)
    return ci.Client(ci.Target(URL, TOKEN), transport=api), api


def view(request_id: str = 'r-abcd1234', status: str = 'pending', **extra: Any) -> dict[str, Any]:
    return {'id': request_id, 'status': status, 'rule': 'deploy-from-ci', 'decision': 'approved automatically',
            'expires_at': None, 'details': None, **extra}  # fmt: skip


def refused() -> urllib.error.URLError:
    return urllib.error.URLError(ConnectionRefusedError(111, 'Connection refused'))


class TestSettings:
    def test_missing_url_and_token_are_named_together_in_one_line(self):
        with pytest.raises(ci.CiError) as caught:
            ci.load_target(None, {})
        assert caught.value.code == 2 and '\n' not in caught.value.message
        assert 'JIT_URL is not set' in caught.value.message and 'JIT_TOKEN is not set' in caught.value.message

    @pytest.mark.parametrize(('url', 'says'), [
        ('jit.example.com', 'is not an http(s):// URL'),
        ('ftp://jit.example.com', 'is not an http(s):// URL'),
        ('https://deploy:hunter2@jit.example.com', 'must not carry a user or password'),
        ('https://jit.example.com:99999', 'is not a URL'),
        ('https://jit.example.com/?x=1', 'without ?query'),
    ])  # fmt: skip
    def test_a_malformed_url_is_refused_before_any_call(self, url, says):
        with pytest.raises(ci.CiError) as caught:
            ci.load_target(None, {'JIT_URL': url, 'JIT_TOKEN': TOKEN})
        assert says in caught.value.message and 'hunter2' not in caught.value.message

    def test_url_flag_wins_over_the_environment_and_a_trailing_newline_is_not_part_of_the_token(self):
        target = ci.load_target('https://jit.example.com/', {'JIT_URL': 'http://other', 'JIT_TOKEN': TOKEN + '\n'})
        assert (target.base, target.token, target.label) == ('https://jit.example.com', TOKEN, '--url')
        assert TOKEN not in repr(target)

    @pytest.mark.parametrize(('token', 'says'), [
        ('deploy-main:sha256:' + 'a' * 64, 'holds the hash line'),
        ('sha256:' + 'a' * 64, 'holds the hash line'),
        ('jit_abc def', 'is not a token'),
        ('jit_abc\r\nX-Evil: 1', 'is not a token'),
    ])  # fmt: skip
    def test_a_token_that_is_not_one_is_refused_without_quoting_it(self, token, says):
        with pytest.raises(ci.CiError) as caught:
            ci.load_target(URL, {'JIT_TOKEN': token})
        assert says in caught.value.message and token not in caught.value.message


class TestAnswers:
    def test_connection_refused_is_one_line_naming_the_setting(self):
        api, _ = client({('GET', '/requests/r-abcd1234'): [refused()]})
        with pytest.raises(ci.Unreachable) as caught:
            api.call('GET', '/requests/r-abcd1234')
        assert caught.value.message == f'cannot reach JIT_URL {URL}: connection refused'

    def test_a_redirect_is_reported_not_followed(self):
        api, _ = client({('POST', '/requests'): [(302, b'', {'location': 'https://evil.example/x'})]})
        with pytest.raises(ci.CiError, match=re.escape("redirects to 'https://evil.example/x'")):
            api.call('POST', '/requests', {'resource': 'demo-app'})

    def test_a_success_that_is_not_json_is_not_the_jit_server(self):
        api, _ = client({('GET', '/requests/r-abcd1234'): [(200, b'<html>login</html>', {})]})
        with pytest.raises(ci.CiError, match='is it the jit server'):
            api.call('GET', '/requests/r-abcd1234')

    def test_the_token_goes_only_in_the_authorization_header(self):
        api, fake = client({('POST', '/requests'): [(201, view(), {})]})
        ci.file_request(api, {'resource': 'demo-app'})
        (_, _, data, headers), = fake.sent  # fmt: skip
        assert headers['Authorization'] == f'Bearer {TOKEN}' and TOKEN.encode() not in data

    @pytest.mark.parametrize(('status', 'body', 'code', 'says'), [
        (403, {'error': 'Not filed: no rule lets pipeline:x ask.', 'allowed': ['demo-app deploy (up to 20m)']}, 1,
         'Not filed: no rule lets pipeline:x ask. Allowed for this pipeline: demo-app deploy (up to 20m)'),
        (429, {'error': 'Not filed: too many.'}, 1, 'Not filed: too many. (try again in 60 s)'),
        (400, {'error': 'invalid request: duration: nope', 'errors': {'duration': 'nope'}}, 2,
         'invalid request: duration: nope (HTTP 400)'),
        (401, {'error': 'unknown token'}, 2, 'unknown token (HTTP 401)'),
        (500, b'oops', 2, f'HTTP 500 from {URL}, not from the jit API (HTTP 500)'),
    ])  # fmt: skip
    def test_refusals_map_to_exit_codes_by_whose_problem_they_are(self, status, body, code, says):
        api, _ = client({('POST', '/requests'): [(status, body, {'retry-after': '60'})]})
        with pytest.raises(ci.CiError) as caught:
            ci.file_request(api, {'resource': 'demo-app'})
        assert (caught.value.code, caught.value.message) == (code, says)

    def test_filing_waits_out_503_because_nothing_was_filed(self):
        unavailable = (503, {'error': 'jit cannot reach its store right now; try again'}, {'retry-after': '5'})
        api, fake = client({('POST', '/requests'): [unavailable, unavailable, (201, view(), {})]})
        clock = Clock()
        assert ci.file_request(api, {'resource': 'demo-app'}, clock=clock, sleep=clock.sleep)['id'] == 'r-abcd1234'
        assert fake.calls('POST') == 3 and clock.slept == [5.0, 5.0]

    def test_filing_after_a_lost_answer_asks_again_with_the_same_idempotency_key(self, capsys):
        """No answer, a proxy's 502, the key still being filed (409): asked again, and the replay (200) is the
        request; every try carried one key, so the server filed it once."""
        busy = (409, {'error': 'a request with this Idempotency-Key is being filed right now'}, {'retry-after': '1'})
        replies: list[Reply] = [ConnectionResetError(), (502, b'bad gateway', {}), busy,
                                (200, view(), {'idempotent-replayed': 'true'})]  # fmt: skip
        api, fake = client({('POST', '/requests'): replies})
        clock = Clock()
        assert ci.file_request(api, {'resource': 'demo-app'}, clock=clock, sleep=clock.sleep)['id'] == 'r-abcd1234'
        keys = {headers.get('Idempotency-key') for _, _, _, headers in fake.sent}
        assert fake.calls('POST') == 4 and len(keys) == 1 and re.fullmatch(r'[A-Za-z0-9_-]{32}', keys.pop() or '')
        assert 'the connection was closed before an answer; trying again' in capsys.readouterr().err
        # A new invocation files a new request: a new key.
        api2, fake2 = client({('POST', '/requests'): [(201, view(), {})]})
        ci.file_request(api2, {'resource': 'demo-app'})
        assert fake2.sent[0][3]['Idempotency-key'] not in {h.get('Idempotency-key') for *_, h in fake.sent}

    def test_filing_gives_up_on_lost_answers_after_its_patience_and_at_once_when_nothing_was_sent(self):
        api, fake = client({('POST', '/requests'): [TimeoutError()]})
        clock = Clock()
        with pytest.raises(ci.Unreachable, match='no answer in time'):
            ci.file_request(api, {'resource': 'demo-app'}, clock=clock, sleep=clock.sleep)
        assert 30 <= clock.now <= 32 and fake.calls('POST') >= 10
        api, fake = client({('POST', '/requests'): [ConnectionRefusedError()]})
        with pytest.raises(ci.Unreachable, match='connection refused'):
            ci.file_request(api, {'resource': 'demo-app'}, clock=clock, sleep=clock.sleep)
        assert fake.calls('POST') == 1  # a wrong JIT_URL is said at once

    def test_a_conflict_without_retry_after_is_not_asked_again(self):
        api, fake = client({('POST', '/requests'): [(409, {'error': 'no'}, {})]})
        with pytest.raises(ci.CiError, match='no'):
            ci.file_request(api, {'resource': 'demo-app'})
        assert fake.calls('POST') == 1


class TestWait:
    def wait(self, replies: list[Reply], recipient: Recipient | None = None, timeout: float = 60):
        api, fake = client({('GET', '/requests/r-abcd1234'): replies})
        clock = Clock()
        result = ci.wait_for_grant(api, recipient or Recipient(), 'r-abcd1234', timeout=timeout, clock=clock,
                                   sleep=clock.sleep)  # fmt: skip
        return result, fake, clock

    def test_it_waits_out_outages_and_opens_the_details_from_the_first_active_answer(self, capsys):
        me = Recipient()
        box = json.loads(seal(me.public_key, {'password': 's3cret'}, request_id='r-abcd1234'))
        down = (503, {'error': 'store down'}, {'retry-after': '2'})
        replies: list[Reply] = [(200, view(), {}), refused(), down, (200, view(status='active', details=box), {}),
                                (200, view(status='active'), {})]  # fmt: skip
        (shown, details), fake, clock = self.wait(replies, me)
        assert details == {'password': 's3cret'} and shown['status'] == 'active'
        assert fake.calls('GET') == 4  # not one more: the first active answer carries the details
        assert clock.slept == [1.0, 1.5, 2.25]  # backing off; Retry-After 2 is less than the backoff
        err = capsys.readouterr().err
        assert 'connection refused; trying again until the timeout' in err and 's3cret' not in err

    def test_details_sealed_to_another_key_are_unusable(self):
        box = json.loads(seal(Recipient().public_key, {'password': 's3cret'}, request_id='r-abcd1234'))
        with pytest.raises(ci.Unusable, match='cannot be opened'):
            self.wait([(200, view(status='active', details=box), {})])

    @pytest.mark.parametrize(('ended', 'says'), [
        (view(status='denied', decided_by='sam@example.com', deny_reason='not during the freeze'),
         'r-abcd1234 denied by sam@example.com: not during the freeze'),
        (view(status='failed', error='the webhook answered 500'), 'r-abcd1234 failed: the webhook answered 500'),
        (view(status='expired'), 'r-abcd1234 expired'),
        (view(status='revoke_failed'), 'r-abcd1234 revoke_failed'),
    ])  # fmt: skip
    def test_an_end_without_a_grant_exits_1_with_why(self, ended, says):
        with pytest.raises(ci.CiError) as caught:
            self.wait([(200, view(), {}), (200, ended, {})])
        assert (caught.value.code, caught.value.message) == (1, says)

    def test_it_gives_up_at_the_timeout_even_while_the_server_is_down(self):
        with pytest.raises(ci.TimedOut, match='not granted within 10s'):
            self.wait([refused()], timeout=10)

    def test_a_404_while_waiting_is_not_waited_out(self):
        with pytest.raises(ci.CiError) as caught:
            self.wait([(404, {'error': "no request 'r-abcd1234' of this pipeline"}, {})])
        assert caught.value.code == 2


class TestOutput:
    VIEW = view(status='active', expires_at='2026-11-29T10:00:00Z')

    def test_env_lines_name_each_detail_in_upper_case(self):
        out = ci.format_result(self.VIEW, {'db-host': 'db.internal', 'port': 5432, 'password': 'a=b c'}, 'env')
        assert out.splitlines() == ['JIT_REQUEST_ID=r-abcd1234', 'JIT_EXPIRES_AT=2026-11-29T10:00:00Z',
                                    'JIT_DB_HOST=db.internal', 'JIT_PORT=5432', 'JIT_PASSWORD=a=b c']  # fmt: skip

    @pytest.mark.parametrize('details', [
        {'key': '-----BEGIN KEY-----\nabc\n-----END KEY-----'},
        {'password': 'x\rJIT_ADMIN=1'},
        {'db-host': 'a', 'db_host': 'b'},
        {'request_id': 'r-other'},
    ])  # fmt: skip
    def test_env_refuses_what_would_not_be_one_line_each(self, details):
        with pytest.raises(ci.Unusable, match='use --format json'):
            ci.format_result(self.VIEW, details, 'env')

    def test_text_and_json(self):
        details = {'password': 's3cret', 'port': 5432}
        text = ci.format_result(self.VIEW, details, 'text')
        assert text.splitlines() == ['request r-abcd1234 active until 2026-11-29T10:00:00Z', 'password: s3cret',
                                     'port: 5432']  # fmt: skip
        assert json.loads(ci.format_result(self.VIEW, details, 'json')) == {**self.VIEW, 'details': details}


class TestRelease:
    def test_a_grant_in_progress_is_waited_out_then_released(self):
        busy = (409, {'error': 'r-abcd1234 is being granted right now'}, {'retry-after': '2'})
        api, _ = client({('POST', '/requests/r-abcd1234/release'): [
            busy, busy, (202, {**view(status='active'), 'ending': True}, {})]})  # fmt: skip
        clock = Clock()
        answer = ci.release(api, 'r-abcd1234', clock=clock, sleep=clock.sleep)
        assert ci.describe_release(answer) == 'r-abcd1234 active: the access ends now'
        assert clock.slept == [2.0, 2.0]

    def test_it_gives_up_after_its_patience_with_exit_1(self):
        busy = (409, {'error': 'r-abcd1234 is being granted right now'}, {'retry-after': '2'})
        api, _ = client({('POST', '/requests/r-abcd1234/release'): [busy]})
        clock = Clock()
        with pytest.raises(ci.CiError) as caught:
            ci.release(api, 'r-abcd1234', clock=clock, sleep=clock.sleep)
        assert caught.value.code == 1 and 30 <= clock.now <= 32

    def test_what_a_release_did_in_words(self):
        cancelled, revoked = ({**view(status=s), 'ending': False} for s in ('cancelled', 'revoked'))
        assert ci.describe_release(cancelled) == 'r-abcd1234 cancelled: it will not be granted'
        assert ci.describe_release(revoked) == 'r-abcd1234 already revoked: nothing to give back'

    def test_a_malformed_id_is_refused_without_a_call(self):
        api, fake = client({})
        with pytest.raises(ci.CiError) as caught:
            ci.release(api, '../../slack/events')
        assert caught.value.code == 2 and not fake.sent


def run_request(script: dict[tuple[str, str], list[Reply]], *argv: str) -> tuple[int, FakeApi]:
    parser = argparse.ArgumentParser()
    ci.add_arguments(parser)
    args = parser.parse_args(['request', *argv])
    api, fake = client(script)
    try:
        return ci.request_command(api, args), fake
    except ci.CiError as exc:
        return exc.code, fake


class TestRequestCommand:
    def test_a_bare_duration_is_the_duration_and_only_set_options_are_sent(self, capsys):
        code, fake = run_request({('POST', '/requests'): [(201, view(), {})]}, 'demo-app', '15m', '--context',
                                 'event=pr_merge')  # fmt: skip
        assert code == 0 and capsys.readouterr().out == 'request r-abcd1234 pending\n'
        body = json.loads(fake.sent[0][2])
        assert body.keys() == {'resource', 'duration', 'context', 'public_key'}
        assert body['duration'] == '15m' and body['context'] == {'event': 'pr_merge'}

    def test_details_that_cannot_be_printed_are_given_back(self, capsys):
        """A PEM cannot be one env line; the box is gone once read, so the access is released, not left standing."""

        def active(fake: FakeApi) -> Reply:
            key = json.loads(fake.sent[0][2])['public_key']  # what the command sent: its fresh key
            box = json.loads(seal(key, {'pem': 'a\nb'}, request_id='r-abcd1234'))
            return 200, view(status='active', details=box), {}

        code, fake = run_request({
            ('POST', '/requests'): [(201, view(status='approved'), {})],
            ('GET', '/requests/r-abcd1234'): [active],
            ('POST', '/requests/r-abcd1234/release'): [(202, {**view(status='active'), 'ending': True}, {})],
        }, 'demo-app', 'deploy', '--wait', '--format', 'env')  # fmt: skip
        captured = capsys.readouterr()
        assert code == 1 and captured.out == ''
        assert "detail 'pem' spans lines" in captured.err
        assert 'released: r-abcd1234 active: the access ends now' in captured.err
        assert [sent[1] for sent in fake.sent] == ['/requests', '/requests/r-abcd1234', '/requests/r-abcd1234/release']

    def test_a_sigterm_while_filing_releases_what_was_filed(self, capsys):
        """The runner cancels the job mid-POST: the answer is still read, so the request can be given back."""

        def filed_as_the_job_is_cancelled(fake: FakeApi) -> Reply:
            os.kill(os.getpid(), signal.SIGTERM)
            return 201, view(), {}

        code, fake = run_request({
            ('POST', '/requests'): [filed_as_the_job_is_cancelled],
            ('POST', '/requests/r-abcd1234/release'): [(200, {**view(status='cancelled'), 'ending': False}, {})],
        }, 'demo-app', 'deploy', '--wait')  # fmt: skip
        captured = capsys.readouterr()
        assert code == 143 and captured.out == ''
        assert captured.err.splitlines()[-1] == 'jit: SIGTERM; released: r-abcd1234 cancelled: it will not be granted'
        assert [sent[1] for sent in fake.sent] == ['/requests', '/requests/r-abcd1234/release']

    def test_a_sigterm_while_the_store_is_down_ends_with_nothing_filed(self, capsys):
        def unavailable(fake: FakeApi) -> Reply:
            os.kill(os.getpid(), signal.SIGTERM)
            return 503, {'error': 'jit cannot reach its store right now; try again'}, {'retry-after': '5'}

        code, fake = run_request({('POST', '/requests'): [unavailable]}, 'demo-app', 'deploy', '--wait')
        assert code == 143 and len(fake.sent) == 1
        assert capsys.readouterr().err.splitlines()[-1] == 'jit: SIGTERM: nothing was filed'


def test_a_signal_while_held_is_acted_on_after():
    """A SIGTERM during the POST must not lose the request's ID: it is noted, then raised."""
    before = signal.getsignal(signal.SIGTERM)
    with ci._Signals() as signals:
        with signals.held():
            os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(ci._Interrupted) as caught:
            signals.check()
    assert caught.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before  # the handlers are put back


def test_token_names_are_checked(capsys):
    assert ci.run(argparse.Namespace(ci_command='token', name='-bad name')) == 2
    assert capsys.readouterr().out == ''
    assert ci.run(argparse.Namespace(ci_command='token', name='deploy-main')) == 0
    token, line = capsys.readouterr().out.split()
    assert line.startswith('deploy-main:sha256:') and token.startswith('jit_')
