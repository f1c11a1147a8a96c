"""The ``ssh`` provider: a short-lived OpenSSH user certificate for the requester's own key, signed by a CA.

Grant signs the requester's registered public key (``/jit ssh-key``) into a user certificate with the
role's ``principals``, valid from a minute ago (clock skew) to :func:`target_expiry`, key ID
``jit:<request id>:<requester>`` and a serial derived from the request ID (:func:`serial_for`), so
revoke needs nothing stored. sshd refuses the certificate by itself once it has expired, even if jit
is down. The details are the certificate, the file to save it under and the one command to use it.
Grant again signs again (same serial); extend signs a new certificate that ends at the new end.

Revoke before the end adds the serial to the key revocation list (``settings.revoked_keys``, written
by :mod:`workers.providers.krl`) that sshd reads with ``RevokedKeys``. That helps the servers that read
that file: the operator distributes it (config management, a cron pull, a shared mount). A certificate
is checked only at login: revoke does not end an open session. A certificate already past its end
needs no entry, so a revoke that comes later than that writes none.

Settings: ``ca_key`` (the CA private key, OpenSSH PEM, usually ``env:JIT_SSH_CA_KEY``; ed25519, ECDSA or
RSA), ``revoked_keys`` (the KRL path), optional ``host``, ``port`` and ``user`` for the command line.
Params: ``principals`` (a name or a list, required), optional ``extensions`` (default ``[permit-pty]``).
``list_live`` is None: certificates live on the requester's machine, the servers hold no list of them.
See ``docs/providers/ssh.md``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    SSHCertificate,
    SSHCertificateBuilder,
    SSHCertificateType,
    SSHCertPrivateKeyTypes,
    SSHCertPublicKeyTypes,
    load_pem_private_key,
    load_ssh_private_key,
    load_ssh_public_key,
)

from bot.core.errors import PermanentProviderError, TransientProviderError
from bot.core.model import AccessRequest
from workers.providers import krl
from workers.providers.base import ACTIVATION_SLACK, resolve_settings, target_expiry

log = structlog.get_logger(__name__)

#: Seconds a certificate starts before now and a revoke allows past its end: server clocks are never exact.
CLOCK_SKEW = 60
#: Extensions a certificate carries unless the role names its own: an interactive shell, no forwarding.
DEFAULT_EXTENSIONS = ('permit-pty',)
#: The extensions OpenSSH knows; a role naming another is a typo, refused rather than silently ignored.
KNOWN_EXTENSIONS = frozenset({'permit-X11-forwarding', 'permit-agent-forwarding', 'permit-port-forwarding',
                              'permit-pty', 'permit-user-rc', 'no-touch-required'})  # fmt: skip
#: RSA keys shorter than this are refused (OpenSSH itself refuses under 1024).
MIN_RSA_BITS = 2048
NO_KEY = 'register your SSH public key first: /jit ssh-key ssh-ed25519 AAAA…'
_PRINCIPAL = re.compile(r'[^\s,]{1,256}')
#: What an OpenSSH key type looks like (``ssh-dss``, ``sk-ssh-ed25519@openssh.com``): safe to quote back.
_KEY_TYPE = re.compile(r'(ssh|ecdsa|sk)-[a-z0-9@.-]{1,60}')
#: The key types signed. Not ``ssh-dss`` (OpenSSH dropped it); not the ``sk-`` security keys: cryptography
#: reads them as plain keys and would sign a certificate their owner's token cannot use.
KEY_TYPES = frozenset({'ssh-ed25519', 'ssh-rsa', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521'})
#: The private key file ``ssh`` looks for by default, by key type: the certificate goes next to it.
_KEY_FILE = {'ssh-ed25519': 'id_ed25519', 'ssh-rsa': 'id_rsa'}

#: How the worker hands in the requester's registered key: one ``authorized_keys`` line, or None.
PublicKeyLookup = Callable[[AccessRequest], str | None]


def serial_for(request_id: str) -> int:
    """The certificate serial of a request: the first 8 bytes of SHA-256 of its ID (never 0, which KRLs refuse)."""
    return int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], 'big') or 1


def key_id_for(request: AccessRequest) -> str:
    """``jit:<request id>:<requester>``: what sshd logs at every login with the certificate."""
    who = request.requester
    return f'jit:{request.id}:{who.email or who.slack_id or who.pipeline or "unknown"}'


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace('+00:00', 'Z')


def _wire(public_key: Any) -> bytes:
    """A public key's SSH wire blob (what a KRL names a CA by)."""
    return base64.b64decode(public_key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).split()[1])


class SshProvider:
    """Signs short-lived OpenSSH user certificates; revokes them through a KRL."""

    name = 'ssh'
    #: The only settings that may be ``env:NAME``; never shown. ``host``, ``user``, ``port`` go into the command line.
    secret_settings = frozenset({'ca_key'})

    def __init__(self, *, public_key_for: PublicKeyLookup | None = None) -> None:
        """``public_key_for``: the requester's registered OpenSSH public key (one ``authorized_keys`` line), or None."""
        self.public_key_for = public_key_for

    def grant(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        return self._issue(
            request, settings, params, valid_before=target_expiry(request), event='ssh.certificate_signed'
        )

    def extend(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """A new certificate that ends at the new ``expires_at`` (the old one still ends at the old end)."""
        return self._issue(
            request, settings, params, valid_before=target_expiry(request), event='ssh.certificate_extended'
        )

    def revoke(self, request: AccessRequest, *, settings: dict[str, Any], params: dict[str, Any]) -> None:
        conf = resolve_settings(settings, secret=self.secret_settings)
        path = _krl_path(conf)
        serial = serial_for(request.id)
        bound = log.bind(request_id=request.id, serial=serial, krl=path)
        if request.expires_at is not None and time.time() > request.expires_at + ACTIVATION_SLACK + CLOCK_SKEW:
            # Every certificate of this request ended by then (grant pushes at most ACTIVATION_SLACK past
            # expires_at): sshd refuses it as expired, a KRL entry would only grow the file.
            bound.info('ssh.revoke_expired')
            return
        ca_blob = _wire(_load_ca(conf).public_key())
        try:
            written = krl.add_serials(path, ca_blob, [serial])
        except krl.KrlBusy as exc:
            raise TransientProviderError(f'the revoked keys file is busy: {exc}') from exc
        except krl.KrlError as exc:
            raise PermanentProviderError(f'cannot add to the revoked keys file {path}: {exc}') from exc
        except OSError as exc:
            raise PermanentProviderError(
                f'cannot write the revoked keys file {path}: {exc.strerror or type(exc).__name__}'
            ) from exc
        bound.info('ssh.certificate_revoked' if written else 'ssh.certificate_already_revoked')

    def list_live(self, resource: str, *, settings: dict[str, Any]) -> list[tuple[str, str]] | None:
        """None: certificates live on the requesters' machines; no server holds a list to reconcile with."""
        return None

    def _issue(
        self,
        request: AccessRequest,
        settings: dict[str, Any],
        params: dict[str, Any],
        *,
        valid_before: float,
        event: str,
    ) -> dict[str, Any]:
        conf = resolve_settings(settings, secret=self.secret_settings)
        folder = os.path.dirname(os.path.abspath(_krl_path(conf)))
        if not os.access(folder, os.W_OK | os.X_OK):
            # No certificate that could not be revoked before its end.
            raise PermanentProviderError(
                f'jit cannot write the revoked keys file\'s folder {folder}: revoke would fail'
            )
        principals = _principals(params)
        extensions = _extensions(params)
        user_key, key_type = self._user_key(request)
        ca = _load_ca(conf)
        now = time.time()
        if valid_before <= now:
            raise PermanentProviderError('the grant has already ended: no certificate to sign')
        serial = serial_for(request.id)
        builder = (
            SSHCertificateBuilder()
            .public_key(user_key)
            .type(SSHCertificateType.USER)
            .serial(serial)
            .key_id(key_id_for(request).encode())
            .valid_principals([p.encode() for p in principals])
            .valid_after(int(now) - CLOCK_SKEW)
            .valid_before(int(valid_before))
        )
        for name in extensions:
            builder = builder.add_extension(name.encode(), b'')
        cert: SSHCertificate = builder.sign(ca)
        log.info(event, request_id=request.id, serial=serial, principals=principals, key_type=key_type,
                 valid_before=int(valid_before), ca=_fingerprint(ca))  # fmt: skip
        save_as = f'~/.ssh/{_KEY_FILE.get(key_type, "id_ecdsa")}-cert.pub'
        login = f'{conf.get("user") or principals[0]}@{conf.get("host") or "<host>"}'
        port = f' -p {conf["port"]}' if conf.get('port') else ''
        return {
            'certificate': f'{cert.public_bytes().decode()} {key_id_for(request)}',
            'save_as': save_as,
            'command': f'ssh -o CertificateFile={save_as}{port} {login}',
            'valid_until': _rfc3339(int(valid_before)),
        }

    def _user_key(self, request: AccessRequest) -> tuple[SSHCertPublicKeyTypes, str]:
        text = self.public_key_for(request) if self.public_key_for is not None else None
        if not text or not text.strip():
            raise PermanentProviderError(NO_KEY)
        first = text.split()[0]
        unreadable = PermanentProviderError(
            'your registered SSH public key could not be read (expected one line like '
            '`ssh-ed25519 AAAA… you@laptop`): register it again with /jit ssh-key'
        )
        unsupported = PermanentProviderError(
            f'your SSH key type {first} is not supported: register an ssh-ed25519 (or ECDSA, RSA) key with /jit ssh-key'
        )
        if first not in KEY_TYPES:
            raise unsupported if _KEY_TYPE.fullmatch(first) else unreadable
        try:
            key = load_ssh_public_key(text.strip().encode())
        except (ValueError, UnsupportedAlgorithm):
            raise unreadable from None
        if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise unsupported
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            raise PermanentProviderError(
                f'your RSA key has {key.key_size} bits, fewer than {MIN_RSA_BITS}: register an ssh-ed25519 key '
                'with /jit ssh-key'
            )
        return key, key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).split()[0].decode()


def _krl_path(conf: dict[str, Any]) -> str:
    path = conf.get('revoked_keys')
    if not isinstance(path, str) or not path:
        raise PermanentProviderError('the ssh resource needs a `revoked_keys` setting (the KRL path sshd reads)')
    return path


def _load_ca(conf: dict[str, Any]) -> SSHCertPrivateKeyTypes:
    """The CA private key from ``ca_key``; errors never quote it (nor chain the parser's error)."""
    text = conf.get('ca_key')
    if not isinstance(text, str) or not text.strip():
        raise PermanentProviderError('the ssh resource needs a `ca_key` setting (usually env:JIT_SSH_CA_KEY)')
    if '\\n' in text and '\n' not in text.strip():
        text = text.replace('\\n', '\n')  # a PEM squeezed onto one line by an env file
    data = text.strip().encode() + b'\n'
    key: Any = None
    try:
        key = load_ssh_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        try:
            key = load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            key = None
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PermanentProviderError(
            'the `ca_key` setting is not an unencrypted ed25519, ECDSA or RSA private key in OpenSSH PEM format'
        )
    return key


def _fingerprint(ca: SSHCertPrivateKeyTypes) -> str:
    """The CA's public SHA256 fingerprint, as ``ssh-keygen -l`` prints it: safe to log."""
    digest = hashlib.sha256(_wire(ca.public_key())).digest()
    return 'SHA256:' + base64.b64encode(digest).decode().rstrip('=')


def _principals(params: dict[str, Any]) -> list[str]:
    # A certificate with no principals is valid for every user on the server: never sign one.
    raw = params.get('principals')
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not names:
        raise PermanentProviderError('the ssh role needs `principals`: the login names the certificate allows')
    for name in names:
        if not isinstance(name, str) or not _PRINCIPAL.fullmatch(name):
            raise PermanentProviderError(f'the ssh role has an invalid principal {str(name)[:64]!r}')
    return list(names)


def _extensions(params: dict[str, Any]) -> list[str]:
    names = params.get('extensions', list(DEFAULT_EXTENSIONS))
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise PermanentProviderError('the ssh role\'s `extensions` must be a list of names')
    unknown = sorted(set(names) - KNOWN_EXTENSIONS)
    if unknown:
        raise PermanentProviderError(
            f'the ssh role names unknown extensions {", ".join(unknown)}; known: {", ".join(sorted(KNOWN_EXTENSIONS))}'
        )
    return sorted(set(names))
