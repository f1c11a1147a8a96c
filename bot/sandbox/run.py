"""`jit sandbox`: all of jit on one machine, with a local Slack in the browser instead of a Slack workspace.

Part of `bot/sandbox/`. `run_sandbox` starts, in order: Redis (the `REDIS_URL` one, or an embedded
`redis-server` on a unix socket under the data directory), the local Slack with its page (`page.py`) on
`127.0.0.1:port`, the demo webhook receiver the example policy grants through, the sandbox's own SMTP server
(`mailbox.py`, the page's Inbox) and Teams channels (`teams_channel.py`), then `jit serve` and `jit worker` as
subprocesses wired to all of them. Approval emails and Teams cards stay on this machine: jit's SMTP URL and
every Teams webhook variable the policy names (`teams: {NAME: {webhook: env:VAR}}`) point at the sandbox, set
over whatever the environment says, and the decision links lead to this `jit serve`. It prints the page's URL,
where the page's history is kept (`history.py`: the local Slack's messages outlive a restart, as the audit trail
in Redis does) and, with the embedded Redis, the `REDIS_URL` that points other `jit` commands at it; it runs
until Ctrl-C or SIGTERM, then stops every child it started (terminate, then kill after 5 s). The children log
to `<data_dir>/logs/`. The data directory and all it holds are the user's alone (`_private.py`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import redis
import yaml

from bot.sandbox._private import PRIVATE_UMASK, make_private, open_private_log
from bot.sandbox.history import HISTORY_FILE, PageHistory
from bot.sandbox.local_slack import LocalSlack
from bot.sandbox.mailbox import Mailbox
from bot.sandbox.page import attach_mailbox, attach_teams, attach_webhook
from bot.sandbox.teams_channel import TeamsChannels
from bot.sandbox.webhook_target import WebhookTarget

__all__ = ['run_sandbox']

#: Seconds a child gets to stop after SIGTERM before it is killed.
STOP_GRACE = 5.0
#: Seconds Redis and `jit serve` get to come up.
START_TIMEOUT = 20.0
AUDIT_CHANNEL = 'C0AUDIT'
#: Who the approval emails come from.
MAIL_FROM = 'jit sandbox <jit@sandbox.example>'
_MISSING_REDIS = 'jit sandbox: install redis-server (apt-get install redis-server) or set REDIS_URL'


class SandboxError(Exception):
    """A part of the sandbox did not start; the message says which and where its log is."""


class _NoRedisServer(SandboxError):
    """No `REDIS_URL` and no `redis-server` on PATH."""


def _free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def _wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` until it is true; `SandboxError` naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SandboxError(f'{what} did not come up within {timeout:.0f}s')
        time.sleep(0.1)


#: The example policy, shipped in the package (the wheel too): what the sandbox runs when no other is given.
EXAMPLE_POLICY = Path(__file__).resolve().parent / 'example_policy'


def _policy_dir() -> str:
    """`JIT_POLICY_DIR`, else `./policies` when there is one, else the example policy shipped with jit."""
    configured = os.environ.get('JIT_POLICY_DIR')
    if configured:
        return configured
    here = Path('policies')
    return str(here.resolve()) if here.is_dir() else str(EXAMPLE_POLICY)


def _teams_webhook_vars(policy_dir: str) -> dict[str, str]:
    """The Teams channels the policy files in `policy_dir` name, as {webhook variable: channel name}.

    Read from the top-level `teams:` of each `*.yaml` / `*.yml` (`NAME: {webhook: env:VAR}`); a file that does
    not read is passed over here, as `jit serve` reports it with its line.
    """
    found: dict[str, str] = {}
    folder = Path(policy_dir)
    files = sorted([*folder.glob('*.yaml'), *folder.glob('*.yml')]) if folder.is_dir() else []
    for path in files:
        try:
            document = yaml.safe_load(path.read_text(encoding='utf-8'))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        teams = document.get('teams') if isinstance(document, dict) else None
        for name, channel in (teams or {}).items() if isinstance(teams, dict) else ():
            webhook = channel.get('webhook') if isinstance(channel, dict) else None
            if isinstance(webhook, str) and webhook.startswith('env:') and webhook[4:]:
                found[webhook[4:]] = str(name)
    return found


def _outside_slack_env(
    page_url: str, bot_url: str, mailbox: Mailbox, teams: TeamsChannels, policy_dir: str
) -> dict[str, str]:
    """The settings that keep approvals by email and Teams inside the sandbox (see the module docstring)."""
    env = {
        'JIT_SMTP_URL': mailbox.url, 'JIT_MAIL_FROM': MAIL_FROM, 'JIT_PUBLIC_URL': bot_url,
        'JIT_LINK_KEY': secrets.token_hex(32),
    }  # fmt: skip
    for variable, channel in _teams_webhook_vars(policy_dir).items():
        env[variable] = teams.webhook_url(page_url, channel)
    return env


class _Children:
    """The subprocesses the sandbox started, each in its own session so a stop reaches its forks too."""

    def __init__(self, logs: Path) -> None:
        """Log every child to a file under `logs`."""
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start one child; its output goes to `logs/{name}.log` (0600), and what it creates is private too."""
        log = open_private_log(self.logs / f'{name}.log')
        try:
            proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    umask=PRIVATE_UMASK)  # fmt: skip
        finally:
            os.close(log)
        self.procs.append((name, proc))
        return proc

    def check(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        """`SandboxError` when a child has exited, naming the log it wrote (`logs/{spawned name}.log`)."""
        if proc.poll() is not None:
            spawned = next((n for n, p in self.procs if p is proc), name)
            raise SandboxError(f"{name} exited with {proc.returncode}; see {self.logs / (spawned + '.log')}")

    def dead(self) -> str | None:
        """The name of the first child that has exited, if any."""
        return next((name for name, proc in self.procs if proc.poll() is not None), None)

    def stop(self) -> None:
        """Stop the children, newest first (Redis last): SIGTERM to the process group, SIGKILL after 5 s."""
        while self.procs:
            _, proc = self.procs.pop()
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(STOP_GRACE)


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    """Send a signal to a child's process group, ignoring one that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)


def _start_redis(children: _Children, data_dir: Path) -> str:
    """Start an embedded `redis-server` on `<data_dir>/redis.sock` and return its URL (`redis/` exists, 0700)."""
    server = shutil.which('redis-server')
    if server is None:
        raise _NoRedisServer(_MISSING_REDIS)
    sock = data_dir / 'redis.sock'
    if len(str(sock)) > 100:
        raise SandboxError(f'the Redis socket path is too long for a unix socket: {sock}; use a shorter --data-dir')
    sock.unlink(missing_ok=True)
    argv = [server, '--port', '0', '--unixsocket', str(sock), '--unixsocketperm', '700', '--appendonly', 'yes',
            '--dir', str(data_dir / 'redis'), '--maxmemory-policy', 'noeviction', '--daemonize', 'no']  # fmt: skip
    proc = children.spawn('redis', argv)
    url = f'unix://{sock}'

    def answers() -> bool:
        children.check('redis-server', proc)
        try:
            return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    _wait_until(answers, START_TIMEOUT, 'redis-server')
    return url


def _healthy(url: str) -> bool:
    """Whether `jit serve` answers its health check."""
    try:
        with urllib.request.urlopen(url + '/healthz', timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _start_jit(children: _Children, env: dict[str, str], bot_url: str) -> None:
    """Start `jit serve` (wait for /healthz), then `jit worker`."""
    web_proc = children.spawn('serve', [sys.executable, '-m', 'bot', 'serve'], env)

    def healthy() -> bool:
        children.check('jit serve', web_proc)
        return _healthy(bot_url)

    _wait_until(healthy, START_TIMEOUT, 'jit serve')
    worker = children.spawn('worker', [sys.executable, '-m', 'bot', 'worker'], env)
    time.sleep(0.5)
    children.check('jit worker', worker)


def _redis_hint(redis_url: str, root: Path) -> str:
    """How other `jit` commands (`jit audit verify`) reach the embedded Redis, for the startup lines."""
    finds = f'in {root.parent}' if root.name == '.jit' else f'with JIT_DATA_DIR={root}'
    return (f'jit sandbox: other jit commands reach its Redis with REDIS_URL={redis_url}, e.g.\n'
            f'  REDIS_URL={redis_url} jit audit verify\n'
            f'  (jit audit {finds} finds it without REDIS_URL)')  # fmt: skip


def run_sandbox(*, port: int = 4040, data_dir: str = '.jit') -> int:
    """Run the sandbox until Ctrl-C or SIGTERM; return the exit code (0 clean, 1 a part failed, 2 setup).

    Args:
        port: Where the page and the local Slack listen, on 127.0.0.1.
        data_dir: Holds the embedded Redis's data and socket, and the children's logs; kept private to the user.
    """
    root = Path(data_dir).resolve()
    logs = root / 'logs'
    children = _Children(logs)
    slack = LocalSlack(signing_secret=secrets.token_urlsafe(24), bot_token='xoxb-sandbox-' + secrets.token_hex(8))
    target = WebhookTarget(secrets.token_urlsafe(24))
    mailbox, teams = Mailbox(), TeamsChannels()
    stop, running = threading.Event(), threading.Event()
    history = PageHistory(slack.workspace, root / HISTORY_FILE)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() or not running.is_set():
            raise KeyboardInterrupt  # while starting up (or a second Ctrl-C): stop waiting, clean up
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    started: list[Callable[[], None]] = []
    try:
        make_private(root)
        redis_url = os.environ.get('REDIS_URL') or _start_redis(children, root)
        history_note = history.load()
        history.start()
        started.append(history.stop)
        try:
            page_url = slack.start_in_thread('127.0.0.1', port)
        except OSError as exc:
            print(f'jit sandbox: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}', file=sys.stderr)
            return 2
        started.append(slack.stop_thread)
        attach_webhook(slack, target)
        target.start_in_thread()
        started.append(target.stop_thread)
        mailbox.start()
        started.append(mailbox.stop)
        attach_mailbox(slack, mailbox)
        attach_teams(slack, teams)
        bot_port = _free_port()
        bot_url = f'http://127.0.0.1:{bot_port}'
        policy_dir = _policy_dir()
        env = {
            **os.environ,
            'SLACK_BOT_TOKEN': slack.bot_token, 'SLACK_SIGNING_SECRET': slack.signing_secret,
            'SLACK_API_URL': slack.api_url, 'REDIS_URL': redis_url, 'JIT_POLICY_DIR': policy_dir,
            'JIT_AUDIT_CHANNEL': AUDIT_CHANNEL, 'PORT': str(bot_port), 'JIT_HOST': '127.0.0.1',
            'JIT_DATA_DIR': str(root), 'JIT_DEMO_WEBHOOK_URL': target.url, 'JIT_DEMO_WEBHOOK_SECRET': target.secret,
            **_outside_slack_env(page_url, bot_url, mailbox, teams, policy_dir),
        }  # fmt: skip
        _start_jit(children, env, bot_url)
        slack.app_url = f'{bot_url}/slack/events'
        running.set()
        print(f'jit sandbox: open {page_url} (Ctrl-C to stop)', flush=True)
        print(f'jit sandbox: {history_note}', flush=True)
        if not os.environ.get('REDIS_URL'):
            print(_redis_hint(redis_url, root), flush=True)
        while not stop.wait(0.5):
            dead = children.dead()
            if dead is not None:
                print(f"jit sandbox: {dead} exited; see {logs / (dead + '.log')}", file=sys.stderr)
                return 1
        return 0
    except _NoRedisServer:
        print(_MISSING_REDIS, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except SandboxError as exc:
        print(f'jit sandbox: {exc}', file=sys.stderr)
        return 1
    except OSError as exc:  # a file the sandbox needs (its page history, say) that it can neither read nor set aside
        print(f'jit sandbox: {exc}', file=sys.stderr)
        return 1
    finally:
        children.stop()
        for stop_server in reversed(started):
            stop_server()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
