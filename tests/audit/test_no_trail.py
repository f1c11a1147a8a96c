"""Where ``jit audit`` reads, said; and a source that holds no trail is said to hold none (exit 3), never "intact".

A running ``jit sandbox`` keeps its Redis on a unix socket under its data directory: with ``REDIS_URL`` unset, the
audit tools read it when it answers and say so on stderr. The sandbox here is a redis-server on such a socket.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.audit_tools import EXIT_NO_TRAIL, _sandbox_redis
from tests.audit.conftest import REDIS_URL, cli
from tests.audit.seed import Jit, seed_november
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis
TOOLS = [('verify',), ('query',), ('export',), ('report', '--resource', 'prod-db', '--since', '2026-11-01')]


@pytest.mark.parametrize('argv', TOOLS, ids=lambda a: a[0])
def test_an_empty_redis_is_no_trail_not_an_intact_one(r8, cli_env, capsys, argv):
    assert cli(*argv) == EXIT_NO_TRAIL == 3
    captured = capsys.readouterr()
    assert captured.out == ''
    assert captured.err == f'jit: no audit trail found at {REDIS_URL} (stream jit:audit)\n'


@pytest.mark.parametrize('argv', TOOLS, ids=lambda a: a[0])
def test_an_empty_file_is_no_trail(tmp_path, capsys, argv):
    empty = tmp_path / 'audit.jsonl'
    empty.write_text('\n')
    assert cli(*argv, '--file', str(empty)) == 3
    assert capsys.readouterr().err == f'jit: no audit trail found at {empty}\n'


def test_another_prefix_of_a_used_redis_is_no_trail(seeded, cli_env, monkeypatch, capsys):
    monkeypatch.setenv('JIT_REDIS_PREFIX', 'other:')
    assert cli('verify') == 3
    assert capsys.readouterr().err == f'jit: no audit trail found at {REDIS_URL} (stream other:audit)\n'


def test_a_stream_emptied_under_its_head_is_tampering_not_no_trail(seeded, r8, cli_env, capsys):
    """``audit:head`` vouches for events: with all of them deleted, verify names what is missing (exit 1)."""
    r8.delete('jit:audit')
    assert cli('verify') == 1
    assert 'removed' in capsys.readouterr().out


@pytest.fixture(name='sandbox_dir')
def _sandbox_dir(monkeypatch) -> Iterator[Path]:
    """A directory with ``.jit/redis.sock`` served by a redis-server, as ``jit sandbox`` leaves it; the cwd."""
    with tempfile.TemporaryDirectory(prefix='jit-audit-', dir='/tmp') as here:  # a short unix socket path
        data = Path(here) / '.jit'
        data.mkdir()
        server = RedisServer(data, args=('--unixsocket', str(data / 'redis.sock'), '--unixsocketperm', '700'))
        server.start()
        try:
            monkeypatch.chdir(here)
            monkeypatch.delenv('REDIS_URL', raising=False)
            monkeypatch.delenv('JIT_DATA_DIR', raising=False)
            monkeypatch.setenv('JIT_REDIS_PREFIX', 'jit:')
            yield data
        finally:
            server.stop()


def test_a_running_sandbox_is_read_when_redis_url_is_unset_and_said_so(sandbox_dir, capsys):
    sock = sandbox_dir.resolve() / 'redis.sock'
    assert cli('verify') == 3  # nothing written yet: said so, naming the sandbox's socket
    said = f"jit: REDIS_URL is not set; reading the running jit sandbox's Redis at unix://{sock}\n"
    assert capsys.readouterr().err == said + f'jit: no audit trail found at unix://{sock} (stream jit:audit)\n'

    seed_november(Jit(redis.Redis(unix_socket_path=str(sock), decode_responses=True)))
    assert cli('verify') == 0
    captured = capsys.readouterr()
    assert captured.err == said and ' events, chain intact, head ' in captured.out


def test_jit_data_dir_names_the_sandbox_and_a_dead_socket_is_not_taken(sandbox_dir, monkeypatch):
    elsewhere = sandbox_dir.parent / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    err = io.StringIO()
    assert _sandbox_redis({}, err) is None and err.getvalue() == ''  # no .jit here
    assert _sandbox_redis({'JIT_DATA_DIR': str(sandbox_dir)}, err) == f'unix://{sandbox_dir.resolve()}/redis.sock'

    stale = elsewhere / '.jit'
    stale.mkdir()
    (stale / 'redis.sock').write_text('')  # a file, not a socket
    assert _sandbox_redis({}, io.StringIO()) is None
    (stale / 'redis.sock').unlink()
    import socket

    with socket.socket(socket.AF_UNIX) as listener:  # a socket left by a sandbox that is gone: bound, not served
        listener.bind(str(stale / 'redis.sock'))
    assert _sandbox_redis({}, io.StringIO()) is None
