"""What every provider shares: reading ``env:`` settings, and HMAC signing of bodies.

Secrets live in the environment of the worker, never in the policy files or Redis: a setting
written ``env:NAME`` is read from the environment at the moment it is used. Only the settings a
provider declares secret (its ``secret_settings``) are read that way: any other may be shown to
the requester (a host, a database name), and ``connect_host: env:SLACK_SIGNING_SECRET`` would
otherwise send the worker's secret to them. The policy loader refuses such a setting already;
:func:`resolve_settings` refuses it again, for anything that reaches a provider another way.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Collection, Mapping
from typing import Any

from bot.core.errors import PermanentProviderError
from bot.core.model import AccessRequest
from bot.core.policy_loader import BUILTIN_SECRET_SETTINGS
from bot.core.ports import ACTIVATION_SLACK

__all__ = ['ACTIVATION_SLACK', 'resolve_settings', 'sign_body', 'target_expiry']

#: What a caller that declares nothing may read from the environment: the settings some built-in provider
#: declares secret, and no other.
_ANY_BUILTIN_SECRET = frozenset().union(*BUILTIN_SECRET_SETTINGS.values())


def target_expiry(request: AccessRequest, now: float | None = None) -> float:
    """The end to push down to the target (VALID UNTIL, certificate validity, IAM condition).

    ``expires_at`` once the grant is active (an extension, a repeated grant); before that, the
    duration from now plus :data:`ACTIVATION_SLACK`: never earlier than jit's own end, and late by
    at most that slack if jit itself were gone.
    """
    if request.expires_at is not None:
        return request.expires_at
    return (time.time() if now is None else now) + request.duration + ACTIVATION_SLACK


def resolve_settings(
    settings: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, secret: Collection[str] | None = None
) -> dict[str, Any]:
    """Replace ``env:NAME`` values of secret settings with the environment's.

    Args:
        settings: a resource's settings as the policy wrote them.
        environ: where variables are read (the process environment by default).
        secret: the provider's ``secret_settings``; None: those some built-in provider declares.

    Raises:
        PermanentProviderError: a setting that is not secret is written ``env:NAME`` (checked before any
            variable is read), or a variable is not set. The message names the setting, never a value.
    """
    allowed = _ANY_BUILTIN_SECRET if secret is None else secret
    for key, value in settings.items():
        if isinstance(value, str) and value.startswith('env:') and key not in allowed:
            raise PermanentProviderError(
                f'setting `{key}` is not secret (it may be shown to the requester), so it cannot be read from the '
                'environment: write its value in the policy'
            )
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
