"""What every provider shares: reading ``env:`` settings, and HMAC signing of bodies.

Secrets live in the environment of the worker, never in the policy files or Redis: a setting
written ``env:NAME`` is read from the environment at the moment it is used.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Mapping
from typing import Any

from bot.core.errors import PermanentProviderError
from bot.core.model import AccessRequest

#: A grant is made before its clock starts (jit activates it once the provider confirms), so the expiry
#: pushed down at grant time is the duration from now plus this much for the activation to happen.
ACTIVATION_SLACK = 30.0


def target_expiry(request: AccessRequest, now: float | None = None) -> float:
    """The end to push down to the target (VALID UNTIL, certificate validity, IAM condition).

    ``expires_at`` once the grant is active (an extension, a repeated grant); before that, the
    duration from now plus :data:`ACTIVATION_SLACK`: never earlier than jit's own end, and late by
    at most that slack if jit itself were gone.
    """
    if request.expires_at is not None:
        return request.expires_at
    return (time.time() if now is None else now) + request.duration + ACTIVATION_SLACK


def resolve_settings(settings: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Replace ``env:NAME`` values with the environment's; a missing variable is a permanent error."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, str) and value.startswith('env:'):
            name = value[len('env:') :]
            if name not in env:
                raise PermanentProviderError(f'setting `{key}` needs the environment variable {name}, which is not set')
            out[key] = env[name]
        else:
            out[key] = value
    return out


def sign_body(secret: str, body: bytes) -> str:
    """``sha256=HEX``: HMAC-SHA256 of the raw body, as the ``X-JIT-Signature`` header carries it."""
    return 'sha256=' + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
