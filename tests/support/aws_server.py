"""moto's server mode for the AWS tests: real HTTP on 127.0.0.1, real botocore signing and parsing.

Used by the aws_iam and aws_sso providers' tests, the audit log's S3 archive and the providers' end-to-end test.

- :func:`moto_server` starts one ``ThreadedMotoServer`` on a free port (one a test module) and, when it
  stops, resets moto's in-process state, so the next module starts from nothing.
- :meth:`MotoServer.iam_auth` switches moto's IAM authorization on for a block (``/moto-api/reset-auth``):
  every call must then be signed with an access key of an IAM user or assumed role that is allowed to make it.
- :func:`blank_aws_env` points boto3's credential chain at dummy keys and away from the developer's real
  AWS profile and any instance metadata, so no test can reach a real account.

Fixtures (a test module imports them by name): ``moto``, a :func:`moto_server` for the module;
``blank_aws``, :func:`blank_aws_env` for one test (``pytest.mark.usefixtures('blank_aws')`` for all of a module).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

moto_server_module = pytest.importorskip('moto.server', reason='moto[server] is a test dependency')

REGION = 'us-east-1'
DUMMY = 'testing'


def blank_aws_env(monkeypatch: pytest.MonkeyPatch, *, key: str = DUMMY, secret: str = DUMMY) -> None:
    """Dummy credentials in the environment, nothing else boto3 could pick up."""
    for name in ('AWS_PROFILE', 'AWS_DEFAULT_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_SECURITY_TOKEN', 'AWS_ROLE_ARN',
                 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
                 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_ENDPOINT_URL'):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', key)
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', secret)
    monkeypatch.setenv('AWS_DEFAULT_REGION', REGION)
    monkeypatch.setenv('AWS_SHARED_CREDENTIALS_FILE', '/nonexistent/jit-tests/credentials')
    monkeypatch.setenv('AWS_CONFIG_FILE', '/nonexistent/jit-tests/config')
    monkeypatch.setenv('AWS_EC2_METADATA_DISABLED', 'true')


@dataclass
class MotoServer:
    endpoint: str

    def client(self, service: str, *, key: str = DUMMY, secret: str = DUMMY, token: str | None = None) -> Any:
        """A client of this server signed with the given key (the dummy one unless IAM authorization is on)."""
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint, aws_access_key_id=key,
                            aws_secret_access_key=secret, aws_session_token=token)  # fmt: skip

    def _post(self, path: str, body: str) -> dict[str, Any]:
        request = urllib.request.Request(
            self.endpoint + path, data=body.encode(), method='POST', headers={'Content-Type': 'text/plain'}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return dict(json.loads(answer.read() or b'{}'))

    @contextmanager
    def iam_auth(self) -> Iterator[None]:
        """moto checks every call against IAM policies inside the block (never outside it, even on failure)."""
        self._post('/moto-api/reset-auth', '0')
        try:
            yield
        finally:
            self._post('/moto-api/reset-auth', 'inf')

    def reset(self) -> None:
        self._post('/moto-api/reset', '')


@contextmanager
def moto_server() -> Iterator[MotoServer]:
    """One moto server on a free port of 127.0.0.1; its state is wiped when it stops."""
    server = moto_server_module.ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    moto = MotoServer(endpoint=f'http://{host}:{port}')
    try:
        yield moto
    finally:
        try:
            moto.reset()
        finally:
            server.stop()


@pytest.fixture(name='moto', scope='module')
def moto_fixture() -> Iterator[MotoServer]:
    """One moto server for the test module (its state wiped when the module ends)."""
    with moto_server() as server:
        yield server


@pytest.fixture(name='blank_aws')
def blank_aws_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy AWS credentials for the test, nothing else boto3 could pick up."""
    blank_aws_env(monkeypatch)
