"""Providers by name: the built-in ones, and any a package registers under ``jit.providers``."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from bot.core.errors import PermanentProviderError
from bot.core.ports import Provider
from workers.providers.webhook import WebhookProvider

BUILTIN: dict[str, Callable[[], Any]] = {'webhook': WebhookProvider}


def provider_names() -> frozenset[str]:
    """Every provider name a policy may use."""
    return frozenset(BUILTIN) | {ep.name for ep in entry_points(group='jit.providers')}


class ProviderRegistry:
    """Builds each provider once, on first use."""

    def __init__(self, factories: dict[str, Callable[[], Any]] | None = None) -> None:
        self.factories = dict(BUILTIN) if factories is None else dict(factories)
        for ep in entry_points(group='jit.providers'):
            self.factories.setdefault(ep.name, ep.load())
        self._built: dict[str, Provider] = {}

    def __call__(self, name: str) -> Provider:
        if name not in self._built:
            factory = self.factories.get(name)
            if factory is None:
                raise PermanentProviderError(f'the provider `{name}` is not available in this version of jit')
            self._built[name] = factory()
        return self._built[name]
