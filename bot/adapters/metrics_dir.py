"""Where ``jit worker``'s processes keep their metrics: set up before prometheus-client is imported.

prometheus-client chooses, when it is first imported, between keeping values in memory and writing them to
``PROMETHEUS_MULTIPROC_DIR`` (one file per process, added up by the worker's ``/metrics``). So this module
imports nothing of it, and the worker calls :func:`use_worker_dir` first thing.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile


def use_worker_dir() -> str:
    """A fresh directory of this worker's in ``PROMETHEUS_MULTIPROC_DIR`` (its child processes inherit it)."""
    if 'prometheus_client' in sys.modules:
        raise RuntimeError('use_worker_dir() must come before prometheus_client is imported')
    path = tempfile.mkdtemp(prefix='jit-metrics-')
    os.environ['PROMETHEUS_MULTIPROC_DIR'] = path
    return path


def drop_worker_dir(path: str) -> None:
    """Remove it when the worker stops (the files are of no use to the next one)."""
    shutil.rmtree(path, ignore_errors=True)
