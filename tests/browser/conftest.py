"""Browser fixtures: Debian's Chromium driven by Playwright, and `jit sandbox` as a real subprocess.

Fixtures:
    chromium   the path of a Chromium binary (``JIT_TEST_CHROMIUM``, else ``chromium`` on PATH)
    browser    that Chromium, headless, launched by Playwright's Python package
    sandbox    ``python -m bot sandbox`` on a free port and a Redis database of its own; yields the page URL

Playwright is used without its own browser downloads (no ``playwright install``): it launches the distribution's
Chromium by path, so a fresh Debian needs ``apt-get install -y chromium`` and ``pip install playwright``. Without
either the tests skip with the command to run; under CI (``CI`` set) they fail instead, so a missing browser
cannot pass unnoticed.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.processes import free_port, stop_process_group
from tests.support.redis_server import own_redis_url

#: The tests' own Redis database; the sandbox gets it as REDIS_URL, so it starts no embedded Redis.
REDIS_URL = own_redis_url(6)
#: Seconds `jit sandbox` gets to print its URL (Redis, local Slack, `jit serve`, `jit worker`).
START_TIMEOUT = 40.0


def _missing(reason: str) -> None:
    """Skip on a developer's machine; fail under CI, which installs the browser."""
    if os.environ.get('CI'):
        pytest.fail(f'CI must provide the browser: {reason}', pytrace=False)
    pytest.skip(reason)


@pytest.fixture(name='chromium', scope='session')
def _chromium() -> str:
    """The Chromium binary to drive: ``JIT_TEST_CHROMIUM``, else Debian's ``chromium`` (or ``chromium-browser``)."""
    try:
        import playwright.sync_api  # noqa: F401 - only: is it installed?
    except ImportError:
        _missing('needs the Playwright Python package: pip install playwright (no `playwright install` needed)')
    path = os.environ.get('JIT_TEST_CHROMIUM') or shutil.which('chromium') or shutil.which('chromium-browser')
    if not path or not os.access(path, os.X_OK):
        _missing('needs Chromium: apt-get install -y chromium (or set JIT_TEST_CHROMIUM to a Chromium binary)')
    return str(path)


@pytest.fixture(name='browser')
def _browser(chromium: str) -> Iterator[Any]:
    """Headless Chromium; ``--no-sandbox`` because CI runs as root, where Chromium's own sandbox refuses to start."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=['--no-sandbox'])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(name='sandbox')
def _sandbox(tmp_path: Path) -> Iterator[str]:
    """`python -m bot sandbox` on a free port; yields the URL it printed, then stops it and prints its logs."""
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    data_dir = tmp_path / 'jit'
    env = {**os.environ, 'REDIS_URL': REDIS_URL, 'JIT_DATA_DIR': str(data_dir), 'JIT_SWEEP_INTERVAL': '1'}
    env.pop('JIT_POLICY_DIR', None)  # the example policy the sandbox ships with
    argv = [sys.executable, '-m', 'bot', 'sandbox', '--port', str(free_port()), '--data-dir', str(data_dir)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
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
        client.flushdb()
