"""Fixtures of the mail tests.

- ``smtp_server``: a real SMTP server (``tests/support/smtp_server.py``) on a loopback port for the test,
  requiring STARTTLS and AUTH; ``smtp_server.url`` and ``smtp_server.ca_file`` are what a mailer needs, and
  ``smtp_server.wait_for(...)`` returns what it received.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.smtp_server import SmtpServer, running_smtp_server


@pytest.fixture(name='smtp_server')
def _smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    with running_smtp_server(tmp_path / 'smtp') as server:
        yield server
