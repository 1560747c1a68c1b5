import asyncio
import logging

import pytest

from fakes import FakeClock, FakeKV, FakeMessage
from jobqueue.config import Settings
from jobqueue.consumer import process_batch
from jobqueue.jobs import Job, JobStatus, JobType
from jobqueue.messages import JobMessage
from jobqueue.store import JobStore

DONE_ON_1 = "00000000-0000-4000-8000-000000000000"
DONE_ON_2 = "00000000-0000-4000-8000-000000000001"
DONE_ON_3 = "00000000-0000-4000-8000-000000000017"
ALWAYS_FAILS = "00000000-0000-4000-8000-000000000003"

SETTINGS = Settings(failure_percent=35, max_attempts=3, retry_base_delay_seconds=2, work_duration_ms=0)


class Pipeline:
    """A job store on fake KV and a way to deliver queue messages to the consumer."""

    def __init__(self, settings: Settings = SETTINGS):
        self.settings = settings
        self.clock = FakeClock()
        self.kv = FakeKV(self.clock)
        self.store = JobStore(self.kv, sleep=self.clock.sleep, clock=self.clock.time)

    def enqueue(self, job_id: str, job_type: JobType = JobType.FETCH, target: str = "a.png") -> dict:
        job = Job.create(job_type, target, job_id, self.clock.utc_now())
        asyncio.run(self.store.save(job))
        self.clock.now += 0.5
        return JobMessage.for_job(job).to_body()

    def deliver(self, *messages: FakeMessage, dead_letter: bool = False) -> None:
        store = JobStore(self.kv, sleep=self.clock.sleep, clock=self.clock.time)
        asyncio.run(process_batch(list(messages), store, self.settings, dead_letter=dead_letter, clock=self.clock.utc_now))
        self.last_store = store

    def run_to_end(self, body: dict) -> list[FakeMessage]:
        """Deliver a message, and again after each retry, as the queue would; return every delivery."""
        deliveries = [FakeMessage(body)]
        while True:
            self.deliver(deliveries[-1])
            action, delay = deliveries[-1].outcome
            if action == "ack":
                return deliveries
            self.clock.now += delay
            deliveries.append(deliveries[-1].redelivered())

    def record(self, job_id: str) -> dict:
        return self.kv.record(f"job:{job_id}")


def statuses(record: dict) -> list[tuple[str, int]]:
    return [(entry["status"], entry["attempt"]) for entry in record["history"]]


def test_job_done_on_first_attempt():
    pipeline = Pipeline()
    body = pipeline.enqueue(DONE_ON_1, JobType.RESIZE, "photo.png")

    deliveries = pipeline.run_to_end(body)

    record = pipeline.record(DONE_ON_1)
    assert len(deliveries) == 1
    assert record["status"] == "done"
    assert record["attempts"] == 1
    assert record["result"] == "Resized photo.png to 800x600 (simulated)"
    assert "error" not in record
    assert statuses(record) == [("queued", 0), ("processing", 1), ("done", 1)]
    assert record["history"][-1]["result"] == record["result"]


def test_failed_attempt_is_retried_with_error_in_history():
    pipeline = Pipeline()
    body = pipeline.enqueue(DONE_ON_2, JobType.FETCH, "https://example.com/a.png")

    deliveries = pipeline.run_to_end(body)

    record = pipeline.record(DONE_ON_2)
    assert [d.outcome for d in deliveries] == [("retry", 2), ("ack", None)]
    assert record["status"] == "done"
    assert record["attempts"] == 2
    assert record["result"] == "Fetched https://example.com/a.png (simulated)"
    assert statuses(record) == [("queued", 0), ("processing", 1), ("queued", 1), ("processing", 2), ("done", 2)]
    assert record["history"][2]["error"] == "Simulated fetch failure on attempt 1"


def test_retry_delay_doubles_per_attempt():
    pipeline = Pipeline()
    body = pipeline.enqueue(DONE_ON_3)

    deliveries = pipeline.run_to_end(body)

    assert [d.outcome for d in deliveries] == [("retry", 2), ("retry", 4), ("ack", None)]
    assert pipeline.record(DONE_ON_3)["attempts"] == 3
    assert pipeline.record(DONE_ON_3)["status"] == "done"


def test_job_fails_after_last_attempt():
    pipeline = Pipeline()
    body = pipeline.enqueue(ALWAYS_FAILS)

    deliveries = pipeline.run_to_end(body)

    record = pipeline.record(ALWAYS_FAILS)
    assert [d.outcome for d in deliveries] == [("retry", 2), ("retry", 4), ("ack", None)]
    assert record["status"] == "failed"
    assert record["attempts"] == 3
    assert record["error"] == "Simulated fetch failure on attempt 3"
    assert "result" not in record
    assert statuses(record) == [
        ("queued", 0), ("processing", 1), ("queued", 1), ("processing", 2), ("queued", 2),
        ("processing", 3), ("failed", 3),
    ]


def test_history_timestamps_are_ordered():
    pipeline = Pipeline()
    pipeline.run_to_end(pipeline.enqueue(ALWAYS_FAILS))

    times = [entry["at"] for entry in pipeline.record(ALWAYS_FAILS)["history"]]

    assert times == sorted(times)
    assert times[0] < times[-1]


def test_metadata_summary_follows_status():
    pipeline = Pipeline()
    pipeline.run_to_end(pipeline.enqueue(DONE_ON_2))

    metadata = pipeline.kv.metadata(f"job:{DONE_ON_2}")

    assert metadata["status"] == "done"
    assert metadata["attempts"] == 2
    assert metadata["updatedAt"] == pipeline.record(DONE_ON_2)["updatedAt"]


def test_duplicate_delivery_after_done_changes_nothing():
    pipeline = Pipeline()
    body = pipeline.enqueue(DONE_ON_1)
    pipeline.run_to_end(body)
    before = pipeline.record(DONE_ON_1)
    puts = pipeline.kv.counts.puts

    duplicate = FakeMessage(body, attempts=1)
    pipeline.deliver(duplicate)

    assert duplicate.outcome == ("ack", None)
    assert pipeline.record(DONE_ON_1) == before
    assert pipeline.kv.counts.puts == puts


def test_redelivery_after_failed_changes_nothing():
    pipeline = Pipeline()
    body = pipeline.enqueue(ALWAYS_FAILS)
    pipeline.run_to_end(body)
    before = pipeline.record(ALWAYS_FAILS)

    late = FakeMessage(body, attempts=4)
    pipeline.deliver(late)

    assert late.outcome == ("ack", None)
    assert pipeline.record(ALWAYS_FAILS) == before


def test_duplicate_of_finished_attempt_is_not_counted_again():
    pipeline = Pipeline()
    body = pipeline.enqueue(DONE_ON_2)
    first = FakeMessage(body, attempts=1)
    pipeline.deliver(first)
    assert first.outcome == ("retry", 2)

    duplicate = FakeMessage(body, attempts=1)
    pipeline.deliver(duplicate)

    record = pipeline.record(DONE_ON_2)
    assert duplicate.outcome == ("ack", None)
    assert record["attempts"] == 1
    assert record["status"] == "queued"
    assert statuses(record) == [("queued", 0), ("processing", 1), ("queued", 1)]


def test_two_deliveries_in_one_batch_run_once():
    pipeline = Pipeline()
    body = pipeline.enqueue(DONE_ON_1)
    first, second = FakeMessage(body, id="m1"), FakeMessage(body, id="m1")

    pipeline.deliver(first, second)

    record = pipeline.record(DONE_ON_1)
    assert first.outcome == ("ack", None)
    assert second.outcome == ("ack", None)
    assert statuses(record) == [("queued", 0), ("processing", 1), ("done", 1)]


def test_interrupted_attempt_is_recorded_and_next_delivery_runs():
    pipeline = Pipeline()
    body = pipeline.enqueue(DONE_ON_2)
    # The consumer stopped after writing processing for attempt 1.
    job = asyncio.run(pipeline.store.load(DONE_ON_2))
    job.start_attempt(1, pipeline.clock.utc_now())
    asyncio.run(pipeline.store.save(job))

    second = FakeMessage(body, attempts=2)
    pipeline.deliver(second)

    record = pipeline.record(DONE_ON_2)
    assert second.outcome == ("ack", None)
    assert record["status"] == "done"
    assert record["attempts"] == 2
    assert statuses(record) == [("queued", 0), ("processing", 1), ("queued", 1), ("processing", 2), ("done", 2)]
    assert record["history"][2]["error"] == "Attempt 1 stopped before recording an outcome"


def test_interrupted_last_attempt_marks_job_failed_without_fourth():
    pipeline = Pipeline()
    body = pipeline.enqueue(DONE_ON_1)
    job = asyncio.run(pipeline.store.load(DONE_ON_1))
    job.start_attempt(3, pipeline.clock.utc_now())
    asyncio.run(pipeline.store.save(job))

    late = FakeMessage(body, attempts=4)
    pipeline.deliver(late)

    record = pipeline.record(DONE_ON_1)
    assert late.outcome == ("ack", None)
    assert record["status"] == "failed"
    assert record["attempts"] == 3
    assert record["error"] == "Attempt 3 stopped before recording an outcome, and no attempts are left of 3"


@pytest.mark.parametrize("body", [
    "not a job",
    None,
    42,
    ["jobId"],
    {"jobId": DONE_ON_1},
    {"jobId": DONE_ON_1, "type": "shred", "target": "a", "enqueuedAt": "2025-06-20T12:00:00.000Z"},
    {"jobId": 7, "type": "fetch", "target": "a", "enqueuedAt": "2025-06-20T12:00:00.000Z"},
    {"jobId": DONE_ON_1, "type": "fetch", "target": "a", "enqueuedAt": "x", "cycleStart": -1},
])
def test_poison_message_is_acked_and_logged(body, caplog):
    pipeline = Pipeline()

    poison = FakeMessage(body, id="poison")
    with caplog.at_level(logging.ERROR, logger="jobqueue.consumer"):
        pipeline.deliver(poison)

    assert poison.outcome == ("ack", None)
    assert "message poison acknowledged without processing" in caplog.text
    assert pipeline.kv.entries == {}


def test_poison_message_does_not_affect_rest_of_batch():
    pipeline = Pipeline()
    body = pipeline.enqueue(DONE_ON_1)
    poison, good = FakeMessage({"nope": 1}, id="poison"), FakeMessage(body, id="good")

    pipeline.deliver(poison, good)

    assert poison.outcome == ("ack", None)
    assert good.outcome == ("ack", None)
    assert pipeline.record(DONE_ON_1)["status"] == "done"


def test_kv_failure_retries_only_that_message():
    pipeline = Pipeline()
    failing_body = pipeline.enqueue(DONE_ON_2)
    healthy_body = pipeline.enqueue(DONE_ON_1)
    # The batch's first reads are the failing message's: gather starts them in
    # order, and the fake clock's sleep between its tries yields to no other task.
    pipeline.kv.get_errors.extend([RuntimeError("KV GET failed: 500 Internal Server Error")] * 3)
    failing, healthy = FakeMessage(failing_body, id="a"), FakeMessage(healthy_body, id="b")

    pipeline.deliver(failing, healthy)

    assert failing.outcome == ("retry", 2)
    assert healthy.outcome == ("ack", None)
    assert pipeline.record(DONE_ON_2)["status"] == "queued"
    assert pipeline.record(DONE_ON_2)["attempts"] == 0
    assert pipeline.record(DONE_ON_1)["status"] == "done"


def test_kv_429_on_write_is_retried_with_backoff():
    pipeline = Pipeline()
    body = pipeline.enqueue(DONE_ON_1)
    pipeline.kv.put_errors.append(RuntimeError("KV PUT failed: 429 Too Many Requests"))
    message = FakeMessage(body)

    pipeline.deliver(message)

    assert message.outcome == ("ack", None)
    assert pipeline.record(DONE_ON_1)["status"] == "done"
    assert 1.0 in pipeline.clock.sleeps
    assert pipeline.last_store.counts.writes == 3  # processing twice (one 429), then done


def test_kv_429_that_persists_retries_the_message():
    pipeline = Pipeline()
    body = pipeline.enqueue(DONE_ON_1)
    pipeline.kv.put_errors.extend(RuntimeError("KV PUT failed: 429 Too Many Requests") for _ in range(3))
    message = FakeMessage(body)

    pipeline.deliver(message)

    assert message.outcome == ("retry", 2)
    assert pipeline.record(DONE_ON_1)["status"] == "queued"
    assert pipeline.last_store.counts.writes == 3


def test_attempt_makes_one_read_and_two_writes():
    pipeline = Pipeline()
    body = pipeline.enqueue(DONE_ON_2)
    first = FakeMessage(body)

    pipeline.deliver(first)

    assert pipeline.last_store.counts.reads == 1
    assert pipeline.last_store.counts.writes == 2
    assert pipeline.last_store.counts.lists == 0


def test_writes_to_one_key_are_a_second_apart():
    pipeline = Pipeline()
    pipeline.run_to_end(pipeline.enqueue(ALWAYS_FAILS))

    times = pipeline.kv.put_times[f"job:{ALWAYS_FAILS}"]

    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert len(times) == 7
    assert min(gaps) >= 1.0


def test_dead_lettered_job_is_marked_failed():
    pipeline = Pipeline()
    body = pipeline.enqueue(DONE_ON_1)
    message = FakeMessage(body)

    pipeline.deliver(message, dead_letter=True)

    record = pipeline.record(DONE_ON_1)
    assert message.outcome == ("ack", None)
    assert record["status"] == "failed"
    assert record["error"] == "The queue moved the job's message to the dead-letter queue after its last retry"
    assert statuses(record) == [("queued", 0), ("failed", 0)]


def test_dead_lettered_message_of_done_job_changes_nothing():
    pipeline = Pipeline()
    body = pipeline.enqueue(DONE_ON_1)
    pipeline.run_to_end(body)
    before = pipeline.record(DONE_ON_1)

    message = FakeMessage(body)
    pipeline.deliver(message, dead_letter=True)

    assert message.outcome == ("ack", None)
    assert pipeline.record(DONE_ON_1) == before


def test_missing_record_is_rebuilt_from_message():
    pipeline = Pipeline()
    body = pipeline.enqueue(DONE_ON_1)
    pipeline.kv.entries.clear()

    message = FakeMessage(body)
    pipeline.deliver(message)

    record = pipeline.record(DONE_ON_1)
    assert message.outcome == ("ack", None)
    assert record["status"] == "done"
    assert record["enqueuedAt"] == body["enqueuedAt"]
    assert statuses(record) == [("queued", 0), ("processing", 1), ("done", 1)]


def test_each_transition_is_logged_once(caplog):
    pipeline = Pipeline()
    body = pipeline.enqueue(DONE_ON_2)

    with caplog.at_level(logging.INFO, logger="jobqueue.consumer"):
        pipeline.run_to_end(body)

    lines = [r.getMessage() for r in caplog.records if r.name == "jobqueue.consumer"]
    assert lines == [
        f"job {DONE_ON_2}: queued -> processing (attempt 1)",
        f"job {DONE_ON_2}: processing -> queued (attempt 1)",
        f"job {DONE_ON_2}: queued -> processing (attempt 2)",
        f"job {DONE_ON_2}: processing -> done (attempt 2)",
    ]


def test_batch_messages_run_concurrently(monkeypatch):
    pipeline = Pipeline()
    bodies = [pipeline.enqueue(f"00000000-0000-4000-8000-0000000000{n:02d}") for n in range(10)]
    messages = [FakeMessage(body, id=str(n)) for n, body in enumerate(bodies)]
    running, most_running = 0, 0

    async def counted_attempt(*args):
        nonlocal running, most_running
        running += 1
        most_running = max(most_running, running)
        await asyncio.sleep(0.01)
        running -= 1
        return "result"

    monkeypatch.setattr("jobqueue.consumer.run_attempt", counted_attempt)
    pipeline.deliver(*messages)

    assert all(m.outcome == ("ack", None) for m in messages)
    assert most_running == 10
