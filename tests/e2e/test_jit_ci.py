"""``jit ci`` as a pipeline runs it: ``python -m bot ci ...`` as a subprocess, against real ``jit serve`` and
``jit worker`` processes, Redis, the local Slack and a webhook target that hands out a secret.

The server is configured with the hash line ``jit ci token`` printed, so the token command, the server's
token check and the client meet for real.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from bot.api.tokens import hash_token, new_token
from bot.core.model import RequestStatus
from tests.e2e.test_request_flow import approval_copy
from tests.support.policies import E2E_POLICY, PIPELINE_RULES
from tests.support.processes import free_port, launch_jit, wait_until
from tests.support.reports import stop_and_show_logs
from tests.support.slack import SIGNING_SECRET, demo_webhook_env

pytestmark = [pytest.mark.e2e, pytest.mark.redis]
S = RequestStatus
SAM = 'U0SAM'
NIGHTLY_TOKEN = new_token()
SECRET_DETAIL = 'pw-' + 'Zq9v' * 6  # what the target hands out; must reach the pipeline's stdout and nowhere else
MERGE = ('--context', 'event=pr_merge', '--context', 'branch=production')


def jit_ci(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``jit ci ARGS`` started as a pipeline step would start it (its own environment, no token flag)."""
    clean = {k: v for k, v in os.environ.items() if k not in ('JIT_URL', 'JIT_TOKEN')}
    return subprocess.Popen([sys.executable, '-m', 'bot', 'ci', *args], env={**clean, **(env or {})}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def finished(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture(name='deploy_token', scope='module')
def _deploy_token():
    """``jit ci token deploy-main``: the token (stdout line 1) and the JIT_API_TOKENS entry (line 2)."""
    code, out, err = finished(jit_ci('token', 'deploy-main'))
    assert code == 0 and 'JIT_TOKEN' in err and 'JIT_API_TOKENS' in err, err
    token, line = out.split()
    return token, line


@pytest.fixture(name='jit')
def _jit(tmp_path, redis_url, slack, webhook, deploy_token, request):
    procs = launch_jit(tmp_path, slack=slack, signing_secret=SIGNING_SECRET, redis_url=redis_url,
                       policy=E2E_POLICY + PIPELINE_RULES, JIT_AUDIT_CHANNEL='C0AUDIT', **demo_webhook_env(webhook),
                       JIT_API_TOKENS=f'{deploy_token[1]},nightly:{hash_token(NIGHTLY_TOKEN)}')  # fmt: skip
    yield procs
    stop_and_show_logs(procs, request)


def as_pipeline(jit, token: str) -> dict[str, str]:
    return {'JIT_URL': jit.url, 'JIT_TOKEN': token}


def test_token_prints_a_token_once_and_the_hash_line_for_jit_api_tokens(deploy_token):
    """stdout is exactly the token and ``NAME:sha256:HEX`` of it; the explanation is on stderr."""
    token, line = deploy_token
    assert re.fullmatch(r'jit_[A-Za-z0-9_-]{43}', token)
    assert line == f'deploy-main:{hash_token(token)}'
    code, out, err = finished(jit_ci('token', 'no spaces'))
    assert code == 2 and out == '' and 'not a pipeline name' in err and len(err.splitlines()) == 1


def test_wait_prints_the_sealed_details_in_each_format_and_release_revokes(jit, webhook, store, deploy_token):
    """deploy-main is auto-approved: --wait prints the details the target returned, opened with its own key."""
    webhook.details = {'password': SECRET_DETAIL, 'db-host': 'db.internal', 'port': 5432}
    env = as_pipeline(jit, deploy_token[0])

    code, out, err = finished(jit_ci('request', 'demo-app', 'deploy', '5m', '--reason', 'release 1.4.2', '--wait',
                                     env=env))  # fmt: skip
    assert code == 0, err
    head, *lines = out.splitlines()
    text_id = re.fullmatch(r'request (r-[a-z0-9]{8}) active until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', head)
    assert text_id, head
    assert lines == [f'password: {SECRET_DETAIL}', 'db-host: db.internal', 'port: 5432']
    assert f'filed {text_id[1]}: approved' in err and SECRET_DETAIL not in err

    code, out, err = finished(jit_ci('request', 'demo-app', 'deploy', '--wait', '--format', 'env', env=env))
    assert code == 0, err
    assert all(re.fullmatch(r'JIT_[A-Z0-9_]+=[^\n]*', line) for line in out.splitlines()), out
    parsed = dict(line.split('=', 1) for line in out.splitlines())
    assert parsed['JIT_PASSWORD'] == SECRET_DETAIL and parsed['JIT_DB_HOST'] == 'db.internal'
    assert parsed['JIT_PORT'] == '5432' and parsed['JIT_EXPIRES_AT'].endswith('Z')
    env_id = parsed['JIT_REQUEST_ID']
    assert store.get(env_id).status is S.ACTIVE and store.get(env_id).duration == 20 * 60  # the rule's default

    code, out, err = finished(jit_ci('request', 'demo-app', 'deploy', '2m', '--wait', '--format', 'json', env=env))
    assert code == 0, err
    shown = json.loads(out)
    assert shown['status'] == 'active' and shown['requester'] == 'pipeline:deploy-main'
    assert shown['details'] == {'password': SECRET_DETAIL, 'db-host': 'db.internal', 'port': 5432}  # opened
    json_id = shown['id']
    assert deploy_token[0] not in out + err

    code, out, err = finished(jit_ci('release', json_id, env=env))
    assert code == 0 and out.strip() == f'{json_id} active: the access ends now', (out, err)
    wait_until(lambda: store.get(json_id).status is S.REVOKED, timeout=10, what='the revoke')
    assert [c for c in webhook.revokes_for(json_id) if c.ok]
    code, out, _ = finished(jit_ci('release', json_id, env=env))
    assert code == 0 and out.strip() == f'{json_id} already revoked: nothing to give back'
    assert store.get(env_id).status is S.ACTIVE  # the others are untouched


def test_wait_while_a_lead_approves_in_slack(jit, slack, webhook, store):
    """nightly's request waits for an approver: --wait keeps polling until sam approves, then prints."""
    webhook.details = {'token': SECRET_DETAIL}
    proc = jit_ci('request', 'demo-app', 'read', '10m', '--reason', 'smoke test after merge', *MERGE, '--wait',
                  '--format', 'json', env=as_pipeline(jit, NIGHTLY_TOKEN))  # fmt: skip
    (pending,) = wait_until(lambda: store.for_user('pipeline:nightly'), timeout=15, what='the request')
    copy = approval_copy(slack, SAM, pending.id)
    assert 'pipeline:nightly' in copy.content
    assert proc.poll() is None  # still waiting for a decision
    assert slack.driver.click(SAM, copy, 'jit.approve', pending.id).status == 200
    code, out, err = finished(proc)
    assert code == 0, err
    shown = json.loads(out)
    assert shown['id'] == pending.id and shown['approvals'][0]['by'] == 'sam@example.com'
    assert shown['details'] == {'token': SECRET_DETAIL}
    assert f'{pending.id}: pending' in err and f'{pending.id}: active' in err


def test_denials_exit_1_with_the_reason(jit, slack, store, deploy_token):
    """A lead's Deny ends the wait with exit 1 and their reason; a request the policy refuses is never filed."""
    proc = jit_ci('request', 'demo-app', 'read', *MERGE, '--wait', env=as_pipeline(jit, NIGHTLY_TOKEN))
    (pending,) = wait_until(lambda: store.for_user('pipeline:nightly'), timeout=15, what='the request')
    copy = approval_copy(slack, SAM, pending.id)
    assert slack.driver.click(SAM, copy, 'jit.deny').status == 200
    view = slack.workspace.wait_for(lambda: next(iter(slack.workspace.views_for(SAM)), None), timeout=10)
    assert slack.driver.submit_view(SAM, view, {'deny_reason': 'not during the freeze'}).status == 200
    code, out, err = finished(proc)
    assert code == 1 and out == '', err
    assert err.splitlines()[-1] == f'jit: {pending.id} denied by sam@example.com: not during the freeze'

    code, out, err = finished(jit_ci('request', 'demo-app', 'read', '--wait', env=as_pipeline(jit, deploy_token[0])))
    assert code == 1 and out == '' and len(err.splitlines()) == 1, err
    assert err.startswith('jit: Not filed') and 'Allowed for this pipeline: demo-app deploy (up to 20m)' in err
    assert not store.for_user('pipeline:deploy-main')


def test_giving_up_releases_the_request(jit, store):
    """--timeout and SIGTERM both cancel what was filed, so no approver can grant it to a job that is gone."""
    env = as_pipeline(jit, NIGHTLY_TOKEN)
    code, out, err = finished(jit_ci('request', 'demo-app', 'read', *MERGE, '--wait', '--timeout', '3s', env=env))
    assert code == 3 and out == '', err
    (timed_out,) = store.for_user('pipeline:nightly')
    assert timed_out.status is S.CANCELLED
    assert f'{timed_out.id} was not granted within 3s; released: {timed_out.id} cancelled' in err

    code, out, err = finished(jit_ci('request', 'demo-app', 'read', *MERGE, env=env))  # no --wait: filed, printed
    assert code == 0 and re.fullmatch(r'request r-[a-z0-9]{8} pending\n', out), (out, err)
    left_pending = out.split()[1]
    assert store.get(left_pending).status is S.PENDING

    proc = jit_ci('request', 'demo-app', 'read', *MERGE, '--wait', env=env)
    wait_until(lambda: len(store.for_user('pipeline:nightly')) == 3, timeout=15, what='the third request')
    waiting = store.for_user('pipeline:nightly')[0]
    proc.send_signal(signal.SIGTERM)
    code, out, err = finished(proc)
    assert code == 128 + signal.SIGTERM and out == '', err
    assert f'SIGTERM; released: {waiting.id} cancelled' in err
    assert store.get(waiting.id).status is S.CANCELLED

    code, out, err = finished(jit_ci('release', left_pending, env=env))
    assert code == 0 and out.strip() == f'{left_pending} cancelled: it will not be granted', err
    assert store.get(left_pending).status is S.CANCELLED


def test_wrong_token_and_settings_exit_2_in_one_line(jit, deploy_token):
    """No traceback, nothing on stdout, and never the token, whatever is wrong."""
    wrong = new_token()
    cases = [
        (as_pipeline(jit, wrong), ('request', 'demo-app', 'deploy', '--wait'), 'jit: unknown token (HTTP 401)'),
        (as_pipeline(jit, deploy_token[0]), ('release', 'r-abcdefgh'), "jit: no request 'r-abcdefgh'"),
        ({'JIT_URL': f'http://127.0.0.1:{free_port()}', 'JIT_TOKEN': wrong}, ('request', 'demo-app', '--wait'),
         'jit: cannot reach JIT_URL http://127.0.0.1:'),
        ({'JIT_URL': jit.url}, ('release', 'r-abcdefgh'), 'jit: JIT_TOKEN is not set'),
        ({'JIT_TOKEN': wrong}, ('request', 'demo-app'), 'jit: JIT_URL is not set'),
        ({'JIT_URL': 'jit.example.com', 'JIT_TOKEN': wrong}, ('request', 'demo-app'), 'jit: JIT_URL '),
    ]  # fmt: skip
    for env, args, says in cases:
        code, out, err = finished(jit_ci(*args, env=env))
        assert code == 2 and out == '' and len(err.splitlines()) == 1, (args, err)
        assert err.startswith(says) and wrong not in err and deploy_token[0] not in err, (args, err)
    assert 'connection refused' in finished(jit_ci('release', 'r-abcdefgh', env=cases[2][0]))[2]


# --- jit ci run ----------------------------------------------------------------------------------------------

#: The command ``jit ci run`` runs in these tests: it prints what it was given, then exits with argv[1].
SHOW_ENV = 'import os, sys; print(os.environ["JIT_REQUEST_ID"], os.environ["JIT_PASSWORD"]); sys.exit(int(sys.argv[1]))'


@pytest.mark.parametrize('status', [0, 7])
def test_run_gives_the_command_the_access_and_releases_it_whatever_its_exit_status(jit, webhook, store,
                                                                                  deploy_token, status):  # fmt: skip
    """The command sees the details as --format env names them; its status is jit's; the access ends after."""
    webhook.details = {'password': SECRET_DETAIL}
    env = as_pipeline(jit, deploy_token[0])
    code, out, err = finished(jit_ci('run', 'demo-app', 'deploy', '5m', '--reason', 'deploy 1.4.4', '--',
                                     sys.executable, '-c', SHOW_ENV, str(status), env=env))  # fmt: skip
    assert code == status, err
    request_id, password = out.split()
    assert re.fullmatch(r'r-[a-z0-9]{8}', request_id) and password == SECRET_DETAIL
    assert f'exited with {status}; released: {request_id} active: the access ends now' in err, err
    assert SECRET_DETAIL not in err
    wait_until(lambda: store.get(request_id).status is S.REVOKED, timeout=10, what='the revoke')
    assert [c for c in webhook.revokes_for(request_id) if c.ok]


def test_run_passes_sigterm_on_and_releases(jit, store, deploy_token, tmp_path):
    """SIGTERM to jit while the command runs: the command gets it too, the access is released, exit 143."""
    marker = tmp_path / 'running'
    script = ('import os, pathlib, sys, time; pathlib.Path(sys.argv[1]).write_text(str(os.getpid())); '
              'time.sleep(60)')  # fmt: skip
    proc = jit_ci('run', 'demo-app', 'deploy', '5m', '--', sys.executable, '-c', script, str(marker),
                  env=as_pipeline(jit, deploy_token[0]))  # fmt: skip
    wait_until(lambda: marker.exists() and marker.read_text(), timeout=20, what='the command to start')
    child = int(marker.read_text())
    (request,) = store.for_user('pipeline:deploy-main')
    assert store.get(request.id).status is S.ACTIVE  # the command runs with the access
    proc.send_signal(signal.SIGTERM)
    code, out, err = finished(proc)
    assert code == 128 + signal.SIGTERM and out == '', err
    assert f'SIGTERM, passed on to {sys.executable}; released: {request.id} active: the access ends now' in err
    assert not os.path.exists(f'/proc/{child}'), 'the command outlived jit'
    wait_until(lambda: store.get(request.id).status is S.REVOKED, timeout=10, what='the revoke')


def test_run_says_why_the_command_did_not_run_with_its_own_exit_codes(jit, store, deploy_token):
    """125 refused (nothing filed), 127 not found (granted, then released), 125 without a command."""
    env = as_pipeline(jit, deploy_token[0])
    code, out, err = finished(jit_ci('run', 'demo-app', 'read', '--', 'true', env=env))
    assert code == 125 and out == '' and 'Not filed' in err and 'nothing was filed' in err, err
    assert not store.for_user('pipeline:deploy-main')
    code, out, err = finished(jit_ci('run', 'demo-app', 'deploy', '--', 'no-such-command-here', env=env))
    assert code == 127 and out == '', err
    (request,) = store.for_user('pipeline:deploy-main')
    assert f'no-such-command-here: command not found; released: {request.id}' in err
    wait_until(lambda: store.get(request.id).status is S.REVOKED, timeout=10, what='the revoke')
    code, out, err = finished(jit_ci('run', 'demo-app', 'deploy', env=env))
    assert (
        code == 125 and 'name the command to run after --' in err and len(store.for_user('pipeline:deploy-main')) == 1
    )
