"""Offline runtimes of their own, with extra command-line options, for tests that need them.

They reuse RuntimeProcess of conftest.py, so they start, log and stop as the
session's runtime does.
"""

import os
import shutil
import signal
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .conftest import RuntimeProcess


class RuntimeWithOptions(RuntimeProcess):
    """The offline runtime with ``options`` added to its command line, e.g. --fault-* or --var."""

    def __init__(self, persist_dir: Path, port: int, options: list[str]):
        super().__init__("offline", persist_dir, port)
        self.options = list(options)

    def command(self) -> list[str]:
        # Later --var options override earlier ones, so these win over E2E_VARS.
        return super().command() + self.options

    def stop(self) -> None:
        super().stop()
        # Node killed by a fatal error leaves Miniflare's workerd running in
        # the runtime's process group, which RuntimeProcess.stop skips once
        # Node has exited.
        if self._process is not None:
            try:
                os.killpg(self._process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_runtime(*options: str):
    """Start an offline runtime with ``options`` on a free port; stop it and delete its state afterwards.

    The state folder is kept when E2E_KEEP_STATE is set, as for the session's runtime.
    """
    persist_dir = Path(tempfile.mkdtemp(prefix="e2e-own-runtime-"))
    runtime = RuntimeWithOptions(persist_dir, free_port(), list(options))
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()
        if os.environ.get("E2E_KEEP_STATE") is None:
            shutil.rmtree(persist_dir, ignore_errors=True)
