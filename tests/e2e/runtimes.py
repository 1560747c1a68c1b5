"""Offline runtimes of their own, with extra command-line options, for tests that need them.

They are RuntimeProcess of conftest.py, so they start, log and stop as the
session's runtime does.
"""

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from tools.local_runtime import free_port

from .conftest import RuntimeProcess


@contextmanager
def running_runtime(*options: str):
    """Start an offline runtime with ``options`` on a free port; stop it and delete its state afterwards.

    The state folder is kept when E2E_KEEP_STATE is set, as for the session's runtime.
    """
    persist_dir = Path(tempfile.mkdtemp(prefix="e2e-own-runtime-"))
    runtime = RuntimeProcess("offline", persist_dir, free_port(), options=options)
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()
        if os.environ.get("E2E_KEEP_STATE") is None:
            shutil.rmtree(persist_dir, ignore_errors=True)
