import asyncio
import uuid
from collections import Counter

import pytest

from jobqueue.jobs import JobType
from jobqueue.simulation import (
    SimulatedFailure,
    attempt_fails,
    failure_roll,
    fmix32,
    fnv1a_32,
    predict_outcome,
    result_text,
    run_attempt,
)


def test_fnv1a_matches_reference_vectors():
    # Published FNV-1a 32-bit test vectors.
    assert fnv1a_32(b"") == 0x811C9DC5
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968


def test_fmix32_matches_murmur3_finaliser():
    assert fmix32(0) == 0
    assert fmix32(1) == 0x514E28B7


@pytest.mark.parametrize(("job_id", "rolls"), [
    ("00000000-0000-4000-8000-000000000000", [62, 80, 31]),
    ("00000000-0000-4000-8000-000000000001", [18, 37, 98]),
    ("00000000-0000-4000-8000-000000000017", [33, 30, 50]),
    ("00000000-0000-4000-8000-000000000003", [12, 4, 2]),
    ("550e8400-e29b-41d4-a716-446655440000", [27, 92, 3]),
])
def test_failure_roll_known_values(job_id, rolls):
    assert [failure_roll(job_id, attempt) for attempt in (1, 2, 3)] == rolls


@pytest.mark.parametrize(("job_id", "outcome"), [
    ("00000000-0000-4000-8000-000000000000", ("done", 1)),
    ("00000000-0000-4000-8000-000000000001", ("done", 2)),
    ("00000000-0000-4000-8000-000000000017", ("done", 3)),
    ("00000000-0000-4000-8000-000000000003", ("failed", 3)),
    ("550e8400-e29b-41d4-a716-446655440000", ("done", 2)),
])
def test_predicted_outcome_known_values(job_id, outcome):
    assert predict_outcome(job_id, 35, 3) == outcome


def test_roll_of_35_or_more_succeeds():
    # Attempt 3 of ...0017 rolls 50 and attempt 1 of ...0017 rolls 33.
    assert attempt_fails("00000000-0000-4000-8000-000000000017", 1, 35) is True
    assert attempt_fails("00000000-0000-4000-8000-000000000017", 1, 33) is False
    assert attempt_fails("00000000-0000-4000-8000-000000000017", 1, 34) is True


def test_outcomes_over_many_ids_follow_the_rule():
    ids = [str(uuid.UUID(int=n * 0x9E3779B97F4A7C15 % (1 << 128), version=4)) for n in range(4000)]

    outcomes = Counter(predict_outcome(job_id, 35, 3) for job_id in ids)
    shares = {key: count / len(ids) for key, count in outcomes.items()}

    # Independent attempts failing 35 % of the time: 65 %, 22.75 %, 7.96 %, 4.29 %.
    assert shares[("done", 1)] == pytest.approx(0.65, abs=0.03)
    assert shares[("done", 2)] == pytest.approx(0.2275, abs=0.03)
    assert shares[("done", 3)] == pytest.approx(0.0796, abs=0.02)
    assert shares[("failed", 3)] == pytest.approx(0.0429, abs=0.015)


def test_attempts_fail_independently():
    ids = [f"job-{n}" for n in range(4000)]

    first_failed = [job_id for job_id in ids if attempt_fails(job_id, 1, 35)]
    second_also = sum(attempt_fails(job_id, 2, 35) for job_id in first_failed)

    assert second_also / len(first_failed) == pytest.approx(0.35, abs=0.04)


def test_rolls_cover_0_to_99_evenly():
    counts = Counter(failure_roll(f"job-{n}", 1) for n in range(20_000))

    assert set(counts) == set(range(100))
    assert max(counts.values()) < 2 * min(counts.values())


def test_result_text_per_type():
    assert result_text(JobType.FETCH, "https://a.example/x") == "Fetched https://a.example/x (simulated)"
    assert result_text(JobType.RESIZE, "photo.png") == "Resized photo.png to 800x600 (simulated)"


def test_run_attempt_raises_on_failing_roll():
    with pytest.raises(SimulatedFailure, match="Simulated resize failure on attempt 1"):
        asyncio.run(run_attempt("00000000-0000-4000-8000-000000000003", JobType.RESIZE, "a", 1, 35, 0))


def test_run_attempt_returns_result_on_passing_roll():
    result = asyncio.run(run_attempt("00000000-0000-4000-8000-000000000000", JobType.FETCH, "a", 1, 35, 0))

    assert result == "Fetched a (simulated)"
