"""Start and stop the offline runtime (tools/offline) on 127.0.0.1 for a reliability run."""

import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = re.compile(r"Ready on (http://127\.0\.0\.1:\d+)")
INJECTED_FAULT = re.compile(r"injected fault ([a-z0-9-]+):")
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 15


def count_injected_faults(log_text: str) -> Counter:
    """Count the faults the runtime logged as injected, by fault name."""
    return Counter(INJECTED_FAULT.findall(log_text))


class OfflineRuntime:
    """One offline runtime on a free 127.0.0.1 port, with its output in ``log_path``.

    ``options`` go to tools/offline/cli.mjs after --port and --persist-to,
    for example ``["--var", "WORK_DURATION_MS=20", "--fault-kv-read", "0.1"]``.
    """

    def __init__(self, persist_dir: Path, options: list[str]):
        self.persist_dir = persist_dir
        self.options = list(options)
        self.log_path = persist_dir / "runtime.log"
        self.base_url: str | None = None
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()

    def command(self) -> list[str]:
        return [
            "node", str(ROOT / "tools" / "offline" / "cli.mjs"),
            "--port", "0",
            "--persist-to", str(self.persist_dir / "state"),
            *self.options,
        ]

    def start(self) -> None:
        """Start the runtime and wait for its Ready line; raise RuntimeError when it exits or times out."""
        self.persist_dir.mkdir(parents=True, exist_ok=True)
        environment = dict(os.environ, WRANGLER_SEND_METRICS="false")
        with self.log_path.open("a") as log:
            log.write(f"$ {' '.join(self.command())}\n")
        self._process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # so that a signal reaches its workerd too
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()

        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._ready.wait(0.1):
            if self._process.poll() is not None:
                raise RuntimeError(f"the offline runtime exited with status {self._process.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the offline runtime was not ready after {START_TIMEOUT_SECONDS} s; see {self.log_path}")

    def stop(self) -> None:
        """Stop the runtime with SIGTERM, or SIGKILL after STOP_TIMEOUT_SECONDS.

        The signal goes to the runtime's process group even when Node has
        exited: Node killed by a fatal error leaves Miniflare's workerd
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
        return None if self._process is None else self._process.poll()

    def fatal_error(self) -> str | None:
        """Describe how the runtime stopped by itself, or return None while it runs."""
        status = self.exit_status()
        if status is None:
            return None
        log = self.log_path.read_text(errors="replace")
        fatal = re.search(r"# (Fatal error.*)\n#\s*(.+)", log)
        details = f": {fatal.group(1).strip()}: {fatal.group(2).strip()}" if fatal else ""
        return f"exit status {status}{details}"

    def injected_faults(self) -> Counter:
        return count_injected_faults(self.log_path.read_text(errors="replace"))

    def _read_output(self) -> None:
        with self.log_path.open("a") as log:
            for line in self._process.stdout:
                log.write(line)
                log.flush()
                match = READY_LINE.search(line)
                if match and not self._ready.is_set():
                    self.base_url = match.group(1)
                    self._ready.set()

    def __enter__(self) -> "OfflineRuntime":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
