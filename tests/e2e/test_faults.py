"""Injected faults against the whole Worker: every accepted job still ends done or failed, and none is lost.

Each scenario starts an offline runtime of its own with --fault-* options
(tools/offline/faults.mjs), posts a few dozen jobs, waits for them, and runs
the checker of tools/reliability/check.py over every accepted job. Most of a
scenario's time is spent waiting (KV's one write a second per key, retry
backoff, batch timeouts). So the scenarios that the selected tests need run
at the same time, once per module, and each test then checks one of them.

The deadlines are generous and only stop a run that would hang; speed
belongs to the load report (tools/reliability/run.py), not here.
"""

import json
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

from tools.reliability import inputs
from tools.reliability.check import (
    END_DEAD_LETTER,
    Report,
    Rules,
    WorkerClient,
    check_jobs,
    wait_until_terminal,
)
from tools.reliability.runtime import count_injected_faults

from .runtimes import running_runtime

FAST_VARS = ["--var", "WORK_DURATION_MS=20", "--var", "RETRY_BASE_DELAY_SECONDS=1"]
RULES = Rules.from_config()
JOBS_PER_SCENARIO = 30
POST_CONCURRENCY = 6
# With this seed every fault below is injected within its first 16
# decisions, and each scenario makes more than 30 decisions per fault, so
# each fault fires whatever order the calls arrive in.
SEED = "7"
DRAIN_TIMEOUT_SECONDS = 240
# Runtimes running at once; more only adds contention on a small machine.
MAX_PARALLEL_RUNTIMES = 6
# The error codes a POST may return when a fault made it fail.
FAULT_ERROR_CODES = {"STORAGE_UNAVAILABLE", "ENQUEUE_FAILED"}


@dataclass
class Run:
    """What one runtime did with the jobs posted to it."""

    created: dict[str, dict]  # job id -> body of its 201 response
    rejected: list[tuple[int, str | None]]  # (status, code) of every other response
    unfinished: set[str]
    report: Report
    listed: dict[str, dict]  # every job the list shows at the end
    log: str
    extra: dict[str, Any] = field(default_factory=dict)  # what a special scenario records

    @property
    def injected(self) -> Counter:
        return count_injected_faults(self.log)


@dataclass(frozen=True)
class Scenario:
    options: list[str]
    jobs: int = JOBS_PER_SCENARIO
    faults_possible: bool = True


SCENARIOS = {
    "no faults": Scenario([], faults_possible=False),
    "kv-write-429": Scenario(["--fault-kv-write-429", "0.2"]),
    "kv-write-500": Scenario(["--fault-kv-write-500", "0.15"]),
    "kv-read": Scenario(["--fault-kv-read", "0.2"]),
    "queue-send": Scenario(["--fault-queue-send", "0.25"]),
    "redeliver": Scenario(["--fault-redeliver", "0.4"]),
    "consumer-crash": Scenario(["--fault-consumer-crash", "0.05"]),
    # Every processing write stops its invocation, so every message uses up
    # its deliveries and goes to the dead-letter queue.
    "consumer-crash always": Scenario(["--fault-consumer-crash", "1"], jobs=8),
    # queue-send is left out: with KV write faults, all three tries of a
    # rejected POST's delete can fail, which leaves its record queued.
    "all but queue-send": Scenario([
        "--fault-kv-write-429", "0.1",
        "--fault-kv-write-500", "0.05",
        "--fault-kv-read", "0.1",
        "--fault-redeliver", "0.2",
        "--fault-consumer-crash", "0.05",
    ]),
}


def post_jobs(client: WorkerClient, count: int) -> tuple[dict[str, dict], list[tuple[int, str | None]]]:
    def post(number: int):
        body = inputs.job_body(type="resize" if number % 2 else "fetch", target=f"fault-{number}.png")
        status, _, raw = client.request("POST", "/jobs", body)
        return status, json.loads(raw)

    with ThreadPoolExecutor(max_workers=POST_CONCURRENCY) as pool:
        responses = list(pool.map(post, range(count)))
    created = {body["id"]: body for status, body in responses if status == 201}
    rejected = [(status, body.get("code")) for status, body in responses if status != 201]
    return created, rejected


def run_scenario(scenario: Scenario) -> Run:
    with running_runtime(*FAST_VARS, *scenario.options, "--fault-seed", SEED) as runtime:
        client = WorkerClient(runtime.base_url)
        created, rejected = post_jobs(client, scenario.jobs)
        unfinished = wait_until_terminal(client, set(created), DRAIN_TIMEOUT_SECONDS)
        report = check_jobs(client, created, RULES, faults_possible=scenario.faults_possible)
        listed = client.list_jobs()
        log = runtime.log_path.read_text(errors="replace")
    return Run(created, rejected, unfinished, report, listed, log)


def run_rejected_post() -> Run:
    # With seed 1 the KV writes succeed, fail, succeed: the record is
    # stored, the send fails, the delete fails, and the delete tried again
    # succeeds.
    options = ["--fault-queue-send", "1", "--fault-kv-write-500", "0.5", "--fault-seed", "1"]
    with running_runtime(*FAST_VARS, *options) as runtime:
        client = WorkerClient(runtime.base_url)
        status, _, raw = client.request("POST", "/jobs", inputs.job_body(type="fetch", target="orphan.png"))
        time.sleep(3)  # longer than the queue's batch timeout, had a message been sent
        listed = client.list_jobs()
        log = runtime.log_path.read_text(errors="replace")
    return Run({}, [(status, json.loads(raw).get("code"))], set(), Report({}, []), listed, log)


def run_failed_retry() -> Run:
    with running_runtime(*FAST_VARS, "--var", "FAILURE_PERCENT=100") as runtime:
        client = WorkerClient(runtime.base_url)
        status, _, raw = client.request("POST", "/jobs", inputs.job_body(type="fetch", target="retry.png"))
        created = json.loads(raw)
        if status != 201:
            raise RuntimeError(f"POST /jobs returned {status}: {created}")
        unfinished = wait_until_terminal(client, {created["id"]}, DRAIN_TIMEOUT_SECONDS)
        if unfinished:
            raise RuntimeError(f"job {created['id']} did not fail within {DRAIN_TIMEOUT_SECONDS} s")

        # With seed 1 the KV writes succeed, fail, succeed: the retry's own
        # write is stored, the send fails, restoring the failed record fails,
        # and the restore tried again succeeds.
        runtime.command += ["--fault-queue-send", "1", "--fault-kv-write-500", "0.5", "--fault-seed", "1"]
        runtime.restart()
        status, _, raw = client.request("POST", f"/jobs/{created['id']}/retry")
        time.sleep(3)
        record = client.get_job(created["id"])
        log = runtime.log_path.read_text(errors="replace")
    run = Run({created["id"]: created}, [(status, json.loads(raw).get("code"))], unfinished, Report({}, []), {}, log)
    run.extra["record"] = record
    return run


SPECIAL_SCENARIOS: dict[str, Callable[[], Run]] = {
    "rejected post": run_rejected_post,
    "failed retry": run_failed_retry,
}


@pytest.fixture(scope="module")
def runs(request) -> dict[str, Any]:
    """Run every scenario that a selected test of this module names, at the same time.

    Maps each name to its Run, or to the exception that stopped it, which
    ``run_of`` raises again in the tests that need that scenario.
    """
    names = set()
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if item.module is request.module and callspec is not None and "scenario" in callspec.params:
            names.add(callspec.params["scenario"])
    names = sorted(names)

    def run(name: str):
        try:
            if name in SPECIAL_SCENARIOS:
                return SPECIAL_SCENARIOS[name]()
            return run_scenario(SCENARIOS[name])
        except BaseException as error:  # pytest.fail raises an exception outside Exception
            return error

    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_RUNTIMES, max(1, len(names)))) as pool:
        return dict(zip(names, pool.map(run, names)))


def run_of(runs: dict[str, Any], scenario: str) -> Run:
    result = runs[scenario]
    if isinstance(result, BaseException):
        raise result
    return result


def assert_nothing_lost(run: Run) -> None:
    assert run.created, f"no job was accepted: {run.rejected}"
    for status, code in run.rejected:
        assert status == 503, run.rejected
        assert code in FAULT_ERROR_CODES, run.rejected
    assert run.unfinished == set()
    assert run.report.missing == []
    assert run.report.problems == []
    assert run.report.lost == 0
    assert run.report.completed == len(run.created)
    # No record outlives a rejected POST, and none stays queued or processing.
    assert set(run.listed) == set(run.created)
    assert [job_id for job_id, job in run.listed.items() if job["status"] not in {"done", "failed"}] == []


@pytest.mark.parametrize("scenario", [name for name in SCENARIOS if name != "no faults"])
def test_fault_loses_no_job(runs, scenario):
    run = run_of(runs, scenario)

    for option in SCENARIOS[scenario].options:
        if option.startswith("--fault-"):
            fault = option.removeprefix("--fault-")
            assert run.injected[fault] > 0, f"the runtime injected no {fault} fault"
    assert_nothing_lost(run)


@pytest.mark.parametrize("scenario", ["no faults"])
def test_no_faults_every_outcome_predicted(runs, scenario):
    run = run_of(runs, scenario)

    assert run.injected == Counter()
    assert run.rejected == []
    assert_nothing_lost(run)
    assert run.report.disturbed == 0


# The store's warning before it tries a KV write again, for a given error.
RETRY_WARNING = r"KV \w+ of job:\S+ failed \([^)]*KV PUT failed: {status}[^)]*\); trying again in [12] s"


@pytest.mark.parametrize("scenario", ["kv-write-429"])
def test_rate_limited_write_is_retried(runs, scenario):
    # store.py recognises a 429 by the error message alone, so this shows
    # that the injected error reads like the platform's.
    run = run_of(runs, scenario)

    assert re.search(RETRY_WARNING.format(status="429"), run.log)


@pytest.mark.parametrize("scenario", ["kv-write-500"])
def test_server_error_write_is_retried(runs, scenario):
    run = run_of(runs, scenario)

    assert re.search(RETRY_WARNING.format(status="500"), run.log)


@pytest.mark.parametrize("scenario", ["kv-read"])
def test_failed_read_is_retried(runs, scenario):
    run = run_of(runs, scenario)

    assert re.search(r"KV read of job:\S+ failed \([^)]*KV GET failed: 500[^)]*\); trying again in 0\.1 s", run.log)


@pytest.mark.parametrize("scenario", ["queue-send"])
def test_failed_send_is_retried(runs, scenario):
    run = run_of(runs, scenario)

    assert re.search(r"job \S+: sending its queue message failed \([^)]*Queue send failed[^)]*\); trying again in 0\.2 s", run.log)
    # A POST is rejected only when all three of its sends failed.
    assert {code for _, code in run.rejected} <= {"ENQUEUE_FAILED"}
    assert 3 * len(run.rejected) <= run.injected["queue-send"]


@pytest.mark.parametrize("scenario", ["redeliver"])
def test_duplicate_delivery_changes_nothing(runs, scenario):
    run = run_of(runs, scenario)

    assert "duplicate delivery of message" in run.log
    assert run.report.disturbed == 0


@pytest.mark.parametrize("scenario", ["consumer-crash"])
def test_crash_shows_in_history(runs, scenario):
    run = run_of(runs, scenario)

    assert run.report.disturbed > 0


@pytest.mark.parametrize("scenario", ["consumer-crash always"])
def test_exhausted_retries_end_in_dead_letter(runs, scenario):
    run = run_of(runs, scenario)

    assert run.report.ends == {END_DEAD_LETTER: len(run.created)}
    for check in run.report.checks.values():
        assert check.attempts <= RULES.max_attempts
        assert not check.undisturbed


@pytest.mark.parametrize("scenario", ["rejected post"])
def test_rejected_post_leaves_no_record(runs, scenario):
    run = run_of(runs, scenario)

    assert run.rejected == [(503, "ENQUEUE_FAILED")]
    assert run.listed == {}


@pytest.mark.parametrize("scenario", ["failed retry"])
def test_failed_retry_keeps_job_failed(runs, scenario):
    run = run_of(runs, scenario)

    assert run.rejected == [(503, "ENQUEUE_FAILED")]
    assert run.extra["record"]["status"] == "failed"
