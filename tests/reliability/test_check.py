"""The record checker of tools/reliability/check.py, on records built by hand."""

from datetime import datetime, timedelta, timezone

from jobqueue.simulation import attempt_fails
from tools.reliability.check import (
    DEAD_LETTER_ERROR,
    END_DEAD_LETTER,
    END_DONE,
    END_RULE,
    Rules,
    check_record,
)

RULES = Rules(failure_percent=35, max_attempts=3)
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def find_job_id(outcomes: list[bool]) -> str:
    """Return the first of a fixed series of ids whose attempts 1, 2, ... fail exactly as ``outcomes`` lists."""
    for number in range(100_000):
        job_id = f"00000000-0000-8000-8000-{number:012d}"
        if [attempt_fails(job_id, attempt, RULES.failure_percent) for attempt in range(1, len(outcomes) + 1)] == outcomes:
            return job_id
    raise AssertionError(f"no id with outcomes {outcomes}")


DONE_FIRST = find_job_id([False])
DONE_SECOND = find_job_id([True, False])
FAILS_THREE = find_job_id([True, True, True])


def at(seconds: float) -> str:
    moment = START + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def record(job_id: str, steps: list[tuple], job_type: str = "fetch", target: str = "a.png") -> dict:
    """Build a record from (status, attempt[, details]) steps one second apart."""
    history = []
    for index, (status, attempt, *details) in enumerate(steps):
        entry = {"status": status, "at": at(index), "attempt": attempt, **(details[0] if details else {})}
        history.append(entry)
    last = history[-1]
    data = {
        "id": job_id,
        "type": job_type,
        "target": target,
        "status": last["status"],
        "attempts": max([entry["attempt"] for entry in history]),
        "enqueuedAt": history[0]["at"],
        "updatedAt": last["at"],
        "history": history,
    }
    if last["status"] == "done":
        data["result"] = last["result"]
    if "error" in last:
        data["error"] = last["error"]
    return data


def fails(attempt: int) -> dict:
    return {"error": f"Simulated fetch failure on attempt {attempt}"}


DONE = {"result": "Fetched a.png (simulated)"}
STOPPED_1 = {"error": "Attempt 1 stopped before recording an outcome"}


def test_done_on_first_attempt_passes():
    check = check_record(record(DONE_FIRST, [("queued", 0), ("processing", 1), ("done", 1, DONE)]), RULES)

    assert check.problems == []
    assert check.end == END_DONE
    assert check.undisturbed


def test_done_on_second_attempt_passes():
    steps = [("queued", 0), ("processing", 1), ("queued", 1, fails(1)), ("processing", 2), ("done", 2, DONE)]

    check = check_record(record(DONE_SECOND, steps), RULES, faults_possible=False)

    assert check.problems == []


def test_failed_after_last_attempt_passes():
    steps = [("queued", 0)]
    for attempt in (1, 2, 3):
        steps += [("processing", attempt), ("queued" if attempt < 3 else "failed", attempt, fails(attempt))]

    check = check_record(record(FAILS_THREE, steps), RULES)

    assert check.problems == []
    assert check.end == END_RULE


def test_unfinished_job_is_a_problem():
    check = check_record(record(DONE_FIRST, [("queued", 0), ("processing", 1)]), RULES)

    assert any("not done or failed" in problem for problem in check.problems)


def test_leaving_done_is_a_problem():
    steps = [("queued", 0), ("processing", 1), ("done", 1, DONE), ("processing", 2), ("done", 2, DONE)]

    check = check_record(record(DONE_FIRST, steps), RULES)

    assert any("illegal step done -> processing" in problem for problem in check.problems)


def test_leaving_failed_without_note_is_a_problem():
    steps = [("queued", 0), ("failed", 0, {"error": DEAD_LETTER_ERROR}), ("queued", 0)]
    steps += [("processing", 1), ("done", 1, DONE)]

    check = check_record(record(DONE_FIRST, steps), RULES)

    assert any("without the note 'manual retry'" in problem for problem in check.problems)


def test_manual_retry_starts_new_cycle():
    steps = [("queued", 0)]
    for attempt in (1, 2, 3):
        steps += [("processing", attempt), ("queued" if attempt < 3 else "failed", attempt, fails(attempt))]
    steps += [("queued", 3, {"note": "manual retry"}), ("processing", 4), ("done", 4, DONE)]
    data = record(find_job_id([True, True, True, False]), steps)
    data["cycleStart"] = 3

    check = check_record(data, RULES, faults_possible=False)

    assert check.problems == []


def test_wrong_cycle_start_is_a_problem():
    steps = [("queued", 0)]
    for attempt in (1, 2, 3):
        steps += [("processing", attempt), ("queued" if attempt < 3 else "failed", attempt, fails(attempt))]
    steps += [("queued", 3, {"note": "manual retry"}), ("processing", 4), ("done", 4, DONE)]

    check = check_record(record(find_job_id([True, True, True, False]), steps), RULES)

    assert any("cycleStart is 0" in problem for problem in check.problems)


def test_attempt_beyond_cycle_is_a_problem():
    steps = [("queued", 0)]
    for attempt in (1, 2, 3):
        steps += [("processing", attempt), ("queued", attempt, fails(attempt))]
    steps += [("processing", 4), ("done", 4, DONE)]

    check = check_record(record(FAILS_THREE, steps), RULES)

    assert any("outside the cycle of attempts 1 to 3" in problem for problem in check.problems)


def test_time_going_backwards_is_a_problem():
    data = record(DONE_FIRST, [("queued", 0), ("processing", 1), ("done", 1, DONE)])
    data["history"][1]["at"] = at(-5)

    check = check_record(data, RULES)

    assert any("is earlier than" in problem for problem in check.problems)


def test_outcome_against_rule_is_a_problem():
    check = check_record(record(DONE_SECOND, [("queued", 0), ("processing", 1), ("done", 1, DONE)]), RULES)

    assert any("the failure rule fails attempt 1" in problem for problem in check.problems)


def test_stopped_attempt_is_disturbed():
    steps = [("queued", 0), ("processing", 1), ("queued", 1, STOPPED_1), ("processing", 2), ("done", 2, DONE)]
    job_id = find_job_id([False, False])

    allowed = check_record(record(job_id, steps), RULES)
    forbidden = check_record(record(job_id, steps), RULES, faults_possible=False)

    assert allowed.problems == []
    assert not allowed.undisturbed
    assert any("no fault was injected" in problem for problem in forbidden.problems)


def test_skipped_attempt_is_disturbed():
    job_id = find_job_id([False, False])

    check = check_record(record(job_id, [("queued", 0), ("processing", 2), ("done", 2, DONE)]), RULES)

    assert check.problems == []
    assert not check.undisturbed


def test_dead_letter_end_passes():
    steps = [("queued", 0), ("processing", 1), ("queued", 1, STOPPED_1), ("processing", 2)]
    steps += [("failed", 2, {"error": DEAD_LETTER_ERROR})]

    check = check_record(record(find_job_id([False, False]), steps), RULES)

    assert check.problems == []
    assert check.end == END_DEAD_LETTER


def test_unexplained_error_is_a_problem():
    steps = [("queued", 0), ("processing", 1), ("failed", 1, {"error": "something went wrong"})]

    check = check_record(record(DONE_FIRST, steps), RULES)

    assert any("does not say why the job is failed" in problem for problem in check.problems)


def test_status_differing_from_history_is_a_problem():
    data = record(DONE_FIRST, [("queued", 0), ("processing", 1), ("done", 1, DONE)])
    data["status"] = "failed"

    check = check_record(data, RULES)

    assert any("but the last history entry is 'done'" in problem for problem in check.problems)


def test_record_differing_from_post_is_a_problem():
    data = record(DONE_FIRST, [("queued", 0), ("processing", 1), ("done", 1, DONE)])
    created = {**data, "target": "other.png"}

    check = check_record(data, RULES, created=created)

    assert any("target is 'a.png', but POST /jobs returned 'other.png'" in problem for problem in check.problems)


def test_wrong_result_text_is_a_problem():
    data = record(DONE_FIRST, [("queued", 0), ("processing", 1), ("done", 1, {"result": "Fetched b.png (simulated)"})])

    check = check_record(data, RULES)

    assert any("expected 'Fetched a.png (simulated)'" in problem for problem in check.problems)
