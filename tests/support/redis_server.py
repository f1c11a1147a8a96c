"""Redis servers of the suite's own: nothing shares a Redis with another test run or another xdist worker.

Every test process (the single pytest process, or each pytest-xdist worker) starts one ``redis-server`` of
its own on a free loopback port the first time a test asks for a URL (:func:`own_redis_url`), and stops it when
the process ends. Tests of one process run one at a time, so the database numbers inside that server only
keep suites apart from each other's leftovers; two runs on one machine, or three workers, never meet.
Nothing relies on xdist's grouping for correctness.

:class:`RedisServer` is also what a test uses when it must restart or shut down its Redis (the chaos suite).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import redis

__all__ = ['RedisServer', 'SentinelGroup', 'flushed', 'free_port', 'own_redis_url']


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the server gets SIGTERM when the test process dies, even by SIGKILL (no orphaned servers)."""
    # (the signal comes when the thread that started the server ends: the suite starts it from the main thread)
    with contextlib.suppress(OSError):
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setsid()


class RedisServer:
    """One ``redis-server`` process: AOF every second, no RDB snapshots, restartable on the same directory.

    Args:
        dir: where the AOF and the log live.
        port: a loopback port; a free one when not given. A port taken meanwhile by someone else is retried
            on another (only when the port was not given).
    """

    def __init__(self, dir: Path, port: int | None = None, *, args: tuple[str, ...] = ()) -> None:
        """``args``: more of redis-server's options (``--replicaof HOST PORT``)."""
        self.dir = dir
        self.args = args
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f'redis://127.0.0.1:{self.port}/0'

    def url_for(self, db: int) -> str:
        return f'redis://127.0.0.1:{self.port}/{db}'

    def client(self) -> redis.Redis:
        return redis.Redis(host='127.0.0.1', port=self.port, socket_timeout=5)

    def start(self) -> None:
        binary = shutil.which('redis-server')
        if binary is None:
            raise RuntimeError('redis-server is not on PATH (apt-get install redis-server)')
        for _ in range(5):
            if self._spawn(binary):
                return
            if self._fixed_port:
                break
            self.port = free_port()
        raise RuntimeError(f'redis-server did not start:\n{self.log_tail()}')

    def _spawn(self, binary: str) -> bool:
        log = open(self.dir / 'redis.log', 'ab')  # noqa: SIM115 - kept open for the process
        self.proc = subprocess.Popen(
            [binary, '--port', str(self.port), '--bind', '127.0.0.1', '--appendonly', 'yes',
             '--appendfsync', 'everysec', '--dir', str(self.dir), '--save', '', '--maxmemory-policy', 'noeviction',
             '--protected-mode', 'no', '--databases', '32', *self.args],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False  # the port was taken between free_port() and the bind, most likely
            try:
                if self.client().ping():
                    return True
            except redis.RedisError:
                pass
            time.sleep(0.02)
        self.stop()
        return False

    def log_tail(self) -> str:
        path = self.dir / 'redis.log'
        return path.read_text(errors='replace')[-3000:] if path.exists() else ''

    def shutdown(self) -> None:
        """``SHUTDOWN`` (no SAVE/NOSAVE: with ``--save ''`` no snapshot is written; the AOF is flushed)."""
        assert self.proc is not None
        self.client().shutdown(nosave=False)
        self.proc.wait(15)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class SentinelGroup:
    """A primary, one replica and three sentinels watching them (``redis-server <conf> --sentinel``: the
    sentinel mode of redis-server itself, no redis-sentinel package), all on free loopback ports.

    Failover is quick for tests: a primary unanswered for ``down_after_ms`` is down, a quorum of 2 agrees, and the
    replica is promoted within a few seconds.

    Args:
        dir: each server's and sentinel's directory is made under it.
        service: the name the sentinels monitor the primary under (``REDIS_SENTINEL_MASTER``).
    """

    def __init__(self, dir: Path, *, service: str = 'jit', down_after_ms: int = 1000,
                 failover_timeout_ms: int = 5000) -> None:  # fmt: skip
        self.dir, self.service = dir, service
        self.down_after_ms, self.failover_timeout_ms = down_after_ms, failover_timeout_ms
        self.primary = RedisServer(self._mkdir('primary'))
        self.replica: RedisServer | None = None
        self.sentinels: list[subprocess.Popen[bytes]] = []
        self.sentinel_ports: list[int] = []

    def _mkdir(self, name: str) -> Path:
        path = self.dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def sentinels_setting(self) -> str:
        """``REDIS_SENTINELS``."""
        return ','.join(f'127.0.0.1:{port}' for port in self.sentinel_ports)

    def sentinel(self, index: int = 0) -> redis.Redis:
        return redis.Redis(host='127.0.0.1', port=self.sentinel_ports[index], socket_timeout=5, decode_responses=True)

    def master_address(self) -> tuple[str, int] | None:
        """The primary the first sentinel that answers names now."""
        for index in range(len(self.sentinel_ports)):
            try:
                got = self.sentinel(index).sentinel_get_master_addr_by_name(self.service)
            except redis.RedisError:
                continue
            if got:
                return str(got[0]), int(got[1])
        return None

    def start(self, timeout: float = 20) -> None:
        binary = shutil.which('redis-server')
        if binary is None:
            raise RuntimeError('redis-server is not on PATH (apt-get install redis-server)')
        self.primary.start()
        self.replica = RedisServer(self._mkdir('replica'), args=('--replicaof', '127.0.0.1', str(self.primary.port)))
        self.replica.start()
        for index in range(3):
            folder = self._mkdir(f'sentinel-{index}')
            port = free_port()
            conf = folder / 'sentinel.conf'  # the sentinel rewrites it with what it learns
            conf.write_text(
                f'port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {folder}\n'
                f'sentinel monitor {self.service} 127.0.0.1 {self.primary.port} 2\n'
                f'sentinel down-after-milliseconds {self.service} {self.down_after_ms}\n'
                f'sentinel failover-timeout {self.service} {self.failover_timeout_ms}\n'
                f'sentinel parallel-syncs {self.service} 1\n'
            )
            log = open(folder / 'sentinel.log', 'ab')  # noqa: SIM115 - kept open for the process
            self.sentinels.append(subprocess.Popen([binary, str(conf), '--sentinel'], stdout=log,
                                                   stderr=subprocess.STDOUT, preexec_fn=_die_with_parent))  # fmt: skip
            log.close()
            self.sentinel_ports.append(port)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f'the sentinels did not see the primary, the replica and each other in {timeout}s')
            time.sleep(0.1)

    def _ready(self) -> bool:
        """Every sentinel knows the primary, its replica (online) and the two other sentinels; the replica is
        in sync."""
        try:
            assert self.replica is not None
            if self.replica.client().info('replication').get('master_link_status') != 'up':
                return False
            for index in range(len(self.sentinel_ports)):
                sentinel = self.sentinel(index)
                replicas = sentinel.sentinel_slaves(self.service)
                if len(sentinel.sentinel_sentinels(self.service)) < 2 or not replicas:
                    return False
                if any('s_down' in r.get('flags', '') or 'disconnected' in r.get('flags', '') for r in replicas):
                    return False
        except (redis.RedisError, OSError):
            return False
        return True

    def kill_primary(self) -> None:
        """SIGKILL: no SHUTDOWN, no last write to the replica."""
        assert self.primary.proc is not None
        self.primary.proc.kill()
        self.primary.proc.wait(5)

    def stop(self) -> None:
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for server in (self.primary, self.replica):
            if server is not None:
                server.stop()


_lock = threading.Lock()
_server: RedisServer | None = None


def _process_server() -> RedisServer:
    global _server
    with _lock:
        if _server is None or _server.proc is None or _server.proc.poll() is not None:
            data = Path(tempfile.mkdtemp(prefix='jit-test-redis-'))
            server = RedisServer(data)
            server.start()
            atexit.register(server.stop)
            atexit.register(shutil.rmtree, data, True)
            _server = server
        return _server


def own_redis_url(db: int = 0) -> str:
    """A database of this test process's own Redis server, started on first use."""
    return _process_server().url_for(db)


@contextlib.contextmanager
def flushed(url: str) -> Iterator[str]:
    """``url``, its database emptied before the block and after it (a suite's own database, per test)."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
