"""Access details for a pipeline, sealed so that only the pipeline that asked can read them.

A provider's grant may return a secret (a temporary password, a certificate). A Slack user gets it in a
DM straight from the worker; a pipeline is not in Slack, and polls the API from another process, so the
details must wait somewhere between the worker's grant and the pipeline's next poll. Keeping them in
Redis in the clear would put a live secret where backups, replicas and ``MONITOR`` can read it.

Instead ``jit ci`` makes a fresh X25519 key pair for each request and sends only the public half. The
worker seals the details to it with standard HPKE (RFC 9180), so that a pipeline written in any language
opens them with any HPKE library rather than with code of jit's:

* mode Base (0x00), single-shot ``Seal``/``Open``;
* suite DHKEM(X25519, HKDF-SHA256) ``0x0020``, HKDF-SHA256 ``0x0001``, ChaCha20-Poly1305 ``0x0003``;
* ``info`` = the request ID as ASCII (``r-k3m9x2pq``), so a box cannot be moved to another request;
  ``aad`` empty;
* the plaintext is the details as a UTF-8 JSON object.

The box is ``{"alg": ALG, "enc": ..., "ciphertext": ...}``: ``enc`` the 32-byte encapsulated key,
``ciphertext`` the AEAD output with its 16-byte tag, both base64url without padding. Redis holds
ciphertext that neither it nor jit can open, and the API hands the box over once (``GETDEL``). The
private key never leaves the pipeline's process.

A public key is checked where it comes in (the API refuses it with 400): a low-order X25519 point (all
zeros, and the handful of others) makes every shared secret the same known value, so HPKE refuses to seal
to it; found only in the worker, after the provider granted, it would leave access nobody can use.

It is pure computation (no I/O), imported by both ends: the client (:mod:`bot.ci` opens a box) and the
server (:mod:`bot.api.server` checks a key, :mod:`workers.runtime` seals). So it sits at the top of
``bot``, beside ``ids.py``, and not in ``bot/adapters`` (the code that touches Redis, RQ and Slack),
which the client must not import.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

#: Names the construction in every box (the name COSE-HPKE gives this suite), so a later one can be told apart.
ALG = 'HPKE-Base-X25519-SHA256-ChaCha20Poly1305'
#: RFC 9180 identifiers of the suite, for the documentation and other languages' libraries.
KEM_ID, KDF_ID, AEAD_ID = 0x0020, 0x0001, 0x0003
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
ENC_LENGTH = 32
TAG_LENGTH = 16
#: 32 bytes in unpadded base64url are 43 characters (one ``=`` of padding is tolerated).
_KEY_TEXT = re.compile(r'[A-Za-z0-9_-]{43}=?')
_FIELD_ALPHABET = re.compile(r'[A-Za-z0-9_-]*=*')
_P = 2**255 - 19
#: A private key used only to try a public key out (never to seal): any low-order point fails with it.
_PROBE = X25519PrivateKey.generate()
KEY_HELP = 'must be a base64url X25519 public key (32 bytes, 43 characters)'


class SealedBoxError(ValueError):
    """A public key or a box that is not what jit makes (the message says which part)."""


def _raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def _unb64(text: str, what: str) -> bytes:
    # urlsafe_b64decode skips characters outside the alphabet; checked first, so a box means one thing.
    if not _FIELD_ALPHABET.fullmatch(text):
        raise SealedBoxError(f'{what} is not base64url')
    try:
        return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise SealedBoxError(f'{what} is not base64url') from None


def public_key(text: Any) -> X25519PublicKey:
    """Parse a pipeline's public key: base64url of a canonical X25519 point that is not of low order.

    Refused, so that it is refused when filing and not after the grant: a low-order point (the all-zero
    key ``"A" * 43``, 1, the two points of order 8, p - 1, ...) gives the all-zero shared secret, which
    HPKE will not seal to; a non-canonical encoding (u >= p, or the unused top bit set) names a point
    another string names too.

    Raises:
        SealedBoxError: not a string, not base64url, not 32 bytes, not canonical, or of low order.
    """
    if not isinstance(text, str) or not _KEY_TEXT.fullmatch(text):
        raise SealedBoxError(f'public_key {KEY_HELP}')
    raw = _unb64(text, 'public_key')
    if len(raw) != 32 or _b64(raw) != text.rstrip('='):
        raise SealedBoxError(f'public_key {KEY_HELP}')
    if int.from_bytes(raw, 'little') >= _P:
        raise SealedBoxError('public_key is not a canonical X25519 public key (u >= 2^255 - 19)')
    key = X25519PublicKey.from_public_bytes(raw)
    try:
        _PROBE.exchange(key)
    except ValueError:
        raise SealedBoxError('public_key is a low-order X25519 point: nothing can be sealed to it') from None
    return key


def seal(recipient_key: str, details: dict[str, Any], *, request_id: str) -> str:
    """The details as a JSON box only the holder of ``recipient_key``'s private half can open.

    Raises:
        SealedBoxError: the key is not usable (see :func:`public_key`), or the details are not JSON.
    """
    recipient = public_key(recipient_key)
    try:
        plain = json.dumps(details, allow_nan=False).encode()
    except (TypeError, ValueError):
        raise SealedBoxError('the details cannot be written as JSON') from None
    try:
        sealed = SUITE.encrypt(plain, recipient, info=request_id.encode('ascii'))
    except (ValueError, UnicodeEncodeError):
        raise SealedBoxError('the details cannot be sealed to this public_key') from None
    enc, ciphertext = sealed[:ENC_LENGTH], sealed[ENC_LENGTH:]
    return json.dumps({'alg': ALG, 'enc': _b64(enc), 'ciphertext': _b64(ciphertext)})


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
        enc_text, ct_text = box.get('enc'), box.get('ciphertext')
        if not isinstance(enc_text, str) or not isinstance(ct_text, str):
            raise SealedBoxError('the details box lacks enc or ciphertext')
        enc, ciphertext = _unb64(enc_text, 'enc'), _unb64(ct_text, 'ciphertext')
        if len(enc) != ENC_LENGTH or len(ciphertext) < TAG_LENGTH:
            raise SealedBoxError('the details box has a malformed enc or ciphertext')
        try:
            plain = SUITE.decrypt(enc + ciphertext, self._private, info=request_id.encode('ascii'))
        except (InvalidTag, ValueError, UnicodeEncodeError):  # ValueError: a low-order enc
            raise SealedBoxError('the details were not sealed to this key for this request') from None
        try:
            data = json.loads(plain.decode('utf-8'))
        except ValueError:  # UnicodeDecodeError is one
            raise SealedBoxError('the details are not JSON') from None
        if not isinstance(data, dict):
            raise SealedBoxError('the details are not an object')
        return data
