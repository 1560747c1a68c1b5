"""KV operations per job, by outcome: what a job costs on Cloudflare.

Writes and lists cost ten times a read, so these counts are pinned: a change
that adds a KV call to the request path or the consumer fails here.
"""

import pytest

from fakes import FakeMessage
from test_consumer import ALWAYS_FAILS, DONE_ON_1, DONE_ON_2, DONE_ON_3, Pipeline


def run_job(job_id: str) -> tuple[int, int, int]:
    pipeline = Pipeline()
    body = pipeline.enqueue(job_id)
    pipeline.run_to_end(body)
    counts = pipeline.kv.counts
    return counts.gets, counts.puts, counts.lists


@pytest.mark.parametrize(("job_id", "reads", "writes"), [
    (DONE_ON_1, 1, 3),
    (DONE_ON_2, 2, 5),
    (DONE_ON_3, 3, 7),
    (ALWAYS_FAILS, 3, 7),
])
def test_kv_operations_per_outcome(job_id, reads, writes):
    # One write at enqueue, then per attempt one read and two writes.
    assert run_job(job_id) == (reads, writes, 0)


def test_get_job_costs_one_read(client):
    _, created, _ = client.post_job({"type": "fetch", "target": "a"})
    before = (client.kv.counts.gets, client.kv.counts.puts, client.kv.counts.lists)

    client.call("GET", f"/jobs/{created['id']}")

    after = (client.kv.counts.gets, client.kv.counts.puts, client.kv.counts.lists)
    assert [b - a for a, b in zip(before, after)] == [1, 0, 0]


def test_list_page_costs_one_list(client):
    for n in range(30):
        client.post_job({"type": "fetch", "target": f"t{n}"})
    before = (client.kv.counts.gets, client.kv.counts.puts, client.kv.counts.lists)

    client.call("GET", "/jobs", query={"limit": "20"})

    after = (client.kv.counts.gets, client.kv.counts.puts, client.kv.counts.lists)
    assert [b - a for a, b in zip(before, after)] == [0, 0, 1]


def test_duplicate_delivery_costs_one_read():
    pipeline = Pipeline()
    body = pipeline.enqueue(DONE_ON_1)
    pipeline.run_to_end(body)
    before = (pipeline.kv.counts.gets, pipeline.kv.counts.puts)

    pipeline.deliver(FakeMessage(body))

    assert (pipeline.kv.counts.gets - before[0], pipeline.kv.counts.puts - before[1]) == (1, 0)
