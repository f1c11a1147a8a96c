"""``jit ci`` as a pipeline runs it: a real subprocess against real ``jit serve`` and ``jit worker``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from bot.core.model import RequestStatus
from tests.e2e.test_pipeline_api import (
    DEPLOY_TOKEN,
    NIGHTLY_TOKEN,
    SECRET_DETAIL,
    _jit,  # noqa: F401 - the `jit` fixture, with the pipeline rules
)
from tests.e2e.test_request_flow import approval_copy
from tests.support.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
S = RequestStatus
MERGE = ['--context', 'event=pr_merge', '--context', 'branch=production']


def ci(jit, token, *args, wait=True, **kw):
    env = {**os.environ, 'JIT_URL': jit.url, 'JIT_TOKEN': token}
    proc = subprocess.Popen([sys.executable, '-m', 'bot', 'ci', *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)  # fmt: skip
    if not wait:
        return proc
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_request_wait_prints_the_sealed_details_and_release_gives_them_back(jit, webhook, store):
    webhook.details = {'password': SECRET_DETAIL, 'db-host': 'db.internal'}
    code, out, err = ci(jit, DEPLOY_TOKEN, 'request', 'demo-app', 'deploy', '5m', '--reason', 'release 1.4.2',
                        '--wait', '--format', 'env')  # fmt: skip
    assert code == 0, err
    env = dict(line.split('=', 1) for line in out.strip().splitlines())
    assert env['JIT_PASSWORD'] == SECRET_DETAIL and env['JIT_DB_HOST'] == 'db.internal'
    request_id = env['JIT_REQUEST_ID']
    assert store.get(request_id).status is S.ACTIVE and env['JIT_EXPIRES_AT'].endswith('Z')
    assert DEPLOY_TOKEN not in out + err and SECRET_DETAIL not in err
    code, out, err = ci(jit, DEPLOY_TOKEN, 'release', request_id)
    assert code == 0 and 'access ends now' in err, err
    wait_until(lambda: store.get(request_id).status is S.REVOKED, timeout=10, what='the revoke')
    assert [c for c in webhook.revokes_for(request_id) if c.ok]


def test_wait_for_an_approver_in_slack_then_json(jit, slack, webhook, store):
    webhook.details = {'token': SECRET_DETAIL}
    proc = ci(jit, NIGHTLY_TOKEN, 'request', 'demo-app', 'read', '10m', '--reason', 'nightly check', *MERGE,
              '--wait', '--format', 'json', wait=False)  # fmt: skip
    pending = wait_until(lambda: store.for_user('pipeline:nightly'), timeout=15, what='the request')
    request_id = pending[0].id
    copy = approval_copy(slack, 'U0SAM', request_id)
    assert slack.driver.click('U0SAM', copy, 'jit.approve', request_id).status == 200
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    import json

    shown = json.loads(out)
    assert shown['id'] == request_id and shown['status'] == 'active' and shown['details'] == {'token': SECRET_DETAIL}


def test_refusals_exit_1_and_timeouts_release_what_was_asked(jit, store):
    code, out, err = ci(jit, DEPLOY_TOKEN, 'request', 'demo-app', 'read', '--wait')
    assert code == 1 and 'Not filed' in err and out == ''
    code, _, err = ci(jit, NIGHTLY_TOKEN, 'request', 'demo-app', 'read', *MERGE, '--wait', '--timeout', '3s')
    assert code == 3 and 'released' in err, err
    (request,) = store.for_user('pipeline:nightly')
    assert request.status is S.CANCELLED  # nobody can approve it after the job gave up


def test_sigterm_while_waiting_releases(jit, store):
    proc = ci(jit, NIGHTLY_TOKEN, 'request', 'demo-app', 'read', *MERGE, '--wait', wait=False)
    wait_until(lambda: store.for_user('pipeline:nightly'), timeout=15, what='the request')
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert store.for_user('pipeline:nightly')[0].status is S.CANCELLED


def test_bad_token_and_settings_exit_2_in_one_line(jit):
    code, out, err = ci(jit, 'jit_' + 'x' * 43, 'request', 'demo-app', 'deploy', '--wait')
    assert code == 2 and 'unknown token' in err and 'jit_' not in out + err and 'Traceback' not in err
    code, _, err = ci(jit, '', 'release', 'r-abcdefgh')
    assert code == 2 and 'JIT_TOKEN is not set' in err
    code, _, err = ci(jit, DEPLOY_TOKEN, 'release', 'r-abcdefgh')
    assert code == 2 and 'no request' in err


def test_token_prints_a_token_and_its_hash(tmp_path):
    from bot.api.tokens import hash_token

    out = subprocess.run([sys.executable, '-m', 'bot', 'ci', 'token', 'deploy-main'], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    token = next(line.strip() for line in out.splitlines() if line.strip().startswith('jit_'))
    assert f'deploy-main:{hash_token(token)}' in out
    bad = subprocess.run([sys.executable, '-m', 'bot', 'ci', 'token', '-x y'], capture_output=True, text=True)
    assert bad.returncode == 2
