"""What the fuzz tests (and ``bench/edge_fuzz.py``) throw at ``/slack/events``, and how they watch the result.

A :class:`Case` is one HTTP request: a body of some *kind* (slash command, an interaction ``payload=`` of
some type, an Events API body, garbage, an oversize body), a content type, and a *signing* mode that says
which headers it carries and what the edge must answer:

===================  ============================================================  ==========
signing              headers                                                       answer
===================  ============================================================  ==========
``valid``            Slack's, computed with the signing secret                     < 500
``bad-mac`` …        well formed but wrong: other secret, other body, stale/future   401
``no-headers`` …     missing, malformed or duplicated signature headers              400
(oversize body)      any of the above (chunked: malformed headers come first, 400)   413
===================  ============================================================  ==========

The strategies start from the payloads Slack really sends (``docs/slack-protocol.md``) and then break
them: keys dropped, values replaced by other JSON types, huge or non-ASCII strings, nested garbage,
truncated JSON. Everything here is plain Python and hypothesis; no pytest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import http.client
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import redis
from hypothesis import strategies as st

from tests.support.processes import JitProcesses
from tests.support.redis_server import own_redis_url

#: The tests' own Redis database; flushed before and after.
FUZZ_REDIS_URL = own_redis_url(7)
FORM = 'application/x-www-form-urlencoded'
JSON_TYPE = 'application/json'
USERS = ['U0ALEX', 'U0DANA', 'U0SAM', 'U0SEC', 'U0EVE', 'U0GUEST', 'U0OTHER', 'U0NOBODY', 'USLACKBOT']
#: Sizes above this are oversize (the edge refuses them whole); Slack's own stay far below.
OVERSIZE_FROM = 1_000_001

# -- generated values ------------------------------------------------------------------------------


def _mostly(usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any], percent: int = 75) -> st.SearchStrategy[Any]:
    """``usual`` about ``percent`` % of the time: enough well-formed requests get through to the listeners."""
    return st.integers(0, 99).flatmap(lambda n: usual if n < percent else other)


#: Stands for a fresh trigger id: :class:`EdgeClient` mints one at the local Slack as it sends the case.
TRIGGER = 'FUZZTRIGGER'
#: A fresh trigger id, or one Slack never sends (empty, not token-shaped, too long). A well-shaped id that
#: Slack does not know is left out: views.open refuses it and the listener lets that error escape (see
#: ``test_an_expired_trigger_id_is_not_a_traceback``).
_trigger = _mostly(st.just(TRIGGER), st.sampled_from(['', 'not a trigger!', 'x' * 300]), 85)

_weird_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec='utf-8'), max_size=60),
    st.sampled_from(['', ' ', '\x00', '\u202e', '🔥' * 50, 'é', '\ud7ff', '%', '&', '=', '+', 'payload', '{', '[',
                     'null', 'NaN', '1e999', '-0', 'v0=', '../../etc/passwd', "'; DROP TABLE", '<script>']),
    st.integers(min_value=1_000, max_value=40_000).map(lambda n: 'x' * n),  # huge strings
)  # fmt: skip
_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _weird_text)
#: Any JSON value, nested a few levels deep.
json_garbage = st.recursive(
    _scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
_request_id = st.one_of(
    st.sampled_from(['', 'r-1', 'R0000000000', 'jit-0000', '0' * 64]),
    st.from_regex(r'[a-z0-9-]{1,30}', fullmatch=True), _weird_text,
)  # fmt: skip
_duration = st.one_of(st.sampled_from(['20s', '30m', '1h', '2h', '3h', '0s', '1d', '99999999999h', '1h30m', 'x']),
                      _weird_text)  # fmt: skip
_word = st.one_of(st.sampled_from(['demo-app', 'read', 'deploy', 'nope', '-', '|']), _weird_text)
_slash_text = st.one_of(
    st.sampled_from(['', 'request', 'help', 'list', 'resources', 'ssh-key', 'frobnicate', 'REQUEST', '  list  ']),
    st.builds(lambda r, ro, d, why: f'request {r} {ro} {d} {why}', _word, _word, _duration, _weird_text),
    st.builds(lambda i, d, why: f'extend {i} {d} {why}', _request_id, _duration, _weird_text),
    st.builds(lambda sub, i: f'{sub} {i}', st.sampled_from(['release', 'cancel', 'revoke']), _request_id),
    st.builds(lambda key: f'ssh-key {key}', st.one_of(_weird_text, st.sampled_from([
        'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI', 'ssh-rsa AAAA', 'ssh-ed25519 ' + 'A' * 5000]))),
    _weird_text,
)  # fmt: skip


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path into a JSON value: ``('view', 'state', 'values')``, ``('actions', 0)``..."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*prefix, key)
            yield from _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield (*prefix, i)
            yield from _paths(inner, (*prefix, i))


@st.composite
def _mutated(draw: st.DrawFn, template: dict[str, Any]) -> dict[str, Any]:
    """The template, or the template with a few keys dropped or their values replaced by any JSON."""
    body = json.loads(json.dumps(template))
    every = list(_paths(template))
    for _ in range(draw(_mostly(st.just(0), st.integers(1, 4), 50))):
        path = draw(st.sampled_from(every))
        parent: Any = body
        try:
            for step in path[:-1]:
                parent = parent[step]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(json_garbage)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced the way there
    return body


def _user(user: str) -> dict[str, Any]:
    return {'id': user, 'username': user.lower(), 'name': user.lower(), 'team_id': 'T0JIT'}


@st.composite
def block_actions(draw: st.DrawFn) -> dict[str, Any]:
    user = draw(st.sampled_from(USERS))
    action_id = draw(st.sampled_from(['jit.approve', 'jit.deny', 'jit.extend', 'jit.release', 'jit.cancel',
                                      'other.button']))  # fmt: skip
    value = draw(st.one_of(_request_id, st.builds(lambda i, n: f'{i}|{n}', _request_id, _weird_text)))
    view = draw(st.sampled_from([None, {'type': 'home', 'id': 'V1'}, {'type': 'modal', 'id': 'V2'}]))
    body = {
        'type': 'block_actions', 'user': _user(user), 'api_app_id': 'A0JIT', 'token': 'x',
        'container': {'type': 'message', 'message_ts': '1.2', 'channel_id': 'D0X', 'is_ephemeral': False},
        'trigger_id': draw(_trigger), 'team': {'id': 'T0JIT', 'domain': 'jit'},
        'channel': {'id': 'D0X', 'name': 'directmessage'},
        'message': {'ts': '1.2', 'text': 'x', 'blocks': []}, 'state': {'values': {}},
        'response_url': 'http://127.0.0.1:9/response/x',
        'actions': [{'action_id': action_id, 'block_id': 'jit.decision', 'text': {'type': 'plain_text', 'text': 'A'},
                     'value': value, 'style': 'primary', 'type': 'button', 'action_ts': '1.3'}],
    }  # fmt: skip
    if view:
        body['view'] = view
        if view['type'] == 'home':  # pressed in the App Home tab: no message, no channel, a view container
            body['container'] = {'type': 'view', 'view_id': view['id']}
            del body['message'], body['channel'], body['response_url']
    return draw(_mutated(body))


@st.composite
def view_submission(draw: st.DrawFn) -> dict[str, Any]:
    user = draw(st.sampled_from(USERS))
    callback = draw(st.sampled_from(['jit.request_modal', 'jit.deny_modal', 'other.modal']))
    values = {
        'access': {'access': {'type': 'static_select', 'selected_option': {'value': draw(st.one_of(
            st.sampled_from(['demo-app:read', 'demo-app:deploy', 'prod:admin', ':', '']), _weird_text))}}},
        'duration': {'duration': {'type': 'static_select', 'selected_option': {'value': draw(st.one_of(
            st.sampled_from(['1800', '7200', '0', '-1', '99999999999999999999']), _weird_text))}}},
        'reason': {'reason': {'type': 'plain_text_input', 'value': draw(_weird_text)}},
        'ticket': {'ticket': {'type': 'plain_text_input', 'value': draw(_weird_text)}},
        'deny_reason': {'reason': {'type': 'plain_text_input', 'value': draw(_weird_text)}},
    }  # fmt: skip
    body = {
        'type': 'view_submission', 'team': {'id': 'T0JIT', 'domain': 'jit'}, 'user': _user(user),
        'api_app_id': 'A0JIT', 'trigger_id': draw(_trigger), 'token': 'x',
        'view': {'id': 'V1', 'type': 'modal', 'callback_id': callback, 'private_metadata': draw(_request_id),
                 'blocks': [{'type': 'input', 'block_id': b} for b in values], 'state': {'values': values},
                 'hash': '1.abc'},
    }  # fmt: skip
    return draw(_mutated(body))


@st.composite
def other_interaction(draw: st.DrawFn) -> dict[str, Any]:
    """view_closed, shortcut, message_action, block_suggestion and types Slack never sends."""
    kind = draw(_mostly(st.sampled_from(['view_closed', 'shortcut', 'message_action', 'block_suggestion']),
                        _weird_text))  # fmt: skip
    body = {
        'type': kind, 'team': {'id': 'T0JIT', 'domain': 'jit'}, 'user': _user(draw(st.sampled_from(USERS))),
        'api_app_id': 'A0JIT', 'token': 'x', 'trigger_id': draw(_trigger), 'callback_id': draw(_weird_text),
        'action_id': draw(_weird_text), 'value': draw(_weird_text), 'is_cleared': False,
        'view': {'id': 'V1', 'type': 'modal', 'callback_id': 'jit.request_modal', 'private_metadata': ''},
    }  # fmt: skip
    return draw(_mutated(body))


@st.composite
def events_body(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return draw(_mutated({'token': 'x', 'challenge': draw(_weird_text), 'type': 'url_verification'}))
    body = {
        'token': 'x', 'team_id': 'T0JIT', 'api_app_id': 'A0JIT', 'type': 'event_callback', 'event_id': 'Ev1',
        'event_time': 1700000000, 'authorizations': [{'team_id': 'T0JIT', 'user_id': 'U0BOT', 'is_bot': True}],
        'event': {'type': draw(st.sampled_from(['app_home_opened', 'app_mention', 'message', 'x'])),
                  'user': draw(st.sampled_from(USERS)), 'channel': 'D0X', 'tab': draw(st.sampled_from(['home',
                  'messages'])), 'event_ts': '1.2'},
    }  # fmt: skip
    return draw(_mutated(body))


@st.composite
def slash_fields(draw: st.DrawFn) -> dict[str, Any]:
    """A slash command's fields, each present, missing or (in a JSON body) of another type."""
    fields: dict[str, Any] = {
        'token': 'x', 'team_id': draw(_mostly(st.just('T0JIT'), st.sampled_from(['T0OTHER', '']))),
        'team_domain': 'jit', 'channel_id': 'D0X', 'channel_name': 'directmessage',
        'user_id': draw(_mostly(st.sampled_from(USERS), _weird_text, 85)), 'user_name': 'x',
        'command': draw(_mostly(st.just('/jit'), st.sampled_from(['/other', '', 'jit']), 85)),
        'text': draw(_slash_text), 'api_app_id': 'A0JIT', 'is_enterprise_install': 'false',
        'response_url': draw(st.sampled_from(['http://127.0.0.1:9/response/x', '', 'not a url'])),
        'trigger_id': draw(_trigger),
    }  # fmt: skip
    for key in draw(_mostly(st.just([]), st.lists(st.sampled_from(sorted(fields)), max_size=3), 70)):
        fields.pop(key, None)
    return fields


# -- cases -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One request: its body, content type, kind (for the figures) and signing mode."""

    kind: str
    body: bytes
    content_type: str | None
    signing: str = 'valid'
    chunked: bool = False

    @property
    def expected(self) -> frozenset[int] | None:
        """The statuses the edge may answer, or None for a validly signed body (then: anything below 500)."""
        if len(self.body) >= OVERSIZE_FROM:
            # A declared length is refused at once; a chunked body only when reading it, after the headers.
            return frozenset({400 if self.chunked and self.signing in MALFORMED_HEADERS else 413})
        if self.signing in WRONG_SIGNATURE:
            return frozenset({401})
        if self.signing in MALFORMED_HEADERS:
            return frozenset({400})
        return None


#: Well-formed headers with a signature that does not check out: 401.
WRONG_SIGNATURE = ('bad-mac', 'other-secret', 'other-body', 'stale', 'future', 'zero-ts')
#: Headers missing, malformed or duplicated: 400.
MALFORMED_HEADERS = (
    'no-headers', 'no-signature', 'no-timestamp', 'ts-garbage', 'ts-float', 'ts-negative', 'ts-huge', 'ts-unicode',
    'sig-short', 'sig-long', 'sig-prefix', 'sig-upper', 'sig-garbage', 'dup-signature', 'dup-timestamp',
)  # fmt: skip
UNSIGNED = WRONG_SIGNATURE + MALFORMED_HEADERS


def _urlencode_any(fields: dict[str, Any]) -> str:
    return urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()})


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, bytes, str | None]:
    """``(kind, body, natural content type)`` of everything but oversize bodies."""
    which = draw(st.sampled_from(['slash', 'slash-json', 'block_actions', 'view_submission', 'other-interaction',
                                  'events', 'payload-garbage', 'json-garbage', 'truncated-json', 'form-garbage',
                                  'bytes']))  # fmt: skip
    if which == 'slash':
        fields = draw(slash_fields())
        raw = _urlencode_any(fields)
        if draw(st.integers(0, 4)) == 4:  # a field twice, or a field whose name is garbage
            name = draw(st.sampled_from(['user_id', 'command', 'text', 'payload']))
            raw += '&' + urlencode({name: draw(_weird_text)})
        return which, raw.encode(), FORM
    if which == 'slash-json':
        fields = draw(slash_fields())
        for key in draw(st.lists(st.sampled_from(sorted(fields) or ['text']), max_size=2)):
            fields[key] = draw(json_garbage)
        return which, json.dumps(fields).encode(), JSON_TYPE
    if which in ('block_actions', 'view_submission', 'other-interaction'):
        payload = draw({'block_actions': block_actions(), 'view_submission': view_submission(),
                        'other-interaction': other_interaction()}[which])  # fmt: skip
        kind = f'payload:{payload.get("type") if isinstance(payload.get("type"), str) else "?"}'[:40]
        if kind not in ('payload:block_actions', 'payload:view_submission', 'payload:view_closed',
                        'payload:shortcut', 'payload:message_action', 'payload:block_suggestion'):  # fmt: skip
            kind = 'payload:unknown'
        return kind, ('payload=' + quote(json.dumps(payload))).encode(), FORM
    if which == 'events':
        event = draw(events_body())
        kind = 'events:' + (event.get('type') if event.get('type') in ('url_verification', 'event_callback') else '?')
        return kind, json.dumps(event).encode(), JSON_TYPE
    if which == 'payload-garbage':
        text = draw(st.one_of(json_garbage.map(json.dumps), _weird_text))
        return which, ('payload=' + quote(text)).encode(), FORM
    if which == 'json-garbage':
        deep = st.one_of(st.integers(1, 50_000).map(lambda n: '[' * n + ']' * n),
                         st.integers(1, 30_000).map(lambda n: '{"a":' * n + '1' + '}' * n))  # fmt: skip
        value = draw(st.one_of(json_garbage, deep))
        return which, (value if isinstance(value, str) else json.dumps(value)).encode(), JSON_TYPE
    if which == 'truncated-json':
        text = json.dumps(draw(st.one_of(block_actions(), events_body())))
        cut = draw(st.integers(1, max(1, len(text) - 1)))
        prefix = draw(st.sampled_from(['', 'payload=']))
        return which, (prefix + (quote(text[:cut]) if prefix else text[:cut])).encode(), FORM if prefix else JSON_TYPE
    if which == 'form-garbage':
        pairs = draw(st.lists(st.tuples(_weird_text, _weird_text), max_size=5))
        return which, urlencode(pairs).encode(), FORM
    return which, draw(st.binary(max_size=2_000)), draw(st.sampled_from([FORM, JSON_TYPE]))


_content_types = st.sampled_from([
    FORM, JSON_TYPE, f'{FORM}; charset=utf-8', f'{JSON_TYPE}; charset=utf-8', f'{FORM}; charset=nope',
    f'{JSON_TYPE}; charset=latin-1', 'text/plain', 'multipart/form-data; boundary=x', '', 'garbage/€',
])  # fmt: skip


@st.composite
def cases(draw: st.DrawFn, signings: tuple[str, ...] = ('valid',), oversize: bool = True) -> Case:
    """A request with one of ``signings``; its content type is the natural one, or not."""
    signing = draw(st.sampled_from(signings))
    if oversize and draw(st.integers(0, 40)) == 0:
        size = draw(st.integers(OVERSIZE_FROM, 2_500_000))
        body = b'payload=' + b'%7B%22a%22%3A%22' + b'x' * size
        return Case('oversize', body, FORM, signing, chunked=draw(st.booleans()))
    kind, body, natural = draw(bodies())
    content_type = natural if draw(st.integers(0, 3)) else draw(st.one_of(_content_types, st.none()))
    return Case(kind, body, content_type, signing)


# -- sending ---------------------------------------------------------------------------------------


def signature(secret: str, timestamp: str | bytes, body: bytes) -> str:
    stamp = timestamp.encode() if isinstance(timestamp, str) else timestamp
    return 'v0=' + hmac.new(secret.encode(), b'v0:' + stamp + b':' + body, hashlib.sha256).hexdigest()


def signing_headers(case: Case, secret: str, now: int | None = None) -> list[tuple[str, str | bytes]]:
    """The ``X-Slack-*`` headers of ``case.signing`` (a list: some modes repeat a header)."""
    now = int(time.time()) if now is None else now
    stamp, body = str(now), case.body
    good = signature(secret, stamp, body)
    mode = case.signing
    ts: list[str | bytes] = [stamp]
    sig: list[str | bytes] = [good]
    if mode == 'bad-mac':
        sig = ['v0=' + ('0' if good[3] != '0' else '1') + good[4:]]
    elif mode == 'other-secret':
        sig = [signature(secret + 'x', stamp, body)]
    elif mode == 'other-body':
        sig = [signature(secret, stamp, body + b'&x=1')]
    elif mode in ('stale', 'future', 'zero-ts'):
        when = {'stale': now - 301 - (now % 100_000), 'future': now + 301 + (now % 100_000), 'zero-ts': 0}[mode]
        ts, sig = [str(when)], [signature(secret, str(when), body)]
    elif mode == 'no-headers':
        ts, sig = [], []
    elif mode == 'no-signature':
        sig = []
    elif mode == 'no-timestamp':
        ts = []
    elif mode.startswith('ts-'):
        ts = [{'ts-garbage': 'yesterday', 'ts-float': f'{now}.5', 'ts-negative': f'-{now}',
               'ts-huge': '9' * 40, 'ts-unicode': f'{now}'.translate(str.maketrans('0123456789', '٠١٢٣٤٥٦٧٨٩'))
               }[mode].encode()]  # fmt: skip
        sig = [signature(secret, ts[0], body)]
    elif mode == 'sig-short':
        sig = [good[:-1]]
    elif mode == 'sig-long':
        sig = [good + 'a']
    elif mode == 'sig-prefix':
        sig = ['v1=' + good[3:]]
    elif mode == 'sig-upper':
        sig = ['v0=' + good[3:].upper()]
    elif mode == 'sig-garbage':
        sig = ['v0=' + 'zz' * 32]
    elif mode == 'dup-signature':
        sig = [good, good]
    elif mode == 'dup-timestamp':
        ts = [stamp, stamp]
    return [('X-Slack-Request-Timestamp', t) for t in ts] + [('X-Slack-Signature', s) for s in sig]


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    latency: float


@dataclass
class Figures:
    """What was sent and answered: counts by status, by kind and by signing mode; latencies."""

    by_status: Counter[int] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    by_signing: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def add(self, case: Case, answer: Answer) -> None:
        self.by_status[answer.status] += 1
        self.by_kind[case.kind] += 1
        self.by_signing['valid' if case.signing == 'valid' else 'unsigned/wrong'] += 1
        self.latencies.append(answer.latency)

    @property
    def sent(self) -> int:
        return len(self.latencies)

    @property
    def max_latency(self) -> float:
        return max(self.latencies, default=0.0)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else 0.0

    def line(self, name: str) -> str:
        def fmt(counter: Counter[Any]) -> str:
            return ' '.join(f'{k}={v}' for k, v in sorted(counter.items(), key=lambda kv: str(kv[0])))

        return (f'FIGURES {name}: sent={self.sent} status[{fmt(self.by_status)}] signing[{fmt(self.by_signing)}] '
                f'kind[{fmt(self.by_kind)}] p50={self.percentile(0.5) * 1000:.1f}ms '
                f'p99={self.percentile(0.99) * 1000:.1f}ms max={self.max_latency * 1000:.1f}ms')  # fmt: skip


class EdgeClient:
    """Posts exact bytes and headers (repeated ones too) to ``/slack/events``, one connection a request."""

    def __init__(self, port: int, mint: Callable[[], str] | None = None) -> None:
        """Post to ``jit serve`` on ``port``; ``mint`` issues the trigger ids that replace :data:`TRIGGER`."""
        self.port = port
        self.mint = mint
        self.figures = Figures()

    def send(self, case: Case, secret: str) -> Answer:
        headers: list[tuple[str, str | bytes]] = []
        if case.content_type is not None:
            headers.append(('Content-Type', case.content_type.encode()))
        body = case.body
        while self.mint is not None and TRIGGER.encode() in body:
            body = body.replace(TRIGGER.encode(), self.mint().encode(), 1)
        case = dataclasses.replace(case, body=body)
        headers += signing_headers(case, secret)
        answer = self.post('/slack/events', headers, case.body, chunked=case.chunked)
        self.figures.add(case, answer)
        return answer

    def post(self, path: str, headers: list[tuple[str, str | bytes]], body: bytes, *, chunked: bool = False) -> Answer:
        conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=30)
        started = time.monotonic()
        try:
            conn.putrequest('POST', path, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            if chunked:
                conn.putheader('Transfer-Encoding', 'chunked')
                conn.endheaders(message_body=(body[i : i + 65536] for i in range(0, len(body), 65536)),
                                encode_chunked=True)  # fmt: skip
            else:
                conn.putheader('Content-Length', str(len(body)))
                conn.endheaders(message_body=body)
            response = conn.getresponse()
            return Answer(response.status, response.read(), time.monotonic() - started)
        finally:
            conn.close()

    def get(self, path: str) -> int:
        conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=10)
        try:
            conn.request('GET', path)
            return conn.getresponse().status
        finally:
            conn.close()


# -- watching --------------------------------------------------------------------------------------

#: Short locks the worker's sweeper and reconciler take and drop on their own schedule: not state.
_TRANSIENT = re.compile(rb'^jit:lease:')


def snapshot(client: redis.Redis) -> dict[bytes, bytes]:
    """Every ``jit:`` key (leases aside) and every RQ queue, job and registry key, with a digest of its value."""
    keys = sorted(k for pattern in ('jit:*', 'rq:queue:*', 'rq:job:*', 'rq:scheduled:*', 'rq:deferred:*')
                  for k in client.scan_iter(match=pattern, count=1000) if not _TRANSIENT.match(k))  # fmt: skip
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
    dumps = pipe.execute()
    return {k: hashlib.sha256(d or b'').digest() for k, d in zip(keys, dumps, strict=True)}


def settled_snapshot(client: redis.Redis, timeout: float = 20.0) -> dict[bytes, bytes]:
    """A snapshot once the start-up work (policy.loaded, its audit-channel line) is done: two alike, 1 s apart,
    and the notify follower's cursor at the stream's head."""
    deadline = time.monotonic() + timeout
    last = snapshot(client)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        current = snapshot(client)
        shown = client.get('jit:notify:cursor') == client.hget('jit:audit:head', 'seq')  # Slack caught up
        if current == last and shown and not client.llen('rq:queue:notify') and not client.llen('rq:queue:access'):
            return current
        last = current
    raise AssertionError('the Redis state did not settle after start-up')


def log_lines(procs: JitProcesses, command: str = 'serve') -> list[dict[str, Any] | str]:
    """The process's log, JSON lines parsed (a line that is not JSON is kept as text: e.g. a raw traceback)."""
    lines: list[dict[str, Any] | str] = []
    for path in sorted(Path(procs.logs).glob(f'{command}-*.log')):
        for raw in path.read_text(errors='replace').splitlines():
            try:
                parsed = json.loads(raw)
            except ValueError:
                lines.append(raw)
            else:
                lines.append(parsed if isinstance(parsed, dict) else raw)
    return lines


def problems(lines: list[dict[str, Any] | str]) -> list[dict[str, Any] | str]:
    """Log lines that carry a traceback or an error level, and raw text lines (stderr noise, tracebacks)."""
    return [
        line for line in lines
        if isinstance(line, str) or 'exception' in line or line.get('level') in ('error', 'critical')
        or 'Traceback' in json.dumps(line)
    ]  # fmt: skip


@dataclass
class Edge:
    """The running installation under test and the client that feeds it."""

    procs: JitProcesses
    slack: Any
    redis: redis.Redis
    client: EdgeClient
    secret: str
