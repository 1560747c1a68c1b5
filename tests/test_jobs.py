import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from jobqueue.jobs import (
    IllegalTransition,
    InvalidRecord,
    Job,
    JobStatus,
    JobType,
    format_timestamp,
    new_job_id,
)

NOW = datetime(2025, 6, 20, 12, 0, 0, 123456, tzinfo=timezone.utc)


def new_job() -> Job:
    return Job.create(JobType.FETCH, "a.png", "00000000-0000-4000-8000-000000000000", NOW)


def test_timestamp_is_utc_with_milliseconds():
    assert format_timestamp(NOW) == "2025-06-20T12:00:00.123Z"
    assert format_timestamp(NOW.astimezone(timezone(timedelta(hours=2)))) == "2025-06-20T12:00:00.123Z"


def test_new_job_id_is_version_8_uuid():
    job_id = new_job_id()

    parsed = uuid.UUID(job_id)
    assert str(parsed) == job_id
    assert parsed.version == 8
    assert parsed.variant == uuid.RFC_4122
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", job_id)


def test_newer_job_ids_sort_first():
    ids = [new_job_id(now_ms=1_750_000_000_000 + n) for n in range(50)]

    assert sorted(ids) == list(reversed(ids))


def test_job_ids_of_one_millisecond_differ():
    ids = {new_job_id(now_ms=1_750_000_000_000) for _ in range(1000)}

    assert len(ids) == 1000


def test_record_round_trips_through_json():
    job = new_job()
    job.start_attempt(1, NOW)
    job.requeue("boom", NOW)

    assert Job.from_json(job.to_json()) == job


def test_invalid_record_raises_named_error():
    with pytest.raises(InvalidRecord):
        Job.from_json({"id": "x", "status": "lost"})


@pytest.mark.parametrize("steps", [
    ["complete"],  # queued -> done
    ["requeue"],  # queued -> queued
    ["start", "start"],  # processing -> processing
    ["start", "complete", "start"],  # done -> processing
    ["start", "complete", "fail"],  # done -> failed
    ["start", "fail", "start"],  # failed -> processing
    ["retry_manually"],  # queued -> manual retry
])
def test_illegal_transitions_raise(steps):
    job = new_job()
    actions = {
        "start": lambda: job.start_attempt(job.attempts + 1, NOW),
        "complete": lambda: job.complete("ok", NOW),
        "requeue": lambda: job.requeue("boom", NOW),
        "fail": lambda: job.fail("boom", NOW),
        "retry_manually": lambda: job.retry_manually(NOW),
    }

    with pytest.raises(IllegalTransition):
        for step in steps:
            actions[step]()


def test_terminal_statuses():
    assert {status for status in JobStatus if status.is_terminal} == {JobStatus.DONE, JobStatus.FAILED}


def test_manual_retry_starts_new_cycle():
    job = new_job()
    for attempt in (1, 2, 3):
        job.start_attempt(attempt, NOW)
        if attempt < 3:
            job.requeue("boom", NOW)
        else:
            job.fail("boom", NOW)

    transition = job.retry_manually(NOW)

    assert transition.from_status is JobStatus.FAILED
    assert job.status is JobStatus.QUEUED
    assert job.cycle_start == 3
    assert job.history[-1].note == "manual retry"
    assert job.to_json()["cycleStart"] == 3
