"""The webhook provider keeps its connections open, follows no redirect, and names no host in its errors."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.core.errors import PermanentProviderError, TransientProviderError
from bot.core.model import AccessRequest, Principal
from workers.providers.webhook import WebhookProvider


def a_request(n: int = 0) -> AccessRequest:
    return AccessRequest(id=f'r-conn{n:04d}', requester=Principal(slack_id='U0A'), resource='app', role='read',
                         duration=60, reason='INC-1', rule='r', policy_version='v', created_at=1.0)  # fmt: skip


class Endpoint:
    """An HTTP/1.1 endpoint that answers ``status`` and notes which connection (client port) each call came on."""

    def __init__(self, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.status, self.extra = status, headers or {}
        self.ports: list[int] = []
        self.bodies: list[dict] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def do_POST(self) -> None:
                endpoint.ports.append(self.client_address[1])
                endpoint.bodies.append(json.loads(self.rfile.read(int(self.headers['Content-Length']))))
                body = b'{}'
                self.send_response(endpoint.status)
                for key, value in {'Content-Length': str(len(body)), **endpoint.extra}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.server.server_port}/hook/TOKEN-IN-PATH'
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(name='endpoint')
def _endpoint():
    endpoint = Endpoint()
    yield endpoint
    endpoint.close()


def test_calls_reuse_one_connection(endpoint):
    provider = WebhookProvider(timeout=2)
    for n in range(20):
        provider.revoke(a_request(n), settings={'url': endpoint.url, 'secret': 's'}, params={})
    assert len(endpoint.bodies) == 20 and endpoint.bodies[-1]['request_id'] == 'r-conn0019'
    assert len(set(endpoint.ports)) == 1, f'{len(set(endpoint.ports))} connections for 20 calls'


def test_a_redirect_is_not_followed():
    endpoint = Endpoint(status=307, headers={'Location': 'http://127.0.0.1:9/elsewhere'})
    try:
        with pytest.raises(PermanentProviderError, match='HTTP 307'):
            WebhookProvider(timeout=2).revoke(a_request(), settings={'url': endpoint.url, 'secret': 's'}, params={})
        assert len(endpoint.bodies) == 1
    finally:
        endpoint.close()


def test_an_unreachable_endpoint_is_transient_and_its_address_is_not_told():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    url = f'http://127.0.0.1:{port}/hook/TOKEN-IN-PATH'
    with pytest.raises(TransientProviderError) as info:
        WebhookProvider(timeout=2).revoke(a_request(), settings={'url': url, 'secret': 's'}, params={})
    message = str(info.value)
    assert 'refused' in message.lower() and str(port) not in message and 'TOKEN' not in message, message
    assert info.value.__cause__ is None and info.value.__suppress_context__
