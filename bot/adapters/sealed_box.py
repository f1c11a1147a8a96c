"""Access details for a pipeline, sealed so that only the pipeline that asked can read them.

A provider's grant may return a secret (a temporary password, a certificate). A Slack user gets it in a
DM straight from the worker; a pipeline is not in Slack, and polls the API from another process, so the
details must wait somewhere between the worker's grant and the pipeline's next poll. Keeping them in
Redis in the clear would put a live secret where backups, replicas and ``MONITOR`` can read it.

Instead ``jit ci`` makes a fresh X25519 key pair for each request and sends only the public half. The
worker seals the details to it (an ephemeral X25519 key, HKDF-SHA256, ChaCha20-Poly1305 with the
request ID as associated data, so a box cannot be moved to another request), Redis holds ciphertext that
neither it nor jit can open, and the API hands the box over once (``GETDEL``). The private key never
leaves the pipeline's process.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: Names the construction in every box, so a later one can be told apart.
ALG = 'X25519-HKDF-SHA256-ChaCha20Poly1305'
_INFO = b'jit access details v1'


class SealedBoxError(ValueError):
    """A public key or a box that is not what jit makes (the message says which part)."""


def _raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))
    except (binascii.Error, ValueError, TypeError):
        raise SealedBoxError(f'{what} is not base64url') from None


def public_key(text: Any) -> X25519PublicKey:
    """Parse a base64url X25519 public key (32 bytes, 43 characters).

    Raises:
        SealedBoxError: not a string, not base64url, or not 32 bytes.
    """
    if not isinstance(text, str) or len(text) > 64:
        raise SealedBoxError('public_key must be a base64url X25519 public key (43 characters)')
    raw = _unb64(text, 'public_key')
    if len(raw) != 32:
        raise SealedBoxError('public_key must be a base64url X25519 public key (32 bytes)')
    return X25519PublicKey.from_public_bytes(raw)


def _key(shared: bytes, epk: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + recipient, info=_INFO).derive(shared)


def seal(recipient_key: str, details: dict[str, Any], *, request_id: str) -> str:
    """The details as a JSON box only the holder of ``recipient_key``'s private half can open."""
    recipient = public_key(recipient_key)
    ephemeral = X25519PrivateKey.generate()
    epk = _raw(ephemeral.public_key())
    key = _key(ephemeral.exchange(recipient), epk, _raw(recipient))
    nonce = os.urandom(12)
    ciphertext = ChaCha20Poly1305(key).encrypt(nonce, json.dumps(details).encode(), request_id.encode())
    return json.dumps({'alg': ALG, 'epk': _b64(epk), 'nonce': _b64(nonce), 'ciphertext': _b64(ciphertext)})


class Recipient:
    """The pipeline's side: a key pair for one request, and opening its box."""

    def __init__(self) -> None:
        self._private = X25519PrivateKey.generate()

    @property
    def public_key(self) -> str:
        return _b64(_raw(self._private.public_key()))

    def open(self, box: dict[str, Any], *, request_id: str) -> dict[str, Any]:
        """The details in ``box``.

        Raises:
            SealedBoxError: not a box of this construction, or not sealed to this key for this request.
        """
        if not isinstance(box, dict) or box.get('alg') != ALG:
            raise SealedBoxError(f'the details are not a {ALG} box')
        fields = {name: box.get(name) for name in ('epk', 'nonce', 'ciphertext')}
        if not all(isinstance(v, str) for v in fields.values()):
            raise SealedBoxError('the details box lacks epk, nonce or ciphertext')
        epk, nonce, ciphertext = (_unb64(str(fields[n]), n) for n in ('epk', 'nonce', 'ciphertext'))
        if len(epk) != 32 or len(nonce) != 12:
            raise SealedBoxError('the details box has a malformed epk or nonce')
        mine = _raw(self._private.public_key())
        key = _key(self._private.exchange(X25519PublicKey.from_public_bytes(epk)), epk, mine)
        try:
            plain = ChaCha20Poly1305(key).decrypt(nonce, ciphertext, request_id.encode())
        except InvalidTag:
            raise SealedBoxError('the details were not sealed to this key for this request') from None
        data = json.loads(plain)
        if not isinstance(data, dict):
            raise SealedBoxError('the details are not an object')
        return data
