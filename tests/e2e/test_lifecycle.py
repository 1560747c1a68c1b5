"""The job lifecycle over HTTP against a running Worker, its queue and its KV.

The failure rule is deterministic per job id and attempt, so each job's final
status and attempt count are known from the id the API returns.
"""

import json
import time
import tomllib
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jobqueue.jobs import LEGAL_TRANSITIONS, JobStatus
from jobqueue.simulation import attempt_fails, predict_outcome

ROOT = Path(__file__).resolve().parents[2]
VARS = tomllib.loads((ROOT / "wrangler.toml").read_text())["vars"]
FAILURE_PERCENT = int(VARS["FAILURE_PERCENT"])
MAX_ATTEMPTS = int(VARS["MAX_ATTEMPTS"])

TERMINAL = {"done", "failed"}
REQUEST_TIMEOUT_SECONDS = 30
# A handful of jobs finishes within seconds; these bounds leave room for a
# loaded two-core machine.
FEW_JOBS_TIMEOUT_SECONDS = 90
# 200 jobs took 37 to 40 s with the offline runtime on a machine with 2 cores.
MANY_JOBS_TIMEOUT_SECONDS = 300
POLL_INTERVAL_SECONDS = 0.1


def request(base_url: str, method: str, path: str, body: bytes | str | None = None, headers=None):
    """Send one request and return (status, headers, parsed JSON body or None)."""
    data = body.encode() if isinstance(body, str) else body
    outgoing = urllib.request.Request(base_url + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(outgoing, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            status, response_headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, response_headers, raw = error.code, error.headers, error.read()
    return status, response_headers, json.loads(raw) if raw else None


def create_job(base_url: str, target: str, job_type: str = "resize") -> dict:
    status, _, body = request(base_url, "POST", "/jobs", json.dumps({"type": job_type, "target": target}))
    assert status == 201, body
    return body


def get_job(base_url: str, job_id: str) -> dict:
    status, _, body = request(base_url, "GET", f"/jobs/{job_id}")
    assert status == 200, body
    return body


def poll_until_terminal(base_url: str, job_id: str, timeout: float) -> list[dict]:
    """Return every record read for the job, the last one terminal; fail after ``timeout``."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(get_job(base_url, job_id))
        if seen[-1]["status"] in TERMINAL:
            return seen
        time.sleep(POLL_INTERVAL_SECONDS)
    pytest.fail(f"job {job_id} is still {seen[-1]['status']} after {timeout} s: {seen[-1]}")


def wait_for_all_terminal(base_url: str, job_ids: set[str], timeout: float) -> dict[str, dict]:
    """Poll the job list (one KV list call a round) until every job is terminal; return summaries."""
    deadline = time.monotonic() + timeout
    summaries = {}
    while time.monotonic() < deadline:
        summaries = {}
        cursor = None
        for _ in range(100):  # pages of 1000; far more than a test session creates
            path = "/jobs?limit=1000" + (f"&cursor={cursor}" if cursor else "")
            status, _, page = request(base_url, "GET", path)
            assert status == 200, page
            summaries.update({job["id"]: job for job in page["jobs"] if job["id"] in job_ids})
            cursor = page["cursor"]
            if cursor is None:
                break
        if len(summaries) == len(job_ids) and all(job["status"] in TERMINAL for job in summaries.values()):
            return summaries
        time.sleep(1)
    unfinished = sorted(job_id for job_id in job_ids if summaries.get(job_id, {}).get("status") not in TERMINAL)
    pytest.fail(f"{len(unfinished)} of {len(job_ids)} jobs not terminal after {timeout} s, e.g. {unfinished[:5]}")


def expected_history(status: str, attempts: int, first_attempt: int = 1) -> list[tuple[str, int]]:
    """Return the (status, attempt) entries of a cycle that ends in ``status`` after ``attempts``."""
    entries = []
    for attempt in range(first_attempt, attempts + 1):
        entries.append(("processing", attempt))
        if attempt < attempts:
            entries.append(("queued", attempt))
    entries.append((status, attempts))
    return entries


def assert_history_complete_and_ordered(job: dict) -> None:
    history = job["history"]
    expected_status, expected_attempts = predict_outcome(job["id"], FAILURE_PERCENT, MAX_ATTEMPTS)

    assert [(entry["status"], entry["attempt"]) for entry in history] == [
        ("queued", 0), *expected_history(expected_status, expected_attempts)
    ]
    for before, after in zip(history, history[1:]):
        assert JobStatus(after["status"]) in LEGAL_TRANSITIONS[JobStatus(before["status"])], history
        assert before["at"] <= after["at"], history  # ISO 8601 UTC with milliseconds sorts as text
    assert history[0]["at"] == job["enqueuedAt"]
    assert history[-1]["at"] == job["updatedAt"]
    for entry in history[2:-1:2]:  # the requeues after failed attempts
        assert entry["error"].startswith("Simulated"), entry
    if job["status"] == "done":
        assert history[-1]["result"] == job["result"]
    else:
        assert history[-1]["error"] == job["error"]


def assert_consistent_with_rule(job: dict) -> None:
    """Check a history that a restart may have cut into against the failure rule.

    A delivery cut short counts as an attempt, as on the platform, so an
    attempt number can be missing from the history (cut before the Worker
    recorded it) or end in a requeue of the consumer's own (cut after). Every
    attempt that ran to an outcome must still have the rule's outcome.
    """
    history = job["history"]
    for before, after in zip(history, history[1:]):
        assert JobStatus(after["status"]) in LEGAL_TRANSITIONS[JobStatus(before["status"])], history
    started = [entry["attempt"] for entry in history if entry["status"] == "processing"]
    assert started == sorted(set(started)), history
    assert all(1 <= attempt <= MAX_ATTEMPTS for attempt in started), history

    for before, after in zip(history, history[1:]):
        ran_to_failure = after["status"] in ("queued", "failed") and after.get("error", "").startswith("Simulated")
        if before["status"] == "processing" and ran_to_failure:
            assert attempt_fails(job["id"], before["attempt"], FAILURE_PERCENT), history
    if job["status"] == "done":
        assert not attempt_fails(job["id"], job["attempts"], FAILURE_PERCENT), history
    elif job["error"].startswith("Simulated"):
        assert job["attempts"] == MAX_ATTEMPTS, history


def test_each_job_reaches_predicted_outcome(base_url):
    jobs = [create_job(base_url, f"lifecycle-{n}.png", "resize" if n % 2 else "fetch") for n in range(8)]
    for job in jobs:
        assert job["status"] == "queued"
        assert job["attempts"] == 0

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        observations = list(pool.map(lambda job: poll_until_terminal(base_url, job["id"], FEW_JOBS_TIMEOUT_SECONDS), jobs))

    for job, seen in zip(jobs, observations):
        final = seen[-1]
        expected_status, expected_attempts = predict_outcome(job["id"], FAILURE_PERCENT, MAX_ATTEMPTS)
        assert final["status"] == expected_status, final
        assert final["attempts"] == expected_attempts, final
        assert_history_complete_and_ordered(final)

        # What polling saw is the recorded history read at successive
        # moments: each observed record is a prefix of the final history.
        for record in seen:
            assert record["history"] == final["history"][: len(record["history"])], record
            assert record["status"] == record["history"][-1]["status"], record


def test_failed_job_retried_manually_runs_new_cycle(base_url):
    # Create jobs until one is predicted to fail all its attempts (0.35 ** 3,
    # about 4.3% of jobs, with wrangler.toml's vars), at most 400 of them.
    for n in range(400):
        job = create_job(base_url, f"manual-retry-{n}")
        if predict_outcome(job["id"], FAILURE_PERCENT, MAX_ATTEMPTS)[0] == "failed":
            break
    else:
        pytest.fail("no job out of 400 was predicted to fail; check FAILURE_PERCENT")
    failed = poll_until_terminal(base_url, job["id"], FEW_JOBS_TIMEOUT_SECONDS)[-1]
    assert failed["status"] == "failed"

    status, _, retried = request(base_url, "POST", f"/jobs/{job['id']}/retry")

    assert status == 202, retried
    assert retried["status"] == "queued"
    assert retried["cycleStart"] == MAX_ATTEMPTS
    final = poll_until_terminal(base_url, job["id"], FEW_JOBS_TIMEOUT_SECONDS)[-1]
    expected = predict_outcome(job["id"], FAILURE_PERCENT, MAX_ATTEMPTS, first_attempt=MAX_ATTEMPTS + 1)
    assert (final["status"], final["attempts"]) == expected
    new_cycle = final["history"][len(failed["history"]):]
    assert [(entry["status"], entry["attempt"]) for entry in new_cycle] == [
        ("queued", MAX_ATTEMPTS), *expected_history(*expected, first_attempt=MAX_ATTEMPTS + 1)
    ]


def test_200_concurrent_jobs_all_finish(base_url):
    count = 200
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        created = list(pool.map(lambda n: create_job(base_url, f"load-{n}.png"), range(count)))
    job_ids = {job["id"] for job in created}
    assert len(job_ids) == count

    summaries = wait_for_all_terminal(base_url, job_ids, MANY_JOBS_TIMEOUT_SECONDS)
    elapsed = time.monotonic() - started

    assert set(summaries) == job_ids  # none is lost
    predicted = {job_id: predict_outcome(job_id, FAILURE_PERCENT, MAX_ATTEMPTS) for job_id in job_ids}
    for job_id, summary in summaries.items():
        assert 1 <= summary["attempts"] <= MAX_ATTEMPTS, summary
        assert (summary["status"], summary["attempts"]) == predicted[job_id], summary

    # Every attempt fails with probability p, so a job fails with p ** MAX_ATTEMPTS.
    # Allow four standard deviations of the binomial count around the mean.
    failed = sum(1 for summary in summaries.values() if summary["status"] == "failed")
    p_failed = (FAILURE_PERCENT / 100) ** MAX_ATTEMPTS
    mean = count * p_failed
    deviation = (count * p_failed * (1 - p_failed)) ** 0.5
    assert abs(failed - mean) <= 4 * deviation + 1, f"{failed} of {count} failed, expected about {mean:.1f}"

    # The records behind the summaries agree with them.
    with ThreadPoolExecutor(max_workers=16) as pool:
        records = list(pool.map(lambda job_id: get_job(base_url, job_id), sorted(job_ids)))
    for record in records:
        assert (record["status"], record["attempts"]) == predicted[record["id"]], record
        assert_history_complete_and_ordered(record)
    print(f"{count} jobs finished in {elapsed:.1f} s, {failed} failed")


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), [
    ("GET", "/nope", None, 404, "NOT_FOUND"),
    ("GET", "/jobs/00000000-0000-4000-8000-000000000000", None, 404, "NOT_FOUND"),
    ("GET", "/jobs/not-a-job-id", None, 404, "NOT_FOUND"),
    ("POST", "/jobs/00000000-0000-4000-8000-000000000000/retry", None, 404, "NOT_FOUND"),
    ("POST", "/jobs", "{", 400, "INVALID_BODY"),
    ("POST", "/jobs", "", 400, "INVALID_BODY"),
    ("POST", "/jobs", "[]", 400, "INVALID_BODY"),
    ("POST", "/jobs", b"\xef\xbb\xbf{}", 400, "INVALID_BODY"),
    ("POST", "/jobs", '{"type": "delete", "target": "a"}', 400, "INVALID_TYPE"),
    ("POST", "/jobs", '{"type": "fetch", "target": ""}', 400, "INVALID_TARGET"),
    ("POST", "/jobs", json.dumps({"type": "fetch", "target": "a" * 501}), 400, "INVALID_TARGET"),
    ("GET", "/jobs?status=lost", None, 400, "INVALID_QUERY"),
    ("GET", "/jobs?limit=0", None, 400, "INVALID_QUERY"),
    ("GET", "/jobs?limit=1001", None, 400, "INVALID_QUERY"),
])
def test_error_response(base_url, method, path, body, status, code):
    answered, headers, answer = request(base_url, method, path, body)

    assert answered == status, answer
    assert headers["Content-Type"].startswith("application/json")
    assert answer["code"] == code
    assert isinstance(answer["error"], str)
    assert answer["error"]


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PUT", "/jobs", "GET, HEAD, POST"),
    ("DELETE", "/jobs/00000000-0000-4000-8000-000000000000", "GET, HEAD"),
    ("GET", "/jobs/00000000-0000-4000-8000-000000000000/retry", "POST"),
    ("POST", "/api", "GET, HEAD"),
])
def test_wrong_method_is_405_with_allow(base_url, method, path, allow):
    status, headers, answer = request(base_url, method, path)

    assert status == 405, answer
    assert answer["code"] == "METHOD_NOT_ALLOWED"
    assert headers["Allow"] == allow


def test_api_description_is_json(base_url):
    status, headers, answer = request(base_url, "GET", "/api")

    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert "POST /jobs" in answer["endpoints"]


def test_body_over_limit_is_413(base_url):
    raw = json.dumps({"type": "fetch", "target": "a", "padding": "x" * 16 * 1024})

    status, _, answer = request(base_url, "POST", "/jobs", raw)

    assert status == 413, answer
    assert answer["code"] == "PAYLOAD_TOO_LARGE"


def test_chunked_body_over_limit_is_413(base_url):
    # Without Content-Length the Worker has to count the streamed bytes itself.
    chunks = iter([b'{"type": "fetch", "target": "a", "padding": "', b"x" * 20_000, b'"}'])
    outgoing = urllib.request.Request(
        base_url + "/jobs", data=chunks, method="POST", headers={"Transfer-Encoding": "chunked"}
    )
    try:
        with urllib.request.urlopen(outgoing, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()

    assert status == 413, raw
    assert json.loads(raw)["code"] == "PAYLOAD_TOO_LARGE"


def test_retry_of_unfinished_job_is_409(base_url):
    job = create_job(base_url, "conflict.png")

    status, _, answer = request(base_url, "POST", f"/jobs/{job['id']}/retry")

    assert status == 409, answer
    assert answer["code"] == "CONFLICT"


def test_queued_jobs_finish_after_restart(base_url, runtime, restart_runtime):
    if runtime.kind == "wrangler":
        pytest.skip("Miniflare's queue broker keeps messages in memory, so wrangler dev loses them on restart")
    with ThreadPoolExecutor(max_workers=10) as pool:
        created = list(pool.map(lambda n: create_job(base_url, f"restart-{n}.png"), range(10)))
    job_ids = {job["id"] for job in created}
    status, _, page = request(base_url, "GET", "/jobs?limit=1000")
    assert status == 200, page
    unfinished = [job for job in page["jobs"] if job["id"] in job_ids and job["status"] not in TERMINAL]
    assert unfinished, "every job finished before the restart, so the restart proves nothing"

    restart_runtime()

    summaries = wait_for_all_terminal(base_url, job_ids, FEW_JOBS_TIMEOUT_SECONDS)
    for job_id, summary in summaries.items():
        assert 1 <= summary["attempts"] <= MAX_ATTEMPTS, summary
        assert_consistent_with_rule(get_job(base_url, job_id))
