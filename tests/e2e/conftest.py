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
import tempfile
from pathlib import Path

import pytest

from tools.local_runtime import ROOT, LocalRuntime, RuntimeStartError, free_port, offline_command

# Short delays keep a run of a few hundred jobs within a minute or two.
E2E_VARS = {"RETRY_BASE_DELAY_SECONDS": "1", "WORK_DURATION_MS": "50"}

# The offline runtime starts in a few seconds, while pywrangler dev may first
# install Python packages.
START_TIMEOUT_SECONDS = {"offline": 60, "wrangler": 300}

# What a download failure looks like in the output of pywrangler, uv and
# workerd (whose Pyodide bundle comes from a Cloudflare host).
DOWNLOAD_FAILURE = re.compile(
    r"DNS lookup failed|dns error|failed to lookup address|Name or service not known"
    r"|getaddrinfo|ENOTFOUND|EAI_AGAIN|Failed to download|pyodide-capnp-bin",
    re.IGNORECASE,
)


class RuntimeProcess(LocalRuntime):
    """One runtime serving the Worker on a fixed 127.0.0.1 port, restartable with its state."""

    def __init__(self, kind: str, persist_dir: Path, port: int, entry: str | None = None, options=()):
        if kind == "wrangler":
            command = [str(ROOT / ".venv" / "bin" / "pywrangler"), "dev", "--ip", "127.0.0.1"]
            command += ["--port", str(port), "--persist-to", str(persist_dir / "state")]
            for name, value in E2E_VARS.items():
                command += ["--var", f"{name}:{value}"]  # wrangler's form is NAME:VALUE
        else:
            entry_options = ["--entry", entry] if entry else []
            command = offline_command(port, persist_dir / "state", E2E_VARS, [*entry_options, *options])
        super().__init__(command, persist_dir / "runtime.log", f"{kind} runtime", START_TIMEOUT_SECONDS[kind])
        self.kind = kind
        self.persist_dir = persist_dir
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        """Start the runtime and wait for its Ready line.

        Skips the test when pywrangler dev failed to download what it needs,
        and fails it when the runtime stopped or timed out for another reason.
        """
        super().start()
        try:
            self.wait_ready()
        except RuntimeStartError as error:
            if self.kind == "wrangler":
                failure = DOWNLOAD_FAILURE.search(error.output_tail)
                if failure is not None:
                    line = next(line for line in error.output_tail.splitlines() if failure.group(0) in line)
                    pytest.skip(
                        "pywrangler dev could not download what it needs (this machine has no internet); "
                        f"it printed: {line.strip()}"
                    )
            pytest.fail(str(error))

    def restart(self) -> None:
        """Stop the runtime and start it again on the same port with the same persist folder."""
        self.stop()
        self.start()


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
        pytest.fail("pywrangler dev needs uv on PATH; scripts/setup installs it in .venv/bin, so put that on PATH")

    persist_dir = Path(tempfile.mkdtemp(prefix="e2e-runtime-"))
    process = RuntimeProcess(kind, persist_dir, free_port(), os.environ.get("E2E_ENTRY"))
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
