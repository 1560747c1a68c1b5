"""Fixtures for the browser tests: offline runtimes and a headless Chromium page.

Each runtime is the offline runtime (tools/offline) on a free 127.0.0.1
port, with its own state folder and short delays. The page is Debian's
Chromium driven by playwright-core through tests/browser/driver.mjs.
"""

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tools.local_runtime import LocalRuntime, RuntimeStartError, offline_command

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("driver.mjs")
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))

# Short delays: an attempt takes 50 ms and the first backoff 1 s.
FAST_VARS = {"WORK_DURATION_MS": "50", "RETRY_BASE_DELAY_SECONDS": "1"}
STOP_TIMEOUT_SECONDS = 15
# Longer than the driver's own 10 s action timeout, so a stuck action is
# reported by Playwright rather than by this side.
COMMAND_TIMEOUT_SECONDS = 30


class OfflineRuntime(LocalRuntime):
    """The offline runtime on a free port, with its own state folder; `start()` returns without waiting for it."""

    def __init__(self, name: str, variables: dict[str, str]):
        self.state_dir = Path(tempfile.mkdtemp(prefix=f"browser-{name}-"))
        command = offline_command(0, self.state_dir / "state", variables)
        super().__init__(command, self.state_dir / "runtime.log", name=f"{name} offline runtime")
        self.failed_job_id = ""

    def wait_ready(self) -> None:
        """Wait for the Ready line; fail with the runtime's last output if it does not come."""
        try:
            super().wait_ready()
        except RuntimeStartError as error:
            pytest.fail(str(error))


@pytest.fixture(scope="session")
def runtimes():
    """Two runtimes started side by side: `mixed` fails 35 % of attempts, `failing` all of them."""
    if shutil.which("node") is None:
        pytest.fail("the browser tests need node on PATH; scripts/setup installs the rest")
    started = {
        "mixed": OfflineRuntime("mixed", FAST_VARS),
        "failing": OfflineRuntime("failing", {**FAST_VARS, "FAILURE_PERCENT": "100"}),
    }
    try:
        for runtime in started.values():
            runtime.start()
        for runtime in started.values():
            runtime.wait_ready()
        # Enqueued now, this job has failed all its attempts by the time the
        # retry test, the last one, opens it.
        started["failing"].failed_job_id = post_job(started["failing"].base_url, "resize", "photos/always-fails.png")
        yield started
    finally:
        for runtime in started.values():
            runtime.stop()
        for runtime in started.values():
            shutil.rmtree(runtime.state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def mixed_url(runtimes) -> str:
    return runtimes["mixed"].base_url


@pytest.fixture(scope="session")
def failing_url(runtimes) -> str:
    return runtimes["failing"].base_url


@pytest.fixture(scope="session")
def failing_job_id(runtimes) -> str:
    """The id of a job on the `failing` runtime, enqueued as soon as it was ready."""
    return runtimes["failing"].failed_job_id


def post_job(base_url: str, job_type: str, target: str) -> str:
    body = json.dumps({"type": job_type, "target": target}).encode()
    request = urllib.request.Request(f"{base_url}/jobs", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["id"]


class BrowserPage:
    """The Chromium page of driver.mjs; each method sends one command and returns its result."""

    def __init__(self):
        self._process = subprocess.Popen(
            ["node", str(DRIVER)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "CHROMIUM_PATH": str(CHROMIUM)},
        )
        self._replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read_replies, daemon=True).start()

    def call(self, method: str, *args, selector: str | None = None):
        command = {"method": method, "args": list(args)}
        if selector is not None:
            command["selector"] = selector
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()
        try:
            reply = self._replies.get(timeout=COMMAND_TIMEOUT_SECONDS)
        except queue.Empty:
            pytest.fail(f"the browser driver did not reply to {command} within {COMMAND_TIMEOUT_SECONDS} s")
        if reply is None:
            stderr = self._process.stderr.read()
            pytest.fail(f"the browser driver exited during {command}; its stderr:\n{stderr}")
        if not reply["ok"]:
            pytest.fail(f"{command} failed in the browser: {reply['error']}")
        return reply.get("value")

    def goto(self, url: str) -> dict:
        """Open `url`; return the response's status and headers (names in lower case)."""
        return self.call("goto", url)

    def fill(self, selector: str, value: str) -> None:
        self.call("fill", value, selector=selector)

    def select(self, selector: str, value: str) -> None:
        self.call("selectOption", value, selector=selector)

    def click(self, selector: str) -> None:
        self.call("click", selector=selector)

    def text(self, selector: str) -> str:
        """Return the textContent of the first element matching `selector`."""
        return self.call("textContent", selector=f"{selector} >> nth=0")

    def texts(self, selector: str) -> list[str]:
        return self.call("allTextContents", selector=selector)

    def count(self, selector: str) -> int:
        return self.call("count", selector=selector)

    def press(self, selector: str, key: str) -> None:
        self.call("press", key, selector=selector)

    def evaluate(self, expression: str):
        return self.call("evaluate", expression)

    def events(self) -> dict:
        """Return the dialogs, page errors, console errors, CSP violations and requests seen so far."""
        return self.call("events")

    def screenshot(self, path: Path, full_page: bool = False) -> None:
        self.call("screenshot", {"path": str(path), "fullPage": full_page})

    def wait_until(self, condition, timeout: float, description: str):
        """Poll `condition()` until it returns a true value, which is returned; fail after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout} s waiting for {description}; last value: {value!r}")
            time.sleep(0.1)

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.close()
            try:
                self._process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(STOP_TIMEOUT_SECONDS)

    def _read_replies(self) -> None:
        for line in self._process.stdout:
            self._replies.put(json.loads(line))
        self._replies.put(None)


@pytest.fixture(scope="session")
def browser():
    """One Chromium for the session, because a launch took about 2 s on a two-core machine."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing; scripts/setup installs Debian's chromium when run as root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    browser_page = BrowserPage()
    yield browser_page
    browser_page.close()


@pytest.fixture
def page(browser):
    """A fresh 1280x900 page in a new browser context."""
    browser.call("newPage")
    return browser
