"""The processes ``jit worker`` runs beside its own: one that dies is started again, one asked to stop is not.

A SIGTERM to the worker's process group reaches a child at times before the worker itself: the child ends
with 0, and starting it again then would leave a process nobody stops, which the worker waits for at exit.
"""

from __future__ import annotations

import time

from tests.support import child_mains
from workers.supervise import ChildProcess


class Crashes(ChildProcess):
    main = staticmethod(child_mains.crashes)
    name = 'test-crashes'


class StopsAsAsked(ChildProcess):
    main = staticmethod(child_mains.stops_as_asked)
    name = 'test-stops'


def test_a_child_that_dies_is_started_again():
    child = Crashes({}, policy=dict)
    child.start()
    try:
        first = child._proc.pid
        deadline = time.monotonic() + 20
        while child._proc.pid == first and time.monotonic() < deadline:
            time.sleep(0.1)
        assert child._proc.pid != first, 'not started again'
    finally:
        child.stop()
    assert not child._proc.is_alive()


def test_a_child_that_stopped_as_asked_is_not_started_again_when_its_worker_stops_too():
    child = StopsAsAsked({}, policy=dict)
    child.start()
    first = child._proc
    first.join(20)
    assert first.exitcode == 0
    time.sleep(1.5)  # the supervisor has seen it end, and waits to see whether the worker stops too
    child.stop()
    time.sleep(2.5)
    assert child._proc is first, 'started again while its worker was stopping'
