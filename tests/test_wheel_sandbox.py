"""The built wheel, installed into a fresh venv, runs ``jit sandbox`` as a newcomer would: from a directory of their
own (no ``policies/`` there), with no ``REDIS_URL``, ``JIT_POLICY_DIR`` or checkout on the path.

What only an installed wheel can show: the package data the sandbox needs (its page, the example policy it falls
back to) is in the wheel, and ``jit`` runs from the venv's own copy of the code. Then, with the embedded Redis
under ``.jit/``: the sandbox prints the ``REDIS_URL`` that points other commands at it, ``jit audit verify`` run
beside it finds that Redis by itself (and says so), and a restart keeps both the audit trail and the page's
messages. The venv gets the dependencies of ``constraints.txt`` (from pip's cache or index, as ``.ci/run`` installs
them); bytecode is not compiled, which halves the install.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import free_port, stop_process_group, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
#: What the wheel is built from: the project's files, copied, so that the build leaves nothing in the checkout.
SOURCES = ('pyproject.toml', 'README.md', 'bot', 'workers', 'policies')
START_TIMEOUT = 60.0
ALEX = 'U0ALEX'


def _run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, **kw)
    assert done.returncode == 0, f'{argv[:4]} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}'
    return done


@pytest.fixture(name='venv', scope='module')
def _venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this checkout installed, and jit's dependencies."""
    if shutil.which('redis-server') is None:
        pytest.skip('redis-server is not on PATH (apt-get install redis-server)')
    work = tmp_path_factory.mktemp('wheel')
    source = work / 'source'
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, symlinks=True, ignore=shutil.ignore_patterns('__pycache__'))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(path, source / name)
    _run([sys.executable, '-m', 'pip', 'wheel', str(source), '--no-deps', '-q', '-w', str(work / 'dist')])
    (wheel,) = (work / 'dist').glob('jit_access-*.whl')
    venv = work / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', str(venv)])
    _run([sys.executable, '-m', 'pip', '--python', str(venv / 'bin' / 'python'), 'install', '-q', '--no-compile',
          str(wheel), '-c', str(ROOT / 'constraints.txt')])  # fmt: skip
    return venv


@pytest.fixture(name='home')
def _home() -> Iterator[Path]:
    """A directory of the user's own, short enough for the Redis socket under its ``.jit/``."""
    with tempfile.TemporaryDirectory(prefix='jit-wheel-', dir='/tmp') as here:
        yield Path(here)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(('JIT_', 'REDIS_', 'SLACK_', 'PYTHON'))}
    return {**env, 'JIT_SWEEP_INTERVAL': '1'}


class Sandbox:
    """``jit sandbox`` of the venv, run in ``home``; its output lines as they come."""

    def __init__(self, venv: Path, home: Path) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        argv = [str(venv / 'bin' / 'jit'), 'sandbox', '--port', str(free_port())]
        self.proc = subprocess.Popen(argv, cwd=home, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors='replace')
            self.output.append(line)
            self.lines.put(line)
        self.lines.put('')

    def url(self) -> str:
        """The page's URL, once printed; the test fails with the output if it is not."""
        while True:
            try:
                line = self.lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                pytest.fail(f'jit sandbox printed no URL within {START_TIMEOUT:.0f} s:\n' + ''.join(self.output))
            if not line:
                pytest.fail(f'jit sandbox exited with {self.proc.wait(5)}:\n' + ''.join(self.output))
            if 'open http' in line:
                return line.split('open ', 1)[1].split()[0]

    def said(self, text: str) -> str:
        """The next output line containing ``text``."""
        while True:
            line = self.lines.get(timeout=10)
            assert line, f'jit sandbox exited before saying {text!r}:\n' + ''.join(self.output)
            if text in line:
                return line

    def stop(self) -> None:
        stop_process_group(self.proc, timeout=20)
        assert self.proc.returncode == 0, ''.join(self.output)


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, answer.read().decode()


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method='POST',
                                     headers={'Content-Type': 'application/json'})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def _dm(url: str) -> list[str]:
    """The texts in alex's DM that everyone in it sees (not the answers only alex saw)."""
    state = json.loads(_get(f'{url}sandbox/state?user={ALEX}')[1])
    (dm,) = [c for c in state['channels'] if c['name'] == 'jit (DM)']
    return [m['text'] for m in dm['messages'] if not m['ephemeral']]


def test_the_wheel_runs_the_sandbox_from_a_fresh_venv_and_a_restart_keeps_trail_and_page(venv, home):
    installed = _run([str(venv / 'bin' / 'python'), '-c', 'import bot.sandbox.run as r; print(r.EXAMPLE_POLICY)'],
                     cwd=home, env=_env()).stdout.strip()  # fmt: skip
    assert installed.startswith(str(venv)) and (Path(installed) / 'example.yaml').is_file()

    sandbox = Sandbox(venv, home)
    try:
        url = sandbox.url()
        status, page = _get(url)
        assert status == 200 and 'jit sandbox' in page
        sock = home.resolve() / '.jit' / 'redis.sock'
        assert sandbox.said('REDIS_URL=').strip().endswith(f'REDIS_URL=unix://{sock}, e.g.')
        ack = _post(f'{url}sandbox/command', {'user': ALEX, 'text': 'request demo-app read 10m trying the wheel'})
        assert ack['status'] == 200 and 'Filed' in ack['text'], ack  # the example policy shipped in the wheel
        before = wait_until(lambda: [t for t in _dm(url) if 'Your request' in t] and _dm(url), timeout=20,
                            what="the request's status message in alex's DM")  # fmt: skip

        verify = subprocess.run([str(venv / 'bin' / 'jit'), 'audit', 'verify'], cwd=home, env=_env(),
                                capture_output=True, text=True, timeout=30)  # fmt: skip
        assert verify.returncode == 0, verify
        assert verify.stderr == f"jit: REDIS_URL is not set; reading the running jit sandbox's Redis at unix://{sock}\n"
        assert ' events, chain intact, head ' in verify.stdout and not verify.stdout.startswith('0 events')
    finally:
        sandbox.stop()

    again = Sandbox(venv, home)
    try:
        url = again.url()
        assert again.said('page history').strip().endswith(f'messages from {home.resolve()}/.jit/slack-history.json')
        assert _dm(url)[: len(before)] == before
        verify = subprocess.run([str(venv / 'bin' / 'jit'), 'audit', 'query', '--format', 'jsonl'], cwd=home,
                                env=_env(), capture_output=True, text=True, timeout=30)  # fmt: skip
        assert verify.returncode == 0, verify
        assert 'trying the wheel' in verify.stdout  # the trail of before the restart
    finally:
        again.stop()
