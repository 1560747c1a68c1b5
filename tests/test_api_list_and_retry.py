import asyncio

import pytest

from conftest import ApiClient
from jobqueue.jobs import Job, JobType
from jobqueue.store import JobStore

ALWAYS_FAILS = "00000000-0000-4000-8000-000000000003"


def store_failed_job(client: ApiClient, job_id: str = ALWAYS_FAILS) -> None:
    job = Job.create(JobType.FETCH, "a.png", job_id, client.clock.utc_now())
    for attempt in (1, 2, 3):
        job.start_attempt(attempt, client.clock.utc_now())
        if attempt < 3:
            job.requeue(f"boom {attempt}", client.clock.utc_now())
    job.fail("boom 3", client.clock.utc_now())
    asyncio.run(JobStore(client.kv, sleep=client.clock.sleep, clock=client.clock.time).save(job))
    client.clock.now += 5


def post_jobs(client: ApiClient, count: int) -> list[dict]:
    created = []
    for n in range(count):
        _, body, _ = client.post_job({"type": "fetch", "target": f"t{n}"})
        created.append(body)
        client.clock.now += 0.002
    return created


def test_list_returns_newest_first_with_one_list_call(client):
    created = post_jobs(client, 3)
    reads_before = client.kv.counts.gets

    status, body, _ = client.call("GET", "/jobs")

    assert status == 200
    assert [job["id"] for job in body["jobs"]] == [job["id"] for job in reversed(created)]
    assert body["cursor"] is None
    assert client.kv.counts.lists == 1
    assert client.kv.counts.gets == reads_before


def test_list_entries_are_summaries(client):
    [created] = post_jobs(client, 1)

    _, body, _ = client.call("GET", "/jobs")

    assert body["jobs"] == [{
        "id": created["id"], "status": "queued", "type": "fetch", "attempts": 0, "target": "t0",
        "enqueuedAt": created["enqueuedAt"], "updatedAt": created["updatedAt"],
    }]


def list_jobs(client: ApiClient, **query: str):
    status, body, _ = client.call("GET", "/jobs", query=query)
    return status, body


def test_list_limit_and_cursor_walk_all_jobs(client):
    created = post_jobs(client, 5)

    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": "2"} if cursor is None else {"limit": "2", "cursor": cursor}
        status, body = list_jobs(client, **query)
        assert status == 200
        seen.extend(job["id"] for job in body["jobs"])
        pages += 1
        cursor = body["cursor"]
        if cursor is None:
            break

    assert seen == [job["id"] for job in reversed(created)]
    assert pages == 3


def test_list_filters_by_status(client):
    post_jobs(client, 2)
    store_failed_job(client)

    status, body = list_jobs(client, status="failed")

    assert status == 200
    assert [job["id"] for job in body["jobs"]] == [ALWAYS_FAILS]


@pytest.mark.parametrize("query", [
    {"status": "lost"},
    {"status": "DONE"},
    {"limit": "0"},
    {"limit": "1001"},
    {"limit": "-1"},
    {"limit": "ten"},
    {"limit": "\u0663"},
])
def test_list_rejects_invalid_query(client, query):
    status, body = list_jobs(client, **query)

    assert status == 400
    assert body["code"] == "INVALID_QUERY"


def test_retry_of_failed_job_starts_new_cycle(client):
    store_failed_job(client)

    status, body, _ = client.call("POST", f"/jobs/{ALWAYS_FAILS}/retry")

    assert status == 202
    assert body["status"] == "queued"
    assert body["attempts"] == 3
    assert body["cycleStart"] == 3
    assert body["history"][-1]["status"] == "queued"
    assert body["history"][-1]["note"] == "manual retry"
    assert body["history"][-2]["status"] == "failed"
    assert client.queue.sent[-1]["cycleStart"] == 3
    assert client.kv.record(f"job:{ALWAYS_FAILS}") == body


def test_retry_of_queued_job_is_conflict(client):
    [created] = post_jobs(client, 1)

    status, body, _ = client.call("POST", f"/jobs/{created['id']}/retry")

    assert status == 409
    assert body["code"] == "CONFLICT"
    assert "queued" in body["error"]
    assert len(client.queue.sent) == 1


def test_retry_of_unknown_job_is_not_found(client):
    status, body, _ = client.call("POST", "/jobs/00000000-0000-4000-8000-000000000999/retry")

    assert status == 404
    assert body["code"] == "NOT_FOUND"


def fail_puts(client, failing: set[int]) -> list[str]:
    """Make the KV puts with these 1-based numbers fail with a 500; return the keys of all puts made."""
    original_put = client.kv.put
    calls = []

    async def put(key, value, options=None):
        calls.append(key)
        if len(calls) in failing:
            raise RuntimeError("KV PUT failed: 500 Internal Server Error")
        await original_put(key, value, options)

    client.kv.put = put
    return calls


def test_restore_after_failed_retry_send_is_retried(client):
    store_failed_job(client)
    before = client.kv.record(f"job:{ALWAYS_FAILS}")
    client.queue.send_errors.extend([RuntimeError("Queue send failed: 500")] * 3)
    # The retry's own write succeeds; the first write that restores the failed record fails.
    calls = fail_puts(client, {2})

    status, body, _ = client.call("POST", f"/jobs/{ALWAYS_FAILS}/retry")

    assert status == 503
    assert body["code"] == "ENQUEUE_FAILED"
    assert len(calls) == 3
    assert client.kv.record(f"job:{ALWAYS_FAILS}") == before


def test_restore_failing_after_failed_retry_send_says_so(client):
    store_failed_job(client)
    client.queue.send_errors.extend([RuntimeError("Queue send failed: 500")] * 3)
    # The retry's own write succeeds; all three writes that restore the failed record fail.
    calls = fail_puts(client, {2, 3, 4})

    status, body, _ = client.call("POST", f"/jobs/{ALWAYS_FAILS}/retry")

    assert status == 503
    assert body["code"] == "ENQUEUE_FAILED"
    assert "could not be restored" in body["error"]
    assert len(calls) == 4
    assert client.kv.record(f"job:{ALWAYS_FAILS}")["status"] == "queued"


def test_retry_whose_send_fails_leaves_job_failed(client):
    store_failed_job(client)
    before = client.kv.record(f"job:{ALWAYS_FAILS}")
    client.queue.send_errors.extend([RuntimeError("Queue send failed: 500")] * 3)

    status, body, _ = client.call("POST", f"/jobs/{ALWAYS_FAILS}/retry")

    assert status == 503
    assert body["code"] == "ENQUEUE_FAILED"
    assert client.kv.record(f"job:{ALWAYS_FAILS}") == before
