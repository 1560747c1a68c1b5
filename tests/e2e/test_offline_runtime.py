"""The offline runtime's own HTTP handling and command line, on a runtime of this module's own.

Each test sends what once broke the runtime or reached the Worker wrongly:
methods that Node cannot carry, request bodies of megabytes that the Worker
rejects unread, ``Expect: 100-continue``, a misspelled ``--var`` and a port
in use. After each request the runtime must still serve the next one.
"""

import gzip
import http.client
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tools.local_runtime import ROOT, offline_command

from .runtimes import running_runtime

API_TOKEN = "offline-runtime-token-3b9e"
AUTHORIZATION = {"Authorization": f"Bearer {API_TOKEN}"}
MISSPELLED_VAR = "FAILURE_PERCENTAGE"
DECLARED_VARS = "FAILURE_PERCENT, MAX_ATTEMPTS, RETRY_BASE_DELAY_SECONDS, WORK_DURATION_MS"
MAX_BODY_BYTES = 16 * 1024
MIB = 1024 * 1024
# Each request gets this long; a runtime that hangs fails the test instead of stalling it.
TIMEOUT_SECONDS = 20
FAILED_START_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="module")
def own_runtime():
    """An offline runtime with a misspelled var and API_TOKEN, neither of which is in wrangler.toml's [vars]."""
    with running_runtime("--var", f"{MISSPELLED_VAR}=100", "--var", f"API_TOKEN={API_TOKEN}") as runtime:
        yield runtime


def _connect(runtime) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", runtime.port, timeout=TIMEOUT_SECONDS)


def _request(runtime, method: str, path: str, body=None, headers=None, chunked: bool = False):
    """Send one request on a new connection and return its status, headers and body."""
    connection = _connect(runtime)
    try:
        connection.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def _assert_serves_next_request(runtime) -> None:
    status, _, raw = _request(runtime, "GET", "/jobs?limit=1")
    assert status == 200, raw
    assert runtime.exit_status() is None, runtime.output_tail()


def _job_body(size: int) -> bytes:
    """Return a valid job body of exactly ``size`` bytes, padded with spaces."""
    start = b'{"type": "fetch", "target": "padded.png"'
    return start + b" " * (size - len(start) - 1) + b"}"


def _error_code(raw: bytes) -> str:
    return json.loads(raw)["code"]


def test_trace_gets_501_from_runtime(own_runtime):
    status, headers, raw = _request(own_runtime, "TRACE", "/jobs")

    assert status == 501, raw
    assert headers["Content-Type"].startswith("text/plain")
    assert raw.decode().startswith("TRACE is not supported by the offline runtime")
    _assert_serves_next_request(own_runtime)


# BAN reaches the Worker only because the edge worker sends it to Node as
# POST: Node's HTTP parser rejects it with 400.
@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE", "OPTIONS", "PROPFIND", "PURGE", "QUERY", "BAN"])
def test_unknown_method_reaches_worker(own_runtime, method):
    status, headers, raw = _request(own_runtime, method, "/jobs")

    assert status == 405, raw
    assert _error_code(raw) == "METHOD_NOT_ALLOWED"
    assert headers["Allow"] == "GET, HEAD, POST"
    _assert_serves_next_request(own_runtime)


def test_ban_with_body_reaches_worker(own_runtime):
    status, _, raw = _request(own_runtime, "BAN", "/jobs", body=b"x" * 100)

    assert status == 405, raw
    assert _error_code(raw) == "METHOD_NOT_ALLOWED"
    _assert_serves_next_request(own_runtime)


# workerd rejects these itself, as in wrangler dev, before any worker runs.
# It fails CONNECT with "Incoming CONNECT on a worker not supported", and
# returns 501 for a method that its HTTP parser does not know.
@pytest.mark.parametrize(("method", "expected_status"), [("CONNECT", 500), ("TRACK", 501), ("FOO", 501)])
def test_method_workerd_rejects(own_runtime, method, expected_status):
    status, _, raw = _request(own_runtime, method, "/jobs")

    assert status == expected_status, raw
    _assert_serves_next_request(own_runtime)


def _post_until_answered(runtime, body: bytes, chunked: bool, accept_encoding: str) -> tuple[int, bytes]:
    """POST ``body`` in pieces, stop sending once the response starts (as curl does), and return status and body.

    workerd resets a connection whose client keeps sending megabytes after
    an early response, so a client that sends everything first may never
    read the response.
    """
    piece_bytes = 64 * 1024
    connection = _connect(runtime)
    try:
        connection.putrequest("POST", "/jobs", skip_accept_encoding=True)
        connection.putheader("Authorization", AUTHORIZATION["Authorization"])
        connection.putheader("Accept-Encoding", accept_encoding)
        if chunked:
            connection.putheader("Transfer-Encoding", "chunked")
        else:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        try:
            for start in range(0, len(body), piece_bytes):
                if select.select([connection.sock], [], [], 0)[0]:
                    break  # the response has started
                piece = body[start:start + piece_bytes]
                connection.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            else:
                if chunked:
                    connection.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the response may still be readable
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()

    if response.headers["Content-Encoding"] == "gzip":
        raw = gzip.decompress(raw)
    return response.status, raw


@pytest.mark.parametrize("size", [2 * MIB, 10 * MIB], ids=["2MiB", "10MiB"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("accept_encoding", ["identity", "gzip"])
def test_large_body_gets_413(own_runtime, size, chunked, accept_encoding):
    status, raw = _post_until_answered(own_runtime, _job_body(size), chunked, accept_encoding)

    assert status == 413, raw[:500]
    assert _error_code(raw) == "PAYLOAD_TOO_LARGE"
    _assert_serves_next_request(own_runtime)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_413_after_whole_body_sent(own_runtime, chunked):
    """The rest of a body that the Worker rejected unread must not break the next request."""
    body = _job_body(2 * MIB)
    if chunked:
        body = iter([body[start:start + 64 * 1024] for start in range(0, len(body), 64 * 1024)])

    status, headers, raw = _request(own_runtime, "POST", "/jobs", body=body, headers=AUTHORIZATION, chunked=chunked)

    assert status == 413, raw[:500]
    assert headers["Content-Type"].startswith("application/json")
    assert _error_code(raw) == "PAYLOAD_TOO_LARGE"
    _assert_serves_next_request(own_runtime)


def test_expect_continue_body_reaches_worker(own_runtime):
    body = json.dumps({"type": "fetch", "target": "expect-continue.png"}).encode()
    headers = {**AUTHORIZATION, "Expect": "100-continue", "Content-Type": "application/json"}

    status, _, raw = _request(own_runtime, "POST", "/jobs", body=body, headers=headers)

    assert status == 201, raw
    assert json.loads(raw)["target"] == "expect-continue.png"
    _assert_serves_next_request(own_runtime)


def test_expect_continue_large_body_gets_413(own_runtime):
    headers = {**AUTHORIZATION, "Expect": "100-continue"}

    status, _, raw = _request(own_runtime, "POST", "/jobs", body=_job_body(2 * MIB), headers=headers)

    assert status == 413, raw[:500]
    assert _error_code(raw) == "PAYLOAD_TOO_LARGE"
    _assert_serves_next_request(own_runtime)


def test_body_at_limit_still_accepted(own_runtime):
    status, _, raw = _request(own_runtime, "POST", "/jobs", body=_job_body(MAX_BODY_BYTES), headers=AUTHORIZATION)

    assert status == 201, raw
    _assert_serves_next_request(own_runtime)


def test_undeclared_var_warns_with_known_vars(own_runtime):
    lines = own_runtime.output_tail(500).splitlines()
    misspelled = [line for line in lines if f"--var {MISSPELLED_VAR}:" in line]
    token = [line for line in lines if "--var API_TOKEN:" in line]

    assert len(misspelled) == 1, lines
    assert misspelled[0].startswith("[offline:warn]")
    assert "did you mean FAILURE_PERCENT?" in misspelled[0]
    assert f"The vars there are {DECLARED_VARS}." in misspelled[0]
    assert len(token) == 1, lines
    assert "did you mean" not in token[0]
    # E2E_VARS of conftest.py sets declared vars only.
    assert not [line for line in lines if "--var WORK_DURATION_MS:" in line]


def test_undeclared_var_still_set(own_runtime):
    status, _, raw = _request(own_runtime, "POST", "/jobs", body=_job_body(100))

    assert status == 401, raw
    assert _error_code(raw) == "UNAUTHORIZED"


def _start_on_port(port: int, *options: str) -> subprocess.CompletedProcess:
    """Start a second runtime on ``port``, which is in use, and return how it exited."""
    persist_dir = tempfile.mkdtemp(prefix="e2e-port-in-use-")
    command = offline_command(port, persist_dir, options=options)
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so a kill reaches its workerd too
    )
    try:
        stdout, stderr = process.communicate(timeout=FAILED_START_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"the runtime on a port in use did not exit within {FAILED_START_TIMEOUT_SECONDS} s:\n{stdout}{stderr}")
    finally:
        shutil.rmtree(persist_dir, ignore_errors=True)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_port_in_use_message_alone(own_runtime):
    result = _start_on_port(own_runtime.port)
    output = result.stdout + result.stderr

    assert result.returncode == 1, output
    assert output.strip().splitlines()[0] == (
        f"The offline runtime failed to start: Address already in use (127.0.0.1:{own_runtime.port}). Please check "
        "that you are not already running a server on this address or specify a different port with --port."
    )
    assert len(output.strip().splitlines()) == 1, output
    _assert_serves_next_request(own_runtime)


def test_port_in_use_debug_shows_workerd_output(own_runtime):
    result = _start_on_port(own_runtime.port, "--debug")
    output = result.stdout + result.stderr

    assert result.returncode == 1, output
    assert "kj::Exception" in output
    assert "ERR_ADDRESS_IN_USE" in output


# Node v20.20.2 stopped about half of the fresh runtimes that got this many
# POSTs from this many threads while the first queue batch ran, until
# v8-flags.mjs turned off TurboFan's inlining.
CONCURRENT_POSTS = 400
CONCURRENT_CLIENTS = 50


def test_runtime_survives_concurrent_posts():
    def post(number: int) -> int | str:
        body = json.dumps({"type": "fetch", "target": f"concurrent-{number}.png"}).encode()
        try:
            status, _, _ = _request(runtime, "POST", "/jobs", body, {"Content-Type": "application/json"})
        except OSError as error:  # the runtime stopped
            return type(error).__name__
        return status

    with running_runtime("--var", "WORK_DURATION_MS=20") as runtime:
        with ThreadPoolExecutor(max_workers=CONCURRENT_CLIENTS) as pool:
            statuses = Counter(pool.map(post, range(CONCURRENT_POSTS)))

        assert runtime.exit_status() is None, runtime.fatal_error()
        assert statuses == {201: CONCURRENT_POSTS}
