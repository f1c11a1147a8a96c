"""Real jit processes for end-to-end tests: ``jit serve`` and ``jit worker`` as subprocesses.

They get the environment an operator would give them (Slack token and signing secret, the local
Slack's API URL, a Redis database of their own, a policy directory) and log JSON to files under
the test's temporary directory, which a failing test prints.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis

from tests.support.redis_server import free_port

__all__ = ['JitProcesses', 'free_port', 'launch_jit', 'stop_process_group', 'wait_until']


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process and its children (started with ``start_new_session``), SIGKILL if they linger."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def wait_until(check, timeout: float = 10.0, interval: float = 0.05, what: str = 'condition'):
    """Poll ``check`` until it returns something truthy; fail the test with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout}s waiting for {what}')
        time.sleep(interval)


class JitProcesses:
    """Starts, kills and restarts the web and worker processes of one jit installation."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = {**os.environ, **env}
        self.logs = logs
        self.port = int(env['PORT'])
        self.web: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self._n = 0

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def _spawn(self, command: str) -> subprocess.Popen[bytes]:
        self._n += 1
        log = open(self.logs / f'{command}-{self._n}.log', 'wb')  # noqa: SIM115 - kept open for the process
        # Own session: a kill reaches the worker and the scheduler process it forks.
        return subprocess.Popen(
            [sys.executable, '-m', 'bot', command],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_web(self) -> None:
        self.web = self._spawn('serve')

        def healthy() -> bool:
            assert self.web is not None and self.web.poll() is None, self.dump_logs()
            try:
                with urllib.request.urlopen(f'{self.url}/healthz', timeout=1) as answer:
                    return answer.status == 200
            except OSError:
                return False

        wait_until(healthy, timeout=20, what='jit serve /healthz')

    def start_worker(self) -> None:
        """Start a worker and wait until RQ lists it (a new registration, not a dead worker's leftover)."""
        client = redis.Redis.from_url(self.env['REDIS_URL'])
        before = set(client.smembers('rq:workers'))
        self.worker = self._spawn('worker')
        wait_until(lambda: set(client.smembers('rq:workers')) - before, timeout=20, what='jit worker to register')

    def kill_worker(self) -> None:
        """SIGKILL: no clean shutdown, no chance to finish or hand over anything."""
        if self.worker and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait(10)

    def stop(self) -> None:
        for proc in (self.web, self.worker):
            if proc:
                stop_process_group(proc)

    def dump_logs(self) -> str:
        logs = sorted(self.logs.glob('*.log'))
        return '\n'.join(f'--- {p.name}\n{p.read_text(errors="replace")[-6000:]}' for p in logs)


def launch_jit(root: Path, *, slack: Any, signing_secret: str, redis_url: str, policy: str, **env: str) -> JitProcesses:
    """Write ``policy`` under ``root``, start ``jit serve`` and ``jit worker`` against the local Slack, and
    point the local Slack at them. ``env`` adds or overrides settings (webhook URLs, provider secrets)."""
    policies, logs = root / 'policies', root / 'logs'
    policies.mkdir(parents=True)
    logs.mkdir()
    (policies / 'policy.yaml').write_text(textwrap.dedent(policy))
    if getattr(slack, 'transport', 'http') == 'socket':
        env = {'SLACK_APP_TOKEN': slack.app_token, **env}
    procs = JitProcesses({
        'SLACK_BOT_TOKEN': slack.bot_token, 'SLACK_SIGNING_SECRET': signing_secret, 'SLACK_API_URL': slack.api_url,
        'REDIS_URL': redis_url, 'JIT_POLICY_DIR': str(policies), 'PORT': str(free_port()), 'JIT_HOST': '127.0.0.1',
        # One access process unless a test asks for more: each costs a Python start, on a machine running three
        # test processes at once (tests/chaos/test_worker_processes.py runs two).
        'JIT_SWEEP_INTERVAL': '1', 'JIT_LOG_FORMAT': 'json', 'JIT_WORKER_PROCESSES': '1', **env,
    }, logs)  # fmt: skip
    try:
        procs.start_web()
        if getattr(slack, 'transport', 'http') == 'socket':
            assert slack.wait_for_socket(20), 'jit serve did not open a Socket Mode connection\n' + procs.dump_logs()
        procs.start_worker()
    except BaseException:
        procs.stop()  # nothing half-started outlives the test
        raise
    slack.app_url = f'{procs.url}/slack/events'
    return procs
