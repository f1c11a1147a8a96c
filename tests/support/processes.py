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
    """Starts, kills and restarts the web and worker processes of one jit installation.

    Usually one of each; :func:`launch_jit` with ``webs``/``workers`` starts several of each against the same
    Redis, as replicas behind a load balancer and workers on several machines would run. ``web``, ``worker``,
    ``port`` and ``url`` are the first of them; ``webs``, ``workers`` and ``urls`` all of them, by index.
    """

    def __init__(self, env: dict[str, str], logs: Path, *, webs: int = 1, workers: int = 1) -> None:
        self.env = {**os.environ, **env}
        self.logs = logs
        #: Each web replica's port; the first is ``PORT``, the others are picked as each one starts.
        self.ports: list[int | None] = [int(env['PORT'])] + [None] * (webs - 1)
        self.webs: list[subprocess.Popen[bytes] | None] = [None] * webs
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * workers
        self._n = 0

    @property
    def web(self) -> subprocess.Popen[bytes] | None:
        return self.webs[0]

    @property
    def worker(self) -> subprocess.Popen[bytes] | None:
        return self.workers[0]

    @property
    def port(self) -> int:
        return self._port(0)

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def urls(self) -> list[str]:
        """Each web replica's base URL, by index."""
        return [f'http://127.0.0.1:{self._port(i)}' for i in range(len(self.webs))]

    def _port(self, index: int) -> int:
        port = self.ports[index]
        if port is None:
            port = self.ports[index] = free_port()
        return port

    def _spawn(self, command: str, **env: str) -> subprocess.Popen[bytes]:
        self._n += 1
        log = open(self.logs / f'{command}-{self._n}.log', 'wb')  # noqa: SIM115 - kept open for the process
        # Own session: a kill reaches the worker and the scheduler process it forks.
        return subprocess.Popen(
            [sys.executable, '-m', 'bot', command],
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_web(self, *indexes: int) -> None:
        """Start web replicas (the first when none is named) and wait until each answers ``/healthz``.

        They start side by side: each costs a Python start, and none waits for the one before.
        """
        indexes = indexes or (0,)
        for index in indexes:
            self.webs[index] = self._spawn('serve', PORT=str(self._port(index)))

        def healthy(index: int) -> bool:
            web = self.webs[index]
            assert web is not None and web.poll() is None, self.dump_logs()
            try:
                with urllib.request.urlopen(f'{self.urls[index]}/healthz', timeout=1) as answer:
                    return answer.status == 200
            except OSError:
                return False

        for index in indexes:
            wait_until(lambda i=index: healthy(i), timeout=20, what=f'jit serve /healthz ({self.urls[index]})')

    def start_worker(self, *indexes: int) -> None:
        """Start workers (the first when none is named) side by side, and wait until RQ lists each one's own
        loop (a registration with its process ID, not a dead worker's leftover nor its notify process)."""
        indexes = indexes or (0,)
        client = redis.Redis.from_url(self.env['REDIS_URL'])
        for index in indexes:
            self.workers[index] = self._spawn('worker')

        def registered() -> bool:
            pids = {int(pid) for key in client.smembers('rq:workers') if (pid := client.hget(key, 'pid'))}
            for index in indexes:
                worker = self.workers[index]
                assert worker is not None and worker.poll() is None, self.dump_logs()
                if worker.pid not in pids:
                    return False
            return True

        wait_until(registered, timeout=20, what='jit worker to register')

    def kill_worker(self, index: int = 0) -> None:
        """SIGKILL: no clean shutdown, no chance to finish or hand over anything."""
        worker = self.workers[index]
        if worker and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)

    def stop(self) -> None:
        for proc in (*self.webs, *self.workers):
            if proc:
                stop_process_group(proc)

    def dump_logs(self) -> str:
        logs = sorted(self.logs.glob('*.log'))
        return '\n'.join(f'--- {p.name}\n{p.read_text(errors="replace")[-6000:]}' for p in logs)


def launch_jit(root: Path, *, slack: Any, signing_secret: str, redis_url: str, policy: str, webs: int = 1,
               workers: int = 1, **env: str) -> JitProcesses:  # fmt: skip
    """Write ``policy`` under ``root``, start ``jit serve`` and ``jit worker`` against the local Slack, and
    point the local Slack at them (at the first replica, when ``webs`` asks for more than one; every worker
    has the same settings). ``env`` adds or overrides settings (webhook URLs, provider secrets)."""
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
    }, logs, webs=webs, workers=workers)  # fmt: skip
    try:
        procs.start_web(*range(webs))
        if getattr(slack, 'transport', 'http') == 'socket':
            assert slack.wait_for_socket(20), 'jit serve did not open a Socket Mode connection\n' + procs.dump_logs()
        procs.start_worker(*range(workers))
    except BaseException:
        procs.stop()  # nothing half-started outlives the test
        raise
    slack.app_url = f'{procs.url}/slack/events'
    return procs
