"""Fixtures that run the whole Worker on 127.0.0.1 for end-to-end tests.

By default the tests start the offline runtime (``npm run dev:offline``, in
tools/offline): the Worker in Pyodide on Node with Miniflare's KV and Queues.
With ``E2E_RUNTIME=wrangler`` they start ``.venv/bin/pywrangler dev`` instead,
and skip when it cannot download what it needs, as on a machine without
internet. ``E2E_ENTRY`` names a Python entry file to run in place of
wrangler.toml's ``main`` (offline runtime only).

Each session gets its own persist folder and short delays through vars, and
the runtime's output goes to ``runtime.log`` in that folder. The folder is
deleted at the end unless ``E2E_KEEP_STATE`` is set or the runtime exited by
itself.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Short delays keep a run of a few hundred jobs within a minute or two.
E2E_VARS = {"RETRY_BASE_DELAY_SECONDS": "1", "WORK_DURATION_MS": "50"}

# The offline runtime starts in a few seconds, while pywrangler dev may first
# install Python packages.
START_TIMEOUT_SECONDS = {"offline": 60, "wrangler": 300}
STOP_TIMEOUT_SECONDS = 15

READY_LINE = re.compile(r"Ready on (http://[^\s]+)")
# What a download failure looks like in the output of pywrangler, uv and
# workerd (whose Pyodide bundle comes from a Cloudflare host).
DOWNLOAD_FAILURE = re.compile(
    r"DNS lookup failed|dns error|failed to lookup address|Name or service not known"
    r"|getaddrinfo|ENOTFOUND|EAI_AGAIN|Failed to download|pyodide-capnp-bin",
    re.IGNORECASE,
)


class RuntimeProcess:
    """One runtime serving the Worker on a fixed 127.0.0.1 port, restartable with its state."""

    def __init__(self, kind: str, persist_dir: Path, port: int, entry: str | None = None):
        self.kind = kind
        self.persist_dir = persist_dir
        self.port = port
        self.entry = entry
        self.log_path = persist_dir / "runtime.log"
        self.base_url = f"http://127.0.0.1:{port}"
        self._process: subprocess.Popen | None = None
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None

    def command(self) -> list[str]:
        if self.kind == "wrangler":
            command = [str(ROOT / ".venv" / "bin" / "pywrangler"), "dev", "--ip", "127.0.0.1"]
            command += ["--port", str(self.port), "--persist-to", str(self.persist_dir / "state")]
            for name, value in E2E_VARS.items():
                command += ["--var", f"{name}:{value}"]  # wrangler's form is NAME:VALUE
            return command

        command = ["node", str(ROOT / "tools" / "offline" / "cli.mjs"), "--port", str(self.port)]
        command += ["--persist-to", str(self.persist_dir / "state")]
        for name, value in E2E_VARS.items():
            command += ["--var", f"{name}={value}"]
        if self.entry:
            command += ["--entry", self.entry]
        return command

    def start(self) -> None:
        """Start the runtime and wait for its Ready line.

        Skips the test when pywrangler dev failed to download what it needs,
        and fails it when the runtime stopped or timed out for another reason.
        """
        environment = dict(os.environ, WRANGLER_SEND_METRICS="false", CLOUDFLARE_CF_FETCH_ENABLED="false")
        self._lines = []
        self._ready = threading.Event()
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
            start_new_session=True,  # a signal then reaches workerd too
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()

        deadline = time.monotonic() + START_TIMEOUT_SECONDS[self.kind]
        while not self._ready.wait(0.1):
            if self._process.poll() is not None:
                self._reader.join(5)
                self._fail_start(f"exited with status {self._process.returncode} before it was ready")
            if time.monotonic() > deadline:
                self.stop()
                self._fail_start(f"was not ready after {START_TIMEOUT_SECONDS[self.kind]} s")

    def stop(self) -> None:
        """Stop the runtime with SIGTERM, or SIGKILL after STOP_TIMEOUT_SECONDS."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT_SECONDS)
        if self._reader is not None:
            self._reader.join(5)

    def restart(self) -> None:
        """Stop the runtime and start it again on the same port with the same persist folder."""
        self.stop()
        self.start()

    def exit_status(self) -> int | None:
        """Return the exit status if the process has exited, else None."""
        return None if self._process is None else self._process.poll()

    def output_tail(self, lines: int = 40) -> str:
        return "".join(self._lines[-lines:])

    def _read_output(self) -> None:
        with self.log_path.open("a") as log:
            for line in self._process.stdout:
                log.write(line)
                log.flush()
                self._lines.append(line)
                if READY_LINE.search(line):
                    self._ready.set()

    def _fail_start(self, reason: str) -> None:
        output = self.output_tail()
        if self.kind == "wrangler":
            failure = DOWNLOAD_FAILURE.search(output)
            if failure is not None:
                line = next(line for line in output.splitlines() if failure.group(0) in line)
                pytest.skip(
                    "pywrangler dev could not download what it needs (this machine has no internet); "
                    f"it printed: {line.strip()}"
                )
        pytest.fail(f"{self.kind} runtime {reason}; full log in {self.log_path}; last lines:\n{output}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def runtime():
    """The running runtime of this session; see RuntimeProcess."""
    kind = os.environ.get("E2E_RUNTIME", "offline")
    if kind not in START_TIMEOUT_SECONDS:
        pytest.fail(f"E2E_RUNTIME must be offline or wrangler, got {kind!r}")
    if kind == "offline" and shutil.which("node") is None:
        pytest.fail("the offline runtime needs node on PATH; scripts/setup installs the rest")
    if kind == "wrangler" and shutil.which("uv") is None:
        # pywrangler runs uv to vendor the Worker's packages before wrangler dev starts.
        pytest.fail("pywrangler dev needs uv on PATH, which scripts/setup does not install; pip install uv")

    persist_dir = Path(tempfile.mkdtemp(prefix="e2e-runtime-"))
    process = RuntimeProcess(kind, persist_dir, _free_port(), os.environ.get("E2E_ENTRY"))
    process.start()
    yield process

    exit_status = process.exit_status()
    process.stop()
    if exit_status is not None:
        pytest.fail(
            f"the {kind} runtime exited by itself with status {exit_status} during the tests; "
            f"its log is in {process.log_path}; last lines:\n{process.output_tail()}"
        )
    if os.environ.get("E2E_KEEP_STATE") is None:
        shutil.rmtree(persist_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def base_url(runtime) -> str:
    """URL of the Worker, e.g. http://127.0.0.1:40123, for the whole session."""
    return runtime.base_url


@pytest.fixture
def restart_runtime(runtime):
    """A function that restarts the runtime with the same port and state; base_url stays valid."""
    return runtime.restart
