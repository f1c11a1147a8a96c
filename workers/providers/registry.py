"""Providers by name: the built-in ones, and any a package registers under ``jit.providers``."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

import structlog

from bot.core.errors import PermanentProviderError
from bot.core.policy_loader import BUILTIN_SECRET_SETTINGS
from bot.core.ports import Provider
from workers.providers.webhook import WebhookProvider

log = structlog.get_logger(__name__)


def _lazy(path: str) -> Callable[..., Any]:
    """A built-in provider imported on first use, so a worker loads psycopg or boto3 only if a policy asks."""

    def build(**kwargs: Any) -> Any:
        module, _, name = path.partition(':')
        return getattr(import_module(module), name)(**kwargs)

    return build


BUILTIN: dict[str, Callable[..., Any]] = {
    'webhook': WebhookProvider,
    'postgres': _lazy('workers.providers.postgres:PostgresProvider'),
    'aws_iam': _lazy('workers.providers.aws_iam:AwsIamProvider'),
    'aws_sso': _lazy('workers.providers.aws_sso:AwsSsoProvider'),
    'ssh': _lazy('workers.providers.ssh:SshProvider'),
}


def provider_names() -> dict[str, frozenset[str]]:
    """Every provider name a policy may use, each with the settings it declares secret.

    The loader allows ``env:NAME`` only in those settings (any other may be shown to the requester). The
    built-in providers' declarations come from the core (their modules load psycopg or boto3, which the web
    process never needs; a test checks the classes say the same); a provider installed through the
    ``jit.providers`` entry point declares its own ``secret_settings``, or none.
    """
    names = dict(BUILTIN_SECRET_SETTINGS)
    for ep in entry_points(group='jit.providers'):
        if ep.name in names:
            continue
        try:
            declared = getattr(ep.load(), 'secret_settings', ())
            names[ep.name] = frozenset(str(key) for key in declared)
        except Exception as exc:  # a broken plugin: its resources load, but none of its settings may be env:
            log.warning('provider.unloadable', provider=ep.name, error=type(exc).__name__)
            names[ep.name] = frozenset()
    return names


class ProviderRegistry:
    """Builds each provider once, on first use."""

    def __init__(
        self,
        factories: dict[str, Callable[..., Any]] | None = None,
        *,
        options: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """``options``: keyword arguments for a provider's constructor, by name (the ssh provider's key lookup)."""
        self.factories = dict(BUILTIN) if factories is None else dict(factories)
        for ep in entry_points(group='jit.providers'):
            self.factories.setdefault(ep.name, ep.load())
        self.options = options or {}
        self._built: dict[str, Provider] = {}

    def __call__(self, name: str) -> Provider:
        if name not in self._built:
            factory = self.factories.get(name)
            if factory is None:
                raise PermanentProviderError(f'the provider `{name}` is not available in this version of jit')
            self._built[name] = factory(**self.options.get(name, {}))
        return self._built[name]
