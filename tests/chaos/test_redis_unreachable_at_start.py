"""Redis is not there when ``jit serve`` and ``jit worker`` start: each says so in one line and waits.

Both processes are started against a loopback port nobody listens on. Each logs one ``redis.unreachable``
warning naming the URL and what failed (no traceback, no exit); ``jit serve`` answers ``/healthz`` and says 503
on ``/readyz`` meanwhile. When a Redis comes up on that port, ``/readyz`` turns 200, the worker's job loop
registers with RQ, and a request filed then is granted and revoked as usual.
"""

from __future__ import annotations

import json
import textwrap
import time
import urllib.error
import urllib.request

import pytest
import redis

from tests.chaos.conftest import POLICY, SIGNING_SECRET, approve_all, file_many, make_store, settle
from tests.support.processes import JitProcesses, wait_until
from tests.support.redis_server import RedisServer, free_port
from tests.support.slack import demo_webhook_env

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _lines(path) -> list[dict]:
    out = []
    for text in path.read_text(errors='replace').splitlines():
        try:
            out.append(json.loads(text))
        except ValueError:
            out.append({'event': 'not json', 'text': text})
    return out


def test_both_processes_say_it_in_one_line_and_wait_for_redis(tmp_path, slack, webhook):
    data = tmp_path / 'redis-data'
    data.mkdir()
    server = RedisServer(data, port=free_port())  # not started yet: nobody listens on its port
    root = tmp_path / 'jit'
    (root / 'policies').mkdir(parents=True)
    (root / 'logs').mkdir()
    (root / 'policies' / 'policy.yaml').write_text(textwrap.dedent(POLICY))
    jit = JitProcesses({
        'SLACK_BOT_TOKEN': slack.bot_token, 'SLACK_SIGNING_SECRET': SIGNING_SECRET, 'SLACK_API_URL': slack.api_url,
        'REDIS_URL': server.url, 'JIT_POLICY_DIR': str(root / 'policies'), 'PORT': str(free_port()),
        'JIT_HOST': '127.0.0.1', 'JIT_SWEEP_INTERVAL': '1', 'JIT_LOG_FORMAT': 'json', 'JIT_WORKER_PROCESSES': '1',
        'JIT_AUDIT_CHANNEL': 'C0AUDIT', **demo_webhook_env(webhook),
    }, root / 'logs')  # fmt: skip
    try:
        jit.start_web()  # waits for /healthz: the web process serves without Redis
        jit.workers[0] = jit._spawn('worker')
        logs = {'serve': root / 'logs' / 'serve-1.log', 'worker': root / 'logs' / 'worker-2.log'}

        def unreachable(name: str) -> list[dict]:
            return [line for line in _lines(logs[name]) if line.get('event') == 'redis.unreachable']

        for name in logs:
            wait_until(lambda n=name: unreachable(n), timeout=20, what=f'{name} to say Redis is unreachable')
        status, body = _get(f'{jit.url}/readyz')
        assert status == 503 and any('redis' in p for p in body['problems']), (status, body)
        time.sleep(3)  # a few retries later: still alive, still one line each (the next after 30 s)
        for name in logs:
            said = unreachable(name)
            assert len(said) == 1, (name, said)
            assert said[0]['url'] == server.url and 'ConnectionError' in said[0]['error'], said
            assert 'Traceback' not in logs[name].read_text(), jit.dump_logs()
            assert [line for line in _lines(logs[name]) if line.get('level') in ('error', 'critical')] == [], name
        assert jit.web.poll() is None and jit.worker.poll() is None, jit.dump_logs()

        server.start()
        wait_until(lambda: _get(f'{jit.url}/readyz')[0] == 200, timeout=30, what='/readyz 200 once Redis is up')
        client = redis.Redis.from_url(server.url)
        wait_until(lambda: any(client.hget(key, 'pid') == str(jit.worker.pid).encode()
                               for key in client.smembers('rq:workers')), timeout=30,
                   what='the worker loop to register with RQ')  # fmt: skip
        for name in logs:  # serve's line comes from its policy announcement, which pings at most 5 s apart
            wait_until(lambda n=name: any(line.get('event') == 'redis.reachable' for line in _lines(logs[n])),
                       timeout=15, what=f'{name} to say Redis is reachable')  # fmt: skip
        slack.app_url = f'{jit.url}/slack/events'
        ids = file_many(slack, 1, 10, 'after a late redis')
        approve_all(slack, ids)
        settle('redis-late-at-start', webhook, make_store(server.url), ids, timeout=40).check()
        assert [c for c in webhook.grants_for(ids[0]) if c.ok], 'never granted'
    finally:
        jit.stop()
        server.stop()
