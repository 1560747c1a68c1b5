"""Run a local runtime of the Worker as a child process, for tests and the reliability run.

The offline runtime (tools/offline/cli.mjs) and ``pywrangler dev`` both print
``Ready on http://...`` once they serve requests; LocalRuntime waits for that
line and copies all output to a log file.
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OFFLINE_CLI = ROOT / "tools" / "offline" / "cli.mjs"
READY_LINE = re.compile(r"Ready on (http://[^\s]+)")
STOP_TIMEOUT_SECONDS = 15
# Output lines kept in memory for error messages; the log file has all of them.
KEPT_LINES = 2000


class RuntimeStartError(RuntimeError):
    """The runtime exited or timed out before its Ready line."""

    def __init__(self, name: str, reason: str, log_path: Path, output_tail: str):
        super().__init__(f"the {name} {reason}; full log in {log_path}; last lines:\n{output_tail}")
        self.output_tail = output_tail


def offline_command(port: int, persist_dir: Path, variables: dict[str, str] | None = None, options=()) -> list[str]:
    """Return the command that starts the offline runtime on 127.0.0.1:``port`` (0 for a free port).

    Later ``--var`` options override earlier ones, so a ``--var`` in ``options``
    wins over ``variables``.
    """
    command = ["node", str(OFFLINE_CLI), "--port", str(port), "--persist-to", str(persist_dir)]
    for name, value in (variables or {}).items():
        command += ["--var", f"{name}={value}"]
    return command + list(options)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalRuntime:
    """One runtime process started from ``command`` in the repository root, with its output in ``log_path``.

    ``start()`` returns at once so that several runtimes can start side by
    side; ``wait_ready()`` then waits for each. As a context manager it does
    both, and stops the runtime on exit.
    """

    def __init__(self, command: list[str], log_path: Path, name: str = "runtime", start_timeout: float = 60):
        self.command = list(command)
        self.name = name  # for messages, e.g. "offline runtime"
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.base_url = ""
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        self._lines: deque[str] = deque(maxlen=KEPT_LINES)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            log.write(f"$ {' '.join(self.command)}\n")
        self._ready.clear()
        self._lines.clear()
        self._process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=dict(os.environ, WRANGLER_SEND_METRICS="false", CLOUDFLARE_CF_FETCH_ENABLED="false"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # so that a signal to the group reaches workerd too
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()

    def wait_ready(self) -> None:
        """Wait for the Ready line; raise RuntimeStartError when the process exits or start_timeout passes."""
        deadline = time.monotonic() + self.start_timeout
        while not self._ready.wait(0.1):
            if self._process.poll() is not None:
                self._reader.join(5)
                raise RuntimeStartError(self.name, f"exited with status {self._process.returncode} before it was ready",
                                        self.log_path, self.output_tail())
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeStartError(self.name, f"was not ready after {self.start_timeout:g} s",
                                        self.log_path, self.output_tail())

    def stop(self) -> None:
        """Stop the runtime with SIGTERM, or SIGKILL after STOP_TIMEOUT_SECONDS.

        The signal goes to the process group even when the runtime has
        exited: Node stopped by a fatal error leaves Miniflare's workerd
        running, and still listening, in that group.
        """
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT_SECONDS)
        else:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass  # nothing of the group is left
        if self._reader is not None:
            self._reader.join(5)

    def exit_status(self) -> int | None:
        """Return the exit status once the process has exited, else None."""
        return None if self._process is None else self._process.poll()

    def output_tail(self, lines: int = 40) -> str:
        return "".join(list(self._lines)[-lines:])

    def fatal_error(self) -> str | None:
        """Describe how the runtime stopped by itself, with V8's fatal error if it printed one; None while it runs."""
        status = self.exit_status()
        if status is None:
            return None
        log = self.log_path.read_text(errors="replace")
        fatal = re.search(r"# (Fatal error.*)\n#\s*(.+)", log)
        details = f": {fatal.group(1).strip()}: {fatal.group(2).strip()}" if fatal else ""
        return f"exit status {status}{details}"

    def _read_output(self) -> None:
        with self.log_path.open("a") as log:
            for line in self._process.stdout:
                log.write(line)
                log.flush()
                self._lines.append(line)
                ready = READY_LINE.search(line)
                if ready and not self._ready.is_set():
                    self.base_url = ready.group(1)
                    self._ready.set()

    def __enter__(self) -> "LocalRuntime":
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
