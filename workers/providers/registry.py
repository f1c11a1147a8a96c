"""Providers by name: the built-in ones, and any a package registers under ``jit.providers``."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from bot.core.errors import PermanentProviderError
from bot.core.ports import Provider
from workers.providers.webhook import WebhookProvider


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


def provider_names() -> frozenset[str]:
    """Every provider name a policy may use."""
    return frozenset(BUILTIN) | {ep.name for ep in entry_points(group='jit.providers')}


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
