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

__all__ = ['RedisServer', 'flushed', 'free_port', 'own_redis_url']


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

    def __init__(self, dir: Path, port: int | None = None) -> None:
        self.dir = dir
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
             '--protected-mode', 'no', '--databases', '32'],
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
