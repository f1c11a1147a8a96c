"""Where a grant lives: the provider, its settings and the role's parameters the grant was made with.

A revoke must reach what the grant created. If it read the policy as it is at revoke time, a pull request
that changed a resource's ``role_prefix``, webhook ``url``, KRL path or AWS account would send the revoke to
the wrong place: the provider answers "already gone" and the real access lives on. So the grant records its
target on the request before the first provider call (:func:`recorded_target`, stored by
``transitions.start_grant``), and every later call for that grant (revoke, expiry push, idle check, the
reconciler) uses the record (:meth:`Target.of`).

The record keeps settings as the policy wrote them: an ``env:NAME`` reference stays a reference, resolved by
the provider when it is used, so no secret reaches Redis. A secret written inline in the policy (which lint
warns about) is recorded only as its SHA-256, and matched against the policy when it is used.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.core.errors import PermanentProviderError
from bot.core.model import AccessRequest
from bot.core.policy import Policy
from bot.core.policy_lint import SECRET_KEY

#: How an inline secret is recorded: this prefix and the SHA-256 of the value.
INLINE_SECRET = 'inline-sha256:'
#: ``scheme://user:password@host`` or ``scheme://token@host``: a URL that carries a credential.
_CREDENTIALS_IN_URL = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@')


def _digest(value: str) -> str:
    return INLINE_SECRET + hashlib.sha256(value.encode()).hexdigest()


def _is_secret(key: str, value: str, provider: object) -> bool:
    """Whether an inline value must not be copied into Redis.

    A setting a provider declares secret (it may be written ``env:NAME``) is recorded in clear when its name
    says it is not a credential and its value carries none: a webhook ``url`` written inline is reviewed
    configuration, already in git in clear, and the revoke must reach exactly that URL. A name that reads
    like a credential (secret, password, token, key, dsn), or a URL with a user or password in it, is
    recorded only as its hash.
    """
    declared = getattr(provider, 'secret_settings', None)
    if isinstance(declared, (set, frozenset, tuple, list)) and key not in declared:
        return bool(SECRET_KEY.search(key))
    return bool(SECRET_KEY.search(key)) or _CREDENTIALS_IN_URL.search(value) is not None


def recorded_target(policy: Policy, request: AccessRequest, provider: Callable[[str], object]) -> dict[str, Any] | None:
    """What to record for ``request``'s grant, from the policy in force (None when its resource is gone).

    Raises:
        PermanentProviderError: a setting or role parameter JSON cannot write: the grant could not be revoked
            with what it was granted with, so it is not made.
    """
    resource = policy.resources.get(request.resource)
    if resource is None:
        return None
    role = resource.roles.get(request.role)
    impl = provider(resource.provider)
    settings = _recordable(resource.settings, f'setting of resource `{resource.name}`')
    for key, value in settings.items():
        if isinstance(value, str) and not value.startswith('env:') and _is_secret(key, value, impl):
            settings[key] = _digest(value)
    params = _recordable(role.params, f'parameter of role `{role.name}`') if role else {}
    return {'provider': resource.provider, 'settings': settings, 'params': params}


def _recordable(values: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``values`` as the record holds them (through JSON), or a permanent error naming what JSON cannot write.

    The loader refuses what JSON cannot write (an int past Python's int-to-str limit), but a policy built
    another way, or a provider plugin's settings, may hold anything: that is this grant's failure, said once,
    never an exception out of the grant job.
    """
    try:
        copied: dict[str, Any] = json.loads(json.dumps(dict(values), default=str))
        return copied
    except Exception:  # ValueError (int-to-str limit, a cycle), TypeError, RecursionError, a str() that raises
        bad = [str(key)[:80] for key, value in values.items() if not _writable(value)] or ['?']
        raise PermanentProviderError(
            f'{what} `{bad[0]}` cannot be recorded with the grant (JSON cannot write it), '
            'so it could not be revoked with what it was granted with'
        ) from None


def _writable(value: Any) -> bool:
    try:
        json.dumps(value, default=str)
    except Exception:  # whatever json.dumps or a str() it calls raises
        return False
    return True


@dataclass(frozen=True, slots=True)
class Target:
    """The provider name, settings and role parameters to call for one grant."""

    provider: str
    settings: dict[str, Any]
    params: dict[str, Any]

    @classmethod
    def of(cls, request: AccessRequest, policy: Policy) -> Target | None:
        """The grant's recorded target, or for a grant made before records existed, the policy's.

        None when there is neither a record nor the resource in the policy.

        Raises:
            PermanentProviderError: an inline secret of the record no longer matches the policy's.
        """
        record = request.granted_with
        resource = policy.resources.get(request.resource)
        if record is None:
            if resource is None:
                return None
            role = resource.roles.get(request.role)
            return cls(resource.provider, dict(resource.settings), dict(role.params) if role else {})
        current: Mapping[str, Any] = resource.settings if resource is not None else {}
        settings = dict(record.get('settings') or {})
        for key, value in settings.items():
            if isinstance(value, str) and value.startswith(INLINE_SECRET):
                now = current.get(key)
                if not isinstance(now, str) or _digest(now) != value:
                    raise PermanentProviderError(
                        f'setting `{key}` was written inline in the policy when this grant was made and has changed '
                        'since; put the old value back (better: as `env:NAME`) so the grant can be revoked'
                    )
                settings[key] = now
        return cls(str(record['provider']), settings, dict(record.get('params') or {}))
