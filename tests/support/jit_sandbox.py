"""``jit sandbox`` as a user starts it: ``python -m bot sandbox`` as a real subprocess, until it prints its URL.

Used by the sandbox's end-to-end test (``tests/e2e/test_sandbox.py``) and the browser test (``tests/browser``).
The sandbox gets a Redis database of the test's own as ``REDIS_URL`` (so it starts no embedded Redis), emptied
before and after, and runs the example policy it ships with (``JIT_POLICY_DIR`` is taken out of its
environment). When the test is done it is stopped with its children, and its output and the tails of its
children's logs are printed, where pytest shows them for a failed test.
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.processes import free_port, stop_process_group
from tests.support.redis_server import flushed

__all__ = ['START_TIMEOUT', 'jit_sandbox']

#: Seconds `jit sandbox` gets to print its URL (Redis, local Slack, `jit serve`, `jit worker`).
START_TIMEOUT = 40.0


@contextmanager
def jit_sandbox(data_dir: Path, redis_url: str | None, *, umask: int = -1, **env: str) -> Iterator[str]:
    """`python -m bot sandbox --data-dir DATA_DIR` on a free port; yields the page URL it printed.

    ``redis_url`` None starts the sandbox's embedded Redis under ``data_dir`` (no ``REDIS_URL``); ``umask`` is
    the sandbox's (the test's own unless given). ``env`` adds to the sandbox's environment
    (``JIT_SWEEP_INTERVAL`` is 1 s unless given). A sandbox that prints no URL within ``START_TIMEOUT``, or exits
    first, fails the test with its output.
    """
    with flushed(redis_url) if redis_url is not None else contextlib.nullcontext():
        environ = {**os.environ, 'REDIS_URL': redis_url or '', 'JIT_SWEEP_INTERVAL': '1', **env}
        environ.pop('JIT_POLICY_DIR', None)  # the example policy the sandbox ships with
        if redis_url is None:
            environ.pop('REDIS_URL')
        argv = [sys.executable, '-m', 'bot', 'sandbox', '--port', str(free_port()), '--data-dir', str(data_dir)]
        proc = subprocess.Popen(argv, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, umask=umask)  # fmt: skip
        lines: queue.Queue[str] = queue.Queue()
        output: list[str] = []

        def pump() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode(errors='replace')
                output.append(line)
                lines.put(line)
            lines.put('')  # the sandbox closed its output: it exited

        threading.Thread(target=pump, daemon=True).start()
        try:
            while True:
                try:
                    line = lines.get(timeout=START_TIMEOUT)
                except queue.Empty:
                    pytest.fail(f'jit sandbox printed no URL within {START_TIMEOUT:.0f} s:\n' + ''.join(output))
                if not line:
                    pytest.fail(f'jit sandbox exited with {proc.wait(5)} before printing its URL:\n' + ''.join(output))
                if 'open http' in line:
                    break
            yield line.split('open ', 1)[1].split()[0]
        finally:
            stop_process_group(proc, timeout=20)
            print(''.join(output))
            for log in sorted((data_dir / 'logs').glob('*.log')):
                print(f'--- {log.name}\n{log.read_text(errors="replace")[-4000:]}')
