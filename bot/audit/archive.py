"""The S3 archive of the audit trail: where batches and digests live, and how digests are signed.

Layout (``PREFIX`` is ``JIT_AUDIT_S3_PREFIX``, empty or ending in ``/``)::

    PREFIX audit/2026/11/28/000000000001-000000000100.jsonl         the events, one canonical JSON a line
    PREFIX audit-digest/2026/11/28/000000000001-000000000100.json   its signed digest

Like CloudTrail's digest files, each digest names its batch and the batch object's SHA-256, the first
and last seq, the ``prev_hash`` of the first event and the ``hash`` of the last one, and the key and
SHA-256 of the previous digest; so the digests form a chain of their own, and a batch object that was
replaced, a digest removed or a batch dropped shows up even where every event still chains. The day
in a key is the batch's first event's day (never earlier than the previous batch's, so keys sort in
seq order even when clocks disagree), which lets a writer find digests newer than the one it knows
with ``StartAfter``.

Why Ed25519 and not HMAC for the digest signature: an HMAC key verifies *and* signs, so everyone who
checks the archive (auditors, a SIEM) could also forge a digest, and the key would have to be handed
to each of them. With Ed25519 only the worker holds the private key (``JIT_AUDIT_DIGEST_KEY``); the
public key can be published, pinned by auditors (``jit audit verify --s3 ... --public-key``) and
even printed in a report. Ed25519 is deterministic (no nonce to get wrong), fast, and its keys are
made by ``openssl genpkey -algorithm ed25519`` and read by ``cryptography``, a dependency already.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bot.audit.records import dumps

BATCH_DIR = 'audit/'
DIGEST_DIR = 'audit-digest/'
ALGORITHM = 'Ed25519'
_KEY = re.compile(r'(\d{4})/(\d{2})/(\d{2})/(\d{12})-(\d{12})\.(jsonl|json)$')


class DigestKeyError(ValueError):
    """A digest key that cannot be read; the message never contains the key itself."""


def day_of(ts: float) -> date:
    return datetime.fromtimestamp(ts, tz=UTC).date()


def batch_key(prefix: str, day: date, first: int, last: int) -> str:
    return f'{prefix}{BATCH_DIR}{day:%Y/%m/%d}/{first:012d}-{last:012d}.jsonl'


def digest_key(prefix: str, day: date, first: int, last: int) -> str:
    return f'{prefix}{DIGEST_DIR}{day:%Y/%m/%d}/{first:012d}-{last:012d}.json'


def parse_key(key: str) -> tuple[date, int, int] | None:
    """``(day, first seq, last seq)`` of a batch or digest key; None for anything else."""
    match = _KEY.search(key)
    if match is None:
        return None
    year, month, day, first, last = (int(g) for g in match.groups()[:5])
    try:
        return date(year, month, day), first, last
    except ValueError:
        return None


def batch_body(records: Sequence[dict[str, Any]]) -> bytes:
    """A batch object: one canonical JSON line per event."""
    return ''.join(dumps(r) + '\n' for r in records).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _signed_part(digest: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in digest.items() if k != 'signature'}, sort_keys=True,
                      separators=(',', ':'), ensure_ascii=False).encode()  # fmt: skip


def public_key_text(key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key, base64 (as digests carry it)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def fingerprint(key: Ed25519PublicKey) -> str:
    """``SHA256:`` + the first 16 hex digits of the raw public key's SHA-256: what tools print."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return 'SHA256:' + hashlib.sha256(raw).hexdigest()[:16]


def build_digest(
    *, records: Sequence[dict[str, Any]], batch: str, body: bytes, previous_key: str | None,
    previous_sha256: str | None, signer: Ed25519PrivateKey, created_at: float,
) -> bytes:  # fmt: skip
    """The signed digest object of one batch (pretty JSON; its SHA-256 is what the next digest names)."""
    digest: dict[str, Any] = {
        'version': 1, 'batch_key': batch, 'batch_sha256': sha256(body), 'count': len(records),
        'first_seq': records[0]['seq'], 'last_seq': records[-1]['seq'],
        'first_time': records[0]['time'], 'last_time': records[-1]['time'],
        'first_prev_hash': records[0]['prev_hash'], 'last_hash': records[-1]['hash'],
        'previous_digest_key': previous_key, 'previous_digest_sha256': previous_sha256,
        'created_at': created_at, 'algorithm': ALGORITHM, 'public_key': public_key_text(signer.public_key()),
    }  # fmt: skip
    digest['signature'] = base64.b64encode(signer.sign(_signed_part(digest))).decode()
    return (json.dumps(digest, sort_keys=True, indent=1) + '\n').encode()


def signature_problem(digest: dict[str, Any], trusted: Ed25519PublicKey | None) -> str | None:
    """Why a digest's signature does not hold (None: it does).

    With ``trusted`` the signature must be that key's; without, the key the digest names is used,
    which proves only that the digest was not edited after signing.
    """
    if digest.get('algorithm') != ALGORITHM:
        return f'unknown signature algorithm {digest.get("algorithm")!r}'
    try:
        named = Ed25519PublicKey.from_public_bytes(base64.b64decode(str(digest.get('public_key', ''))))
        signature = base64.b64decode(str(digest.get('signature', '')))
    except ValueError:
        return 'its public key or signature is not readable'
    key = trusted or named
    if trusted is not None and public_key_text(trusted) != digest.get('public_key'):
        return f'signed by another key ({fingerprint(named)}, expected {fingerprint(trusted)})'
    try:
        key.verify(signature, _signed_part(digest))
    except InvalidSignature:
        return 'its signature does not match its content'
    return None


def _pem(value: str) -> bytes:
    text = value.strip()
    if text.startswith('-----BEGIN'):
        return text.encode()
    path = Path(text).expanduser()
    if not path.is_file():
        raise DigestKeyError('is neither a PEM key nor the path of a readable PEM file')
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DigestKeyError(f'cannot be read ({exc.strerror})') from exc


def load_private_key(value: str) -> Ed25519PrivateKey:
    """The Ed25519 private key from PEM text or the path of a PEM file (``openssl genpkey -algorithm ed25519``).

    Raises:
        DigestKeyError: not readable, or not an Ed25519 private key (the message does not quote the key).
    """
    try:
        key = serialization.load_pem_private_key(_pem(value), password=None)
    except (ValueError, TypeError) as exc:
        raise DigestKeyError('is not an unencrypted PEM private key') from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise DigestKeyError(f'is a {type(key).__name__.removesuffix("PrivateKey").removeprefix("_")} key, not Ed25519')
    return key


def load_public_key(value: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (or the public half of a private PEM), text or file path."""
    data = _pem(value)
    if b'PRIVATE KEY' in data:
        return load_private_key(value).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise DigestKeyError('is not a PEM public key') from exc
    if not isinstance(key, Ed25519PublicKey):
        raise DigestKeyError('is not an Ed25519 public key')
    return key
