"""SIGTERM stops ``jit worker`` promptly, every time.

RQ's teardown unsubscribes from its pubsub channel and joins the pubsub thread; with redis-py 8 that join has
no timeout, and when the thread read the unsubscribe reply first it waits up to a minute for a subscription
that never comes. A process manager would kill the worker first, in the middle of whatever it was doing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.redis]

ROOT = Path(__file__).parents[2]


def test_sigterm_stops_the_worker_within_seconds_every_time(start_jit, redis_url):
    """Twelve starts and stops of the worker: each stops within 5 s of SIGTERM."""
    jit = start_jit(redis_url)
    took = []
    for _ in range(12):
        worker = jit.worker
        asked = time.monotonic()
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)
        took.append(round(time.monotonic() - asked, 2))
        jit.start_worker()
    assert max(took) < 5, took


#: A worker loop whose log handler receives SIGTERM while RQ writes "cleaning registries": Python runs the signal
#: handler inside ``logging.Handler.emit``, whose ``except Exception`` swallows what the handler raises.
_STOP_WHILE_LOGGING = """
import logging, os, signal, sys
import redis
from workers.supervise import work_forever

class SigtermWhileLogging(logging.Handler):
    def emit(self, record):
        try:
            if 'cleaning registries' in record.getMessage():
                os.kill(os.getpid(), signal.SIGTERM)
                sum(range(10_000))  # bytecodes: the signal handler runs here, inside emit
        except Exception:
            self.handleError(record)

logging.getLogger('rq.worker').addHandler(SigtermWhileLogging())
connect = lambda: redis.Redis.from_url(sys.argv[1], socket_timeout=30, socket_connect_timeout=5)
sys.exit(work_forever(['stops-while-logging'], connect=connect, logging_level='INFO'))
"""


def test_a_stop_asked_while_rq_logs_is_not_lost(redis_url, tmp_path):
    """SIGTERM arriving while RQ writes a log line stops the worker, not a minute later (or never).

    RQ's handler raises ``StopRequested`` in whatever the main thread runs; in a log call, ``logging`` catches
    it as a failed write, and RQ's loop went on to wait for jobs with its handlers already spent.
    """
    log = tmp_path / 'worker.log'
    with log.open('wb') as out:  # a file, not a pipe: RQ's scheduler process would hold a pipe open
        proc = subprocess.Popen([sys.executable, '-c', _STOP_WHILE_LOGGING, redis_url], stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)  # fmt: skip
    try:
        code = proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        pytest.fail('the worker did not stop:\n' + log.read_text(errors='replace')[-3000:])
    assert code == 0, log.read_text(errors='replace')[-3000:]  # a stop, not a crash
