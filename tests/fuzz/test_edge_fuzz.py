"""The HTTP edge under bad input: thousands of generated requests against a running ``jit serve``.

product.md §7: a bad or stale signature is a 401; missing or malformed signature headers and bodies that
are not what Slack sends are a 400 (an oversize body a 413); nothing a client sends yields a 5xx; user
mistakes are a 200 with an ephemeral text. The web process is a real subprocess with a real worker beside
it on database 7 of this test process's own Redis server, the Slack it talks to is the local one (``bot/sandbox``).
Each test prints a ``FIGURES`` line: bodies sent, by status, by signing and by kind; latencies.
Larger runs with a table: ``python -m bench.edge_fuzz``.
"""

from __future__ import annotations

import json
import os
import time
from urllib.parse import parse_qsl, quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.edge import (
    FORM,
    JSON_TYPE,
    UNSIGNED,
    Case,
    cases,
    log_lines,
    problems,
    settled_snapshot,
    signature,
    snapshot,
)

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.slow]
#: Generated requests per fuzz test: the two send 3,200 together, in about 50 s (``JIT_FUZZ_EXAMPLES`` for more).
EXAMPLES = int(os.environ.get('JIT_FUZZ_EXAMPLES', '1600'))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def rejections(edge) -> list[dict]:
    return [line for line in log_lines(edge.procs) if isinstance(line, dict) and line.get('event') == 'slack.rejected']


def assert_healthy_and_quiet(edge) -> None:
    assert edge.client.get('/healthz') == 200
    assert edge.procs.web is not None and edge.procs.web.poll() is None, 'jit serve died'
    found = problems(log_lines(edge.procs))
    assert found == [], json.dumps(found[:5], indent=1)[:6000]


def test_unsigned_and_wrongly_signed_requests_are_refused_and_change_nothing(edge):
    """No signature, a wrong or stale one, or malformed headers: 401/400 (413 oversize), one log line each,
    and not one Redis key of jit or RQ created or changed - the body is never looked at."""
    before = settled_snapshot(edge.redis)
    logged_before = len(rejections(edge))

    @FUZZ
    @given(case=cases(signings=UNSIGNED))
    def send(case: Case) -> None:
        answer = edge.client.send(case, edge.secret)
        assert answer.status in (case.expected or ()), (case.signing, case.kind, answer.status, answer.body[:300])
        assert snapshot(edge.redis) == before, (case.signing, case.kind, case.body[:300])

    send()
    figures = edge.client.figures
    print('\n' + figures.line('unsigned'))
    assert figures.sent >= EXAMPLES * 0.9  # hypothesis may stop early only when it runs out of distinct cases
    assert set(figures.by_status) <= {400, 401, 413}
    time.sleep(0.3)
    logged = rejections(edge)[logged_before:]
    assert len(logged) == figures.sent, 'every refusal is logged, once'
    assert {line['status'] for line in logged} == set(figures.by_status)
    assert edge.secret not in json.dumps(log_lines(edge.procs))
    assert_healthy_and_quiet(edge)
    assert snapshot(edge.redis) == before


def test_signed_garbage_is_answered_below_500(edge):
    """Validly signed bodies of every shape: a 4xx, or a 200 (with a text for slash commands); never a 5xx,
    never a traceback in the web process's log."""

    @FUZZ
    @given(case=cases(signings=('valid',)))
    def send(case: Case) -> None:
        answer = edge.client.send(case, edge.secret)
        context = (case.kind, case.content_type, answer.status, case.body[:400], answer.body[:300])
        assert answer.status < 500, context
        assert answer.status in (200, 400, 404, 413), context
        if case.kind == 'slash' and answer.status == 200:
            fields = dict(parse_qsl(case.body.decode(), keep_blank_values=True))
            if fields.get('text', '').strip().lower() not in ('', 'request'):
                assert answer.body.strip(), f'a slash command is answered with a text: {context}'

    send()
    figures = edge.client.figures
    print('\n' + figures.line('signed'))
    assert figures.sent >= EXAMPLES * 0.9
    assert not [s for s in figures.by_status if s >= 500]
    time.sleep(2)  # listeners go on after their ack: let them finish before reading the log
    assert_healthy_and_quiet(edge)
    # The guard's refusals (400, 413) are logged once each; Bolt's 404s for types jit has no listener for are not.
    assert len(rejections(edge)) == figures.by_status[400] + figures.by_status[413]


def _signed(edge, body: bytes, content_type: str = FORM) -> list[tuple[str, str | bytes]]:
    stamp = str(int(time.time()))
    return [('Content-Type', content_type), ('X-Slack-Request-Timestamp', stamp),
            ('X-Slack-Signature', signature(edge.secret, stamp, body))]  # fmt: skip


def _payload(**fields) -> bytes:
    base = {'type': 'block_actions', 'user': {'id': 'U0ALEX', 'team_id': 'T0JIT'}, 'team': {'id': 'T0JIT'},
            'trigger_id': '1.2.abc', 'actions': [{'action_id': 'jit.approve', 'value': 'nope'}]}  # fmt: skip
    return ('payload=' + quote(json.dumps({**base, **fields}))).encode()


_VIEW = {'id': 'V1', 'type': 'modal', 'callback_id': 'jit.deny_modal', 'private_metadata': 'r-1',
         'state': {'values': {'deny_reason': {'reason': {'type': 'plain_text_input', 'value': 5}}}}}  # fmt: skip
#: What the fuzz found, kept as plain cases: (name, body, headers, expected status). Before the guard was
#: extended, each of these was a 500, a traceback, a request Bolt accepted, or a refusal that logged the body.
FINDINGS = [
    ('JSON array', b'[]', lambda e, b: _signed(e, b, JSON_TYPE), 400),  # Bolt: 'list' has no .get: 500
    ('JSON nested 50,000 deep', b'[' * 50_000 + b']' * 50_000, lambda e, b: _signed(e, b, JSON_TYPE), 400),
    ('unknown charset', b'command=/jit&text=help&user_id=U0ALEX&team_id=T0JIT&trigger_id=1.2.abc',
     lambda e, b: _signed(e, b, f'{FORM}; charset=nope'), 200),  # request.text(): LookupError, 500
    ('not UTF-8', b'command=/jit&text=\xff', lambda e, b: _signed(e, b), 400),
    ('team is a number', _payload(team=5), lambda e, b: _signed(e, b), 400),  # Bolt's context: TypeError, 500
    ('user id is a list', _payload(user={'id': [{}]}), lambda e, b: _signed(e, b), 400),  # listener: TypeError
    ('view without type', _payload(type='view_submission', view={'id': 'V1', 'callback_id': 'jit.deny_modal'}),
     lambda e, b: _signed(e, b), 400),  # Bolt: 500 (docs/slack-protocol.md)
    ('deny reason is a number', _payload(type='view_submission', view=_VIEW), lambda e, b: _signed(e, b), 400),
    ('view is a list', _payload(type='view_closed', view=[]), lambda e, b: _signed(e, b), 400),  # Bolt: 500
    ('JSON body sent as a form', b'{"type": "url_verification", "challenge": "x"}', lambda e, b: _signed(e, b), 400),
    ('timestamp in Arabic-Indic digits', b'command=/jit', lambda e, b: [
        ('Content-Type', FORM), ('X-Slack-Request-Timestamp', str(int(time.time())).translate(
            str.maketrans('0123456789', '٠١٢٣٤٥٦٧٨٩')).encode()), ('X-Slack-Signature', 'v0=' + '0' * 64)], 400),
    ('signature twice', b'command=/jit', lambda e, b: [*_signed(e, b), ('X-Slack-Signature', 'v0=' + '0' * 64)], 400),
    ('forged garbage', b'payload=%7Bnot-json', lambda e, b: [('Content-Type', FORM), ('X-Slack-Request-Timestamp',
     str(int(time.time()))), ('X-Slack-Signature', 'v0=' + '1' * 64)], 401),  # was a 400: parsed before verified
    ('1.5 MB declared', b'x' * 1_500_000, lambda e, b: _signed(e, b), 413),
]  # fmt: skip


def test_what_the_fuzz_found_stays_fixed(edge):
    """Each input the fuzz found, by name: the status the contract asks for, one log line per refusal."""
    for name, body, headers, status in FINDINGS:
        logged = len(rejections(edge))
        answer = edge.client.post('/slack/events', headers(edge, body), body)
        assert answer.status == status, (name, answer.status, answer.body[:300])
        time.sleep(0.05)
        assert len(rejections(edge)) - logged == (1 if status >= 400 else 0), name
    chunked = b'payload=' + b'x' * 1_500_000
    answer = edge.client.post('/slack/events', _signed(edge, chunked), chunked, chunked=True)
    assert answer.status == 413
    assert_healthy_and_quiet(edge)
    assert all(line['why'] and 'x' * 100 not in json.dumps(line) for line in rejections(edge)), 'no body logged'


def test_an_expired_trigger_id_is_not_a_traceback(edge):
    """`/jit` alone opens the request modal with ``views.open``; Slack answers ``expired_trigger_id`` when the
    bot took longer than 3 s (or ``invalid_trigger_id``). The user should be told, not the log get a traceback."""
    form = {'command': '/jit', 'text': '', 'user_id': 'U0ALEX', 'team_id': 'T0JIT', 'channel_id': 'D0ALEX',
            'trigger_id': edge.slack.mint_trigger('U0ALEX', ttl=0)}  # fmt: skip
    body = urlencode(form).encode()
    answer = edge.client.post('/slack/events', _signed(edge, body), body)
    assert answer.status == 200
    time.sleep(1)
    assert problems(log_lines(edge.procs)) == []
