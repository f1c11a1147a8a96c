"""Decision links: what an approval email or a Teams card carries instead of a Slack button.

A Slack click is signed by Slack and names the clicker; a link is opened by whoever holds it. So a link names
the approver it was sent to itself: its token is the request ID, the approver's email, the request's digest,
the channel it went out on and an expiry, signed with HMAC-SHA256 under ``JIT_LINK_KEY``. Nothing is stored to
mint one, and nothing but the key can make one; a token changed in any character is refused.

- **Who**: the decision is taken as ``email`` (never as anyone the page is told about). A forwarded link
  decides as the person it was sent to: rules that must not allow that ask in Slack only.
- **What**: the request's ID and digest (what the approver was shown), so a link never decides another request.
- **Until**: the request's ``pending_until`` (or :data:`DEFAULT_LIFETIME`): a link outlives nothing it could decide.
- **Once**: each token has a nonce; the decision page holds it while it decides (``SET NX``) and marks it used
  once it decided, so a replayed POST is refused even where the state machine would take it.

A Teams card is posted to a channel that everyone in it reads, so its links are *channel* tokens (``email`` is
empty): they open a page that asks the reader for their work email and sends a personal link there, which
then decides as that address. Teams cannot tell jit who clicked without a Bot Framework registration.

Pure: no Redis, no Slack; the key comes from the settings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
from dataclasses import dataclass

#: How long a link lives when its request has no ``pending_until`` (a rule without ``pending_timeout``).
DEFAULT_LIFETIME = 7 * 86400.0
#: The shortest key taken: 32 characters (``openssl rand -hex 32`` gives 64).
MIN_KEY_LENGTH = 32
#: A token longer than this is refused before anything is decoded.
MAX_TOKEN_LENGTH = 1024
_VERSION = 'v1'
_DOMAIN = b'jit-decision-link-v1\x00'


class LinkRefused(Exception):
    """A token that decides nothing; ``str()`` says why in words for the page, ``status`` the HTTP answer."""

    status = 403


class LinkExpired(LinkRefused):
    status = 410


@dataclass(frozen=True, slots=True)
class LinkClaims:
    """What a valid token says: ``email`` is empty for a Teams channel's token."""

    request_id: str
    email: str
    digest: str
    via: str
    expires_at: float
    nonce: str

    @property
    def personal(self) -> bool:
        return bool(self.email)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))


class LinkSigner:
    """Mints and checks tokens with one key (``JIT_LINK_KEY``); more keys verify only, for a rotation."""

    def __init__(self, key: str, *, old_keys: tuple[str, ...] = ()) -> None:
        if len(key) < MIN_KEY_LENGTH:
            raise ValueError(f'the link key must be at least {MIN_KEY_LENGTH} characters (openssl rand -hex 32)')
        self._key = key.encode()
        self._keys = (self._key, *(k.encode() for k in old_keys))

    def mint(self, *, request_id: str, email: str, digest: str, via: str, expires_at: float) -> str:
        body = json.dumps({'r': request_id, 'e': email.lower(), 'd': digest, 'v': via, 'x': int(expires_at),
                           'n': secrets.token_urlsafe(12)}, separators=(',', ':')).encode()  # fmt: skip
        return f'{_VERSION}.{_b64(body)}.{_b64(self._mac(self._key, body))}'

    def check(self, token: str, *, now: float) -> LinkClaims:
        """The claims of ``token``; raises :class:`LinkRefused` (forged, changed, unreadable) or
        :class:`LinkExpired`. Checks only the token: the page checks the request (digest, status, approver)."""
        if not token or len(token) > MAX_TOKEN_LENGTH or token.count('.') != 2:
            raise LinkRefused('This link is not a jit decision link (it may have been cut short in the email).')
        version, body_b64, mac_b64 = token.split('.')
        try:
            body, mac = _unb64(body_b64), _unb64(mac_b64)
        except (ValueError, TypeError):
            raise LinkRefused('This link is not a jit decision link (it may have been cut short).') from None
        if version != _VERSION or not any(hmac.compare_digest(mac, self._mac(k, body)) for k in self._keys):
            raise LinkRefused('This link is not valid: it was changed, or it was not made by this jit.')
        try:
            raw = json.loads(body)
            claims = LinkClaims(request_id=str(raw['r']), email=str(raw['e']), digest=str(raw['d']),
                                via=str(raw['v']), expires_at=float(raw['x']), nonce=str(raw['n']))  # fmt: skip
        except (ValueError, KeyError, TypeError):
            raise LinkRefused('This link is not valid.') from None
        if not math.isfinite(claims.expires_at):  # only the key could sign one; refused all the same
            raise LinkRefused('This link is not valid.')
        if now > claims.expires_at:
            raise LinkExpired('This link has expired: the request it was for is no longer waiting for a decision.')
        return claims

    @staticmethod
    def _mac(key: bytes, body: bytes) -> bytes:
        return hmac.new(key, _DOMAIN + body, hashlib.sha256).digest()
