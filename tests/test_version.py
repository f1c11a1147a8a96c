"""Which jit is running: ``jit --version``, ``/readyz`` and the start log line say it, from the package metadata."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest

from bot import version
from bot.app import create_web_app
from bot.deps import build_deps
from bot.settings import load_settings
from tests.support.redis_server import own_redis_url
from tests.support.served import Served

INSTALLED = metadata.version('jit-access')


def test_jit_version_prints_the_installed_version():
    done = subprocess.run([sys.executable, '-m', 'bot', '--version'], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, f'jit {INSTALLED}')
    assert version() == INSTALLED


@pytest.mark.redis
def test_readyz_names_the_version(tmp_path: Path):
    (tmp_path / 'policy.yaml').write_text('resources: {}\nrequests: []\n')
    settings = load_settings({'SLACK_BOT_TOKEN': 'xoxb-1', 'SLACK_SIGNING_SECRET': 's', 'REDIS_URL': own_redis_url(21),
                              'JIT_POLICY_DIR': str(tmp_path)})  # fmt: skip
    served = Served(create_web_app(build_deps(settings, providers=['webhook'])))
    try:
        with urllib.request.urlopen(f'http://127.0.0.1:{served.port}/readyz', timeout=10) as answer:
            body = json.loads(answer.read())
    finally:
        served.stop()
    assert body['ok'] is True and body['version'] == INSTALLED
