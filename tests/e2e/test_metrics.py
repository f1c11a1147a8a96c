"""``/metrics`` on ``jit serve`` and on ``jit worker``'s ``JIT_METRICS_PORT``, scraped after a real request's life.

Parsed with ``prometheus_client.parser`` (what Prometheus reads), and checked for what an operator alerts on,
and that no label holds a user or a request.
"""

from __future__ import annotations

import re
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_request_flow import approval_copy, file_request
from tests.support.policies import E2E_POLICY
from tests.support.processes import launch_jit, wait_until
from tests.support.redis_server import free_port
from tests.support.reports import stop_and_show_logs
from tests.support.slack import SIGNING_SECRET, demo_webhook_env

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
SAM = 'U0SAM'
#: What may never be a label value: a request ID, a Slack user ID, an email.
PERSONAL = re.compile(r'r-[a-z0-9]{8}|U0[A-Z0-9]+|@')


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample at ``url``: name -> {sorted labels: value}."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers['Content-Type'].startswith('text/plain')
        text = answer.read().decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(v for key, v in samples.get(name, {}).items() if set(labels.items()) <= set(key))


@pytest.fixture(name='metered')
def _metered(tmp_path, redis_url, slack, webhook, request):
    port = free_port()
    procs = launch_jit(tmp_path, slack=slack, signing_secret=SIGNING_SECRET, redis_url=redis_url, policy=E2E_POLICY,
                       JIT_METRICS_PORT=str(port), **demo_webhook_env(webhook))  # fmt: skip
    yield procs, f'http://127.0.0.1:{port}/metrics'
    stop_and_show_logs(procs, request)


def test_both_processes_serve_what_happened_to_a_request(metered, slack, webhook, store):
    jit, worker_url = metered
    request_id, _ = file_request(slack, text='request demo-app read 10s checking metrics')
    slack.driver.click(SAM, approval_copy(slack, SAM, request_id), 'jit.approve')
    wait_until(lambda: store.get(request_id).status.value == 'revoked', timeout=30, what='granted and revoked')

    web = scrape(f'{jit.url}/metrics')
    assert value(web, 'jit_requests_total', surface='slack', outcome='pending') == 1
    assert value(web, 'jit_decisions_total', rule='demo-read', outcome='approved') == 1
    assert value(web, 'jit_slack_api_calls_total') >= 1  # users.info at least
    assert value(web, 'jit_policy_loads_total', outcome='loaded') >= 1

    def counted():
        samples = scrape(worker_url)
        return samples if value(samples, 'jit_revokes_total') else None

    worker = wait_until(counted, timeout=15, what='the revoke counted')
    assert value(worker, 'jit_grants_total', provider='webhook', outcome='granted') == 1
    assert value(worker, 'jit_revokes_total', provider='webhook', outcome='revoked') == 1
    assert value(worker, 'jit_grant_seconds_count', provider='webhook') == 1
    assert value(worker, 'jit_revoke_lateness_seconds_count', provider='webhook') == 1
    assert value(worker, 'jit_revoke_lateness_seconds_sum', provider='webhook') < 5
    # Counted in the notify process, added up by the worker's /metrics (prometheus-client's multiprocess mode).
    wait_until(lambda: value(scrape(worker_url), 'jit_slack_api_calls_total', method='chat.postMessage') >= 1,
               timeout=15, what="the notify process's Slack calls")  # fmt: skip
    assert value(worker, 'jit_active_grants') == 0 and value(worker, 'jit_revokes_due') == 0
    assert value(worker, 'jit_revoke_failed_grants') == 0 and value(worker, 'jit_pending_requests') == 0
    assert {dict(k)['queue'] for k in worker['jit_queue_jobs']} == {'access', 'notify'}

    for samples in (web, worker):
        for name, series in samples.items():
            for labels in series:
                assert not [v for _, v in labels if PERSONAL.search(v)], (name, labels)


def test_a_live_grant_and_a_waiting_request_show_in_the_gauges(metered, slack, store):
    _, worker_url = metered
    waiting, _ = file_request(slack, text='request demo-app read 10m waiting for sam')
    live, _ = file_request(slack, user='U0DANA', text='request demo-app read 10m live for a while')
    slack.driver.click(SAM, approval_copy(slack, SAM, live), 'jit.approve')
    wait_until(lambda: store.get(live).status.value == 'active', timeout=20, what='active')
    gauges = scrape(worker_url)
    assert value(gauges, 'jit_active_grants') == 1 and value(gauges, 'jit_pending_requests') == 1
    assert store.get(waiting).status.value == 'pending'
    assert value(gauges, 'jit_outbox_queued') == 0  # these rules ask in Slack only
    store.redis.zadd(store.prefix + 'outbox:due', {'ask-email|r-x|sam@example.com|0': 1.0})
    assert value(scrape(worker_url), 'jit_outbox_queued') == 1
