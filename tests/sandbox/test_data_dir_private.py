"""`jit sandbox`'s data directory is the user's alone: the Redis AOF (every request, the audit trail), the logs and
the page's history are readable by nobody else, whatever the umask, and an older run's loose modes are tightened.

The first test runs the real ``python -m bot sandbox`` with its embedded Redis under umask 022 (the usual one),
files a request through the page, and looks at every mode under the data directory.
"""

from __future__ import annotations

import json
import os
import stat
import urllib.request
from pathlib import Path

import pytest

from bot.sandbox._private import make_private
from tests.support.jit_sandbox import jit_sandbox
from tests.support.processes import wait_until


def _loose(root: Path) -> list[str]:
    """Every path under `root` (and `root`) that group or others may read, write or enter, with its mode."""
    paths = [root, *root.rglob('*')]
    return [f'{p} {stat.filemode(p.lstat().st_mode)}' for p in paths if p.lstat().st_mode & 0o077]


def _older_run(root: Path) -> None:
    """What a sandbox before this fix left under umask 022: 0755 directories, 0644 files."""
    for folder in (root, root / 'logs', root / 'redis', root / 'redis' / 'appendonlydir'):
        folder.mkdir(exist_ok=True)
        folder.chmod(0o755)
    for file in (root / 'logs' / 'serve.log', root / 'slack-history.json', root / 'redis' / 'dump.rdb'):
        file.write_text('[]' if file.suffix == '.json' else '')
        file.chmod(0o644)


@pytest.mark.e2e
@pytest.mark.slow
def test_the_data_dir_is_private_after_a_request_under_umask_022(tmp_path: Path) -> None:
    root = tmp_path / 'd'
    _older_run(root)
    with jit_sandbox(root, None, umask=0o022) as url:
        body = json.dumps({'user': 'U0ALEX', 'text': 'request demo-app read 2m reason in the AOF'}).encode()
        post = urllib.request.Request(url + 'sandbox/command', data=body, headers={'Content-Type': 'application/json'})
        with urllib.request.urlopen(post, timeout=30) as answer:
            ack = json.loads(answer.read())
        assert 'Filed' in ack['text'], ack
        aofs = root / 'redis' / 'appendonlydir'

        def in_the_aof() -> bool:
            return any(b'reason in the AOF' in f.read_bytes() for f in aofs.iterdir() if f.is_file())

        wait_until(in_the_aof, timeout=15, interval=0.2, what="the request in Redis's append-only file")
        wait_until(lambda: 'U0ALEX' in (root / 'slack-history.json').read_text(), timeout=15, interval=0.2,
                   what='the page history')  # fmt: skip
        assert {p.name for p in (root / 'logs').iterdir()} >= {'redis.log', 'serve.log', 'worker.log'}
        assert (root / 'redis.sock').is_socket()
        assert _loose(root) == []


def test_an_older_run_is_tightened_and_what_the_sandbox_did_not_make_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / 'd'
    _older_run(root)
    (root / 'notes.txt').write_text('mine')
    (root / 'notes.txt').chmod(0o644)
    (root / 'logs' / 'elsewhere').symlink_to(tmp_path / 'notes-target')
    (tmp_path / 'notes-target').write_text('')
    (tmp_path / 'notes-target').chmod(0o644)
    make_private(root)
    assert [line for line in _loose(root) if 'notes.txt' not in line and 'elsewhere' not in line] == []
    assert stat.S_IMODE((root / 'notes.txt').stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / 'notes-target').stat().st_mode) == 0o644
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
