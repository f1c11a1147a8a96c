"""How a use case reports a refusal to its :class:`~bot.core.ports.Meter`: one word per kind of refusal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bot.core.errors import PolicyDenied, RequestError, TooManyRequests


@contextmanager
def refusals_counted(count: Callable[[str], None]) -> Iterator[None]:
    """Count a refusal raised in the block as ``denied`` (the policy), ``limited`` (too many) or ``refused``
    (anything else a user asked for that is not allowed), and let it go on to the edge that answers it."""
    try:
        yield
    except PolicyDenied:
        count('denied')
        raise
    except TooManyRequests:
        count('limited')
        raise
    except RequestError:
        count('refused')
        raise
