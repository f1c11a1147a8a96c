"""Fixtures of the audit tests (real Redis databases 8 and 9).

r8          a client of database 8 of this test process's own Redis server, flushed before and after the test
jit         :class:`tests.audit.seed.Jit` on ``r8`` (prefix ``jit:``), its clock in October 2026
seeded      ``jit`` after :func:`~tests.audit.seed.seed_november`: ``(jit, ids)``
cli_env     REDIS_URL and JIT_REDIS_PREFIX of ``r8`` in the environment, for ``jit audit`` runs
digest_key  an Ed25519 key pair: ``(private key, path of its private PEM, path of its public PEM)``

The S3 archive's fixtures (moto's server, a bucket with Object Lock) are in ``test_s3_archive.py``, the one
module that uses them, so the other audit tests need no moto.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.audit.seed import Jit, seed_november
from tests.support.redis_server import own_redis_url

REDIS_URL = own_redis_url(8)
#: The hypothesis machine's database: each example has a prefix of its own there.
MACHINE_REDIS_URL = own_redis_url(9)


def cli(*argv: str) -> int:
    """``jit audit ARGV...`` in this process (the tests read what it printed with capsys)."""
    from bot.cli import main

    return main(['audit', *argv])


@pytest.fixture(name='r8')
def _r8() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f'no Redis at {REDIS_URL}')
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture(name='jit')
def _jit(r8: redis.Redis) -> Jit:
    return Jit(r8)


@pytest.fixture(name='seeded')
def _seeded(jit: Jit) -> tuple[Jit, dict[str, str]]:
    return jit, seed_november(jit)


@pytest.fixture(name='cli_env')
def _cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('REDIS_URL', REDIS_URL)
    monkeypatch.setenv('JIT_REDIS_PREFIX', 'jit:')
    monkeypatch.delenv('JIT_AUDIT_DIGEST_KEY', raising=False)


@pytest.fixture(name='digest_key')
def _digest_key(tmp_path: Path) -> tuple[Ed25519PrivateKey, Path, Path]:
    key = Ed25519PrivateKey.generate()
    private = tmp_path / 'audit-digest.pem'
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))  # fmt: skip
    public = tmp_path / 'audit-digest.pub.pem'
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    return key, private, public
