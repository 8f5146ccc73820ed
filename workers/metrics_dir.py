"""The directory of prometheus_client's multiprocess mode, made before prometheus_client is imported.

prometheus_client picks multiprocess mode when it is first imported (from ``PROMETHEUS_MULTIPROC_DIR``),
so this module imports nothing of it; ``python -m workers`` calls :func:`prepare_multiprocess_dir`
first thing when a metrics port is set, then imports the app (and :mod:`workers.metrics`).
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Set when this worker made the directory itself (and so removes it at exit).
_OWNED_ENV = "DOCQUEUE_METRICS_DIR_OWNED"


def prepare_multiprocess_dir() -> str:
    """Make ``PROMETHEUS_MULTIPROC_DIR`` usable for one worker, before prometheus_client is imported.

    Given by the deployment (an emptyDir volume): its old ``*.db`` files are removed, since values
    of a previous run would be merged into this one's. Not given: a fresh temporary directory of
    this worker's own, removed by :func:`remove_owned_dir` at exit. Call it from the worker's start
    before importing :mod:`workers.metrics`; it touches no prometheus_client state.
    """
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
    else:
        path = tempfile.mkdtemp(prefix="docqueue-metrics-")
        os.environ[MULTIPROC_ENV] = path
        os.environ[_OWNED_ENV] = path
    return path


def remove_owned_dir() -> None:
    """Remove the directory :func:`prepare_multiprocess_dir` made (only the main process calls this)."""
    path = os.environ.get(_OWNED_ENV)
    if path and path == os.environ.get(MULTIPROC_ENV):
        shutil.rmtree(path, ignore_errors=True)
