"""``/jit ssh-key``: the public key the ``ssh`` provider signs certificates for, registered once per person.

A public key is not a secret, so it lives in the store; what is checked here is that it is one: an
OpenSSH public key line of a type the CA signs (ed25519, ECDSA, RSA of 2048 bits or more), not a private
key pasted by mistake and not a certificate. Registering or replacing a key is an audit event: whoever
controls the key controls the certificates jit will sign for that person.
"""

from __future__ import annotations

import base64
import hashlib
import math
import time
from typing import Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from bot.core.errors import RequestError, TooManyRequests
from bot.core.model import AuditEvent, AuditName, Principal
from bot.core.ports import AuditLog, Clock, Limits, UserKeys


class KeyStore(AuditLog, Limits, UserKeys, Protocol):
    """What registering a key touches: the key, a daily limit, its audit event."""


#: OpenSSH key lines are short; anything longer is not one (and is not stored).
MAX_KEY_LENGTH = 8192
#: Key changes a person may make in an hour: enough to fix a mistake, not a loop.
SSH_KEY_CHANGES_PER_HOUR = 10


class BadSshKey(RequestError):
    """What was pasted is not an OpenSSH public key jit can sign for."""


def fingerprint(key_line: str) -> str:
    """``SHA256:…`` as ``ssh-keygen -l`` prints it."""
    blob = base64.b64decode(key_line.split()[1])
    return 'SHA256:' + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip('=')


def parse_public_key(text: str) -> str:
    """The key as ``TYPE BASE64`` (the comment dropped), or BadSshKey saying what is wrong."""
    text = ' '.join(text.replace('`', ' ').split())
    if 'PRIVATE KEY' in text:
        raise BadSshKey('That is a *private* key: never paste it anywhere. Send the `.pub` file: '
                        '`/jit ssh-key ssh-ed25519 AAAA…`. Consider that key exposed and make a new one.')  # fmt: skip
    if not text or len(text) > MAX_KEY_LENGTH:
        raise BadSshKey('Paste your public key: `/jit ssh-key ssh-ed25519 AAAA… you@laptop` (the `.pub` file).')
    if '-cert-v01@openssh.com' in text.split()[0]:
        raise BadSshKey('That is a certificate; register the public key it was made for (the `.pub` file).')
    parts = text.split()
    line = ' '.join(parts[:2])
    try:
        key = load_ssh_public_key(line.encode())
    except (ValueError, IndexError, TypeError, UnsupportedAlgorithm):
        raise BadSshKey('That is not an OpenSSH public key. It looks like `ssh-ed25519 AAAA… you@laptop` '
                        '(the contents of `~/.ssh/id_ed25519.pub`).') from None  # fmt: skip
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        raise BadSshKey(f'That RSA key has {key.key_size} bits; use ed25519 (`ssh-keygen -t ed25519`) or RSA ≥ 2048.')
    if not isinstance(key, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise BadSshKey('Use an ed25519, ECDSA or RSA key (`ssh-keygen -t ed25519`).')
    return line


class SshKeys:
    """Register and show the public key of a Slack user."""

    def __init__(self, *, store: KeyStore, clock: Clock | None = None) -> None:
        self.store = store
        self.now = clock.now if clock is not None else time.time

    def register(self, who: Principal, text: str) -> str:
        """Store ``who``'s key (replacing any); returns its fingerprint.

        The same key again changes nothing and records nothing. A change is an audit event, and at most
        :data:`SSH_KEY_CHANGES_PER_HOUR` are taken per person: each one moves who controls the certificates
        jit signs for them, and each one is said in the audit channel.

        Raises:
            BadSshKey: not a key jit signs for. TooManyRequests: too many changes in the last hour.
        """
        if not who.slack_id:
            raise BadSshKey('Only Slack users register SSH keys.')
        line = parse_public_key(text)
        previous = self.store.ssh_key(who.slack_id)
        if previous == line:
            return fingerprint(line)
        wait = self.store.take_slot(f'sshkey:{who.slack_id}', now=self.now(), window=3600,
                                    limit=SSH_KEY_CHANGES_PER_HOUR)  # fmt: skip
        if wait is not None:
            raise TooManyRequests(f'Not changed: your SSH key was changed {SSH_KEY_CHANGES_PER_HOUR} times in the last '
                                  f'hour, the most jit takes. Try again in {math.ceil(wait / 60)} min.',
                                  retry_after=wait)  # fmt: skip
        self.store.set_ssh_key(who.slack_id, line)
        detail = {'fingerprint': fingerprint(line), 'type': line.split()[0]}
        if previous:
            detail['replaced'] = fingerprint(previous)
        event = AuditEvent(event=AuditName.SSH_KEY_REGISTERED, actor=who.slack_id, outcome='registered', detail=detail)
        self.store.record(event)
        return detail['fingerprint']

    def show(self, who: Principal) -> str | None:
        """The fingerprint of ``who``'s registered key, if any."""
        line = self.store.ssh_key(who.slack_id) if who.slack_id else None
        return fingerprint(line) if line else None
