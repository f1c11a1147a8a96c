"""A client's malformed HTTP sent to a real ``jit serve``: answered 400, logged as one warning line each.

aiohttp refuses a request it cannot parse (a NUL byte in a header, a broken request line) and logs it at
error level with a traceback, the offending bytes in the message. The mistake is the client's: jit logs one
``http.bad_request`` warning without the bytes (they may be a token), and serves on.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request

from tests.e2e.test_replays import web_log
from tests.support.processes import wait_until

SECRET = 'xoxb-never-logged'
MALFORMED = [
    f'GET /healthz HTTP/1.1\r\nHost: jit\r\nAuthorization: Bearer {SECRET}\x00tail\r\n\r\n',
    f'POST /slack/events HTTP/1.1\r\nHost: jit\r\nX-Slack-Signature: v0={SECRET}\x00\r\nContent-Length: 0\r\n\r\n',
    f'GET /{SECRET}\x00 HTTP/1.1\r\nHost: jit\r\n\r\n',
]


def _send(port: int, raw: bytes) -> bytes:
    with socket.create_connection(('127.0.0.1', port), timeout=10) as sock:
        sock.sendall(raw)
        return sock.recv(200)


def test_malformed_requests_are_400_and_one_warning_line_each(jit):
    before = web_log(jit).count('"http.bad_request"')
    for raw in MALFORMED:
        assert _send(jit.port, raw.encode()).startswith(b'HTTP/1.0 400 '), raw
    wait_until(lambda: web_log(jit).count('"http.bad_request"') - before >= len(MALFORMED), timeout=10,
               what='a warning line per malformed request')  # fmt: skip
    time.sleep(0.5)  # anything else it would log about them
    lines = [json.loads(line) for line in web_log(jit).splitlines() if line.startswith('{')]
    bad = [line for line in lines if line['event'] == 'http.bad_request']
    assert len(bad) - before == len(MALFORMED), bad
    assert all(line['level'] == 'warning' and line['status'] == 400 and 'exception' not in line for line in bad), bad
    log = web_log(jit)
    assert SECRET not in log and 'Traceback' not in log
    assert [line for line in lines if line['level'] in ('error', 'critical')] == []
    assert jit.web.poll() is None
    with urllib.request.urlopen(f'{jit.url}/healthz', timeout=5) as answer:
        assert answer.status == 200
