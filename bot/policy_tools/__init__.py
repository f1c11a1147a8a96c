"""``jit policy ...``: the tools a security team runs on policy files (validate, test, explain, diff).

Each sub-command is a module with ``run(args) -> int`` (the exit code); the logic itself lives in
``bot.core`` and is pure, so these modules only read files, call it and print.
"""

from __future__ import annotations

from collections.abc import Collection


def provider_names() -> Collection[str]:
    """Every provider a policy may name: the built-in ones and those installed through entry points.

    A mapping of each name to the settings it declares secret, so the loader allows ``env:`` in those only.
    """
    from workers.providers.registry import provider_names as names

    return names()
