"""Whether a test failed, for fixtures that print their processes' logs only then.

A conftest that wants it imports the hook by name (``from tests.support.reports import
pytest_runtest_makereport``): pytest then keeps each phase's report on the test item, and a fixture's
teardown asks :func:`call_failed`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from tests.support.processes import JitProcesses

__all__ = ['call_failed', 'pytest_runtest_makereport', 'stop_and_show_logs']


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Keep the report of each phase on the item (``rep_setup``, ``rep_call``, ``rep_teardown``)."""
    report = yield
    setattr(item, f'rep_{report.when}', report)
    return report


def call_failed(request: pytest.FixtureRequest) -> bool:
    """The test body ran and failed (with the hook above imported into the suite's conftest)."""
    rep = getattr(request.node, 'rep_call', None)
    return rep is not None and bool(rep.failed)


def stop_and_show_logs(procs: JitProcesses, request: pytest.FixtureRequest) -> None:
    """Stop jit's processes; print their logs when the test failed, where pytest shows them."""
    procs.stop()
    if call_failed(request):
        print(procs.dump_logs())
