"""Browser fixtures: Debian's Chromium driven by Playwright, and `jit sandbox` as a real subprocess.

Fixtures:
    chromium   the path of a Chromium binary (``JIT_TEST_CHROMIUM``, else ``chromium`` on PATH)
    browser    that Chromium, headless, launched by Playwright's Python package
    sandbox    ``python -m bot sandbox`` on a free port and a Redis database of its own; yields the page URL
               (``tests/support/jit_sandbox.py``; here also with ``JIT_DATA_DIR`` set to its data directory)

Playwright is used without its own browser downloads (no ``playwright install``): it launches the distribution's
Chromium by path, so a fresh Debian needs ``apt-get install -y chromium`` and ``pip install playwright``. Without
either the tests skip with the command to run; under CI (``CI`` set) they fail instead, so a missing browser
cannot pass unnoticed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.jit_sandbox import jit_sandbox
from tests.support.redis_server import own_redis_url

#: The tests' own Redis database; the sandbox gets it as REDIS_URL, so it starts no embedded Redis.
REDIS_URL = own_redis_url(6)


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
    data_dir = tmp_path / 'jit'
    with jit_sandbox(data_dir, REDIS_URL, JIT_DATA_DIR=str(data_dir)) as url:
        yield url
