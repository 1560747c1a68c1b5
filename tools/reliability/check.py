"""Check job records against the lifecycle rules, after a run with or without injected faults.

``check_record`` checks one record as ``GET /jobs/:id`` returns it:

- it is terminal (``done`` or ``failed``) and agrees with its own history;
- its history is ordered (timestamps never decrease) and each step is legal:
  queued -> processing, processing -> queued, done or failed, queued -> failed,
  and failed -> queued only with the note "manual retry"; so no terminal
  status is ever left otherwise;
- attempt numbers rise and stay within MAX_ATTEMPTS per cycle of attempts;
- every attempt that recorded an outcome has the outcome of the failure rule
  (src/jobqueue/simulation.py), and every error states why the job failed;
- a cycle that no fault disturbed (consecutive attempts, each with a recorded
  outcome) ends with the status and attempt count of ``predict_outcome``.

The lifecycle rules are written out here instead of imported from src/, so
that a mistake in src/jobqueue/jobs.py cannot hide itself. Only the failure
rule comes from src/, because the checker has to compute the same numbers.

``check_jobs`` reads every accepted job over HTTP and checks it, and
``wait_until_terminal`` and ``find_unfinished`` poll the job list.
"""

import json
import re
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from jobqueue.simulation import attempt_fails, predict_outcome  # noqa: E402

TERMINAL = frozenset({"done", "failed"})
LEGAL_STEPS = frozenset({
    ("queued", "processing"),
    ("processing", "queued"),
    ("processing", "done"),
    ("processing", "failed"),
    ("queued", "failed"),
    ("failed", "queued"),  # a manual retry only
})
MANUAL_RETRY_NOTE = "manual retry"

# The errors the consumer records; any other error is reported as unexplained.
SIMULATED_ERROR = re.compile(r"Simulated (resize|fetch) failure on attempt (\d+)")
STOPPED_ERROR = re.compile(r"Attempt (\d+) stopped before recording an outcome")
DEAD_LETTER_ERROR = "The queue moved the job's message to the dead-letter queue after its last retry"
NO_ATTEMPTS_LEFT_ERROR = re.compile(r".*, and no attempts are left of (\d+)")

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# The end of a job, as ``JobCheck.end`` records it: done, or the reason it failed.
END_DONE = "done"
END_RULE = "failed by the rule"
END_DEAD_LETTER = "failed after the dead-letter queue"
END_NO_ATTEMPTS_LEFT = "failed with no attempts left"
END_UNEXPLAINED = "failed without a reason"


@dataclass(frozen=True)
class Rules:
    """The vars that decide each job's outcome."""

    failure_percent: int
    max_attempts: int

    @classmethod
    def from_config(cls, overrides: dict[str, str] | None = None) -> "Rules":
        """Read the vars of wrangler.toml, with ``overrides`` as given to ``--var``."""
        config_vars = tomllib.loads((ROOT / "wrangler.toml").read_text())["vars"]
        config_vars = {**config_vars, **(overrides or {})}
        return cls(int(config_vars["FAILURE_PERCENT"]), int(config_vars["MAX_ATTEMPTS"]))


@dataclass
class JobCheck:
    """The verdict on one job record."""

    job_id: str
    status: str | None
    attempts: int | None
    problems: list[str] = field(default_factory=list)
    # False when a fault left a trace in the history: a stopped attempt, a
    # skipped attempt number or the dead-letter queue.
    undisturbed: bool = True
    end: str | None = None  # one of the END_* values for a terminal record


def check_record(
    record: dict[str, Any],
    rules: Rules,
    *,
    created: dict[str, Any] | None = None,
    faults_possible: bool = True,
) -> JobCheck:
    """Check one record; ``created`` is the body of its ``201`` response.

    Without ``faults_possible`` a disturbed history is a problem too, because
    only an injected fault or a crash of the runtime can disturb one.
    """
    check = JobCheck(record.get("id", "?"), record.get("status"), record.get("attempts"))
    problems = check.problems
    history = record.get("history") or []
    if not history:
        problems.append("history is empty")
        return check

    _check_identity(record, created, problems)
    _check_order(history, problems)
    _check_summary_fields(record, history, problems)
    if record.get("status") not in TERMINAL:
        problems.append(f"status is {record.get('status')!r}, not done or failed")

    cycle_start = 0
    attempts = 0
    cycle_undisturbed = True
    previous = None
    for index, entry in enumerate(history):
        status = entry.get("status")
        attempt = entry.get("attempt")
        where = f"history[{index}] ({status}, attempt {attempt})"
        if not isinstance(attempt, int) or isinstance(attempt, bool):
            problems.append(f"{where}: attempt is not an integer")
            return check

        if previous is None:
            if (status, attempt) != ("queued", 0):
                problems.append(f"{where}: history does not start with queued, attempt 0")
            previous = entry
            continue

        step = (previous["status"], status)
        if step not in LEGAL_STEPS:
            problems.append(f"{where}: illegal step {step[0]} -> {step[1]}")
        if step == ("failed", "queued") and entry.get("note") != MANUAL_RETRY_NOTE:
            problems.append(f"{where}: left failed without the note {MANUAL_RETRY_NOTE!r}")

        if status == "processing":
            if attempt <= attempts:
                problems.append(f"{where}: attempt {attempt} does not follow attempt {attempts}")
            if not cycle_start < attempt <= cycle_start + rules.max_attempts:
                problems.append(
                    f"{where}: attempt {attempt} is outside the cycle of attempts "
                    f"{cycle_start + 1} to {cycle_start + rules.max_attempts}"
                )
            if attempt != attempts + 1:
                cycle_undisturbed = False  # a delivery was cut short before it recorded anything
            attempts = attempt
        else:
            if attempt != attempts:
                problems.append(f"{where}: attempt should be {attempts}, the last attempt started")
            outcome = _check_outcome(record, previous, entry, where, attempts, cycle_start, rules, problems)
            if outcome != "rule":
                cycle_undisturbed = False

        if status in TERMINAL:
            if cycle_undisturbed:
                _check_prediction(record["id"], status, attempts, cycle_start, where, rules, problems)
            else:
                check.undisturbed = False
        if step == ("failed", "queued"):
            cycle_start = attempts
            cycle_undisturbed = True
        previous = entry

    if record.get("attempts") != attempts:
        problems.append(f"attempts is {record.get('attempts')}, but the history's last attempt is {attempts}")
    if record.get("cycleStart", 0) != cycle_start:
        problems.append(f"cycleStart is {record.get('cycleStart', 0)}, but the last manual retry came after attempt {cycle_start}")
    if not check.undisturbed and not faults_possible:
        problems.append("the history shows a disturbed attempt, but no fault was injected")
    check.end = _end_reason(history[-1]) if record.get("status") in TERMINAL else None
    return check


def _check_identity(record: dict[str, Any], created: dict[str, Any] | None, problems: list[str]) -> None:
    if created is None:
        return
    for name in ("id", "type", "target", "enqueuedAt"):
        if record.get(name) != created.get(name):
            problems.append(f"{name} is {record.get(name)!r}, but POST /jobs returned {created.get(name)!r}")


def _check_order(history: list[dict[str, Any]], problems: list[str]) -> None:
    moments = []
    for index, entry in enumerate(history):
        try:
            moments.append(datetime.strptime(entry.get("at", ""), TIMESTAMP_FORMAT))
        except (TypeError, ValueError):
            problems.append(f"history[{index}]: timestamp {entry.get('at')!r} is not of the form 2025-06-20T12:00:00.000Z")
            return
    for index, (before, after) in enumerate(zip(moments, moments[1:]), start=1):
        if after < before:
            problems.append(f"history[{index}]: timestamp {history[index]['at']} is earlier than {history[index - 1]['at']}")


def _check_summary_fields(record: dict[str, Any], history: list[dict[str, Any]], problems: list[str]) -> None:
    last = history[-1]
    if record.get("status") != last.get("status"):
        problems.append(f"status is {record.get('status')!r}, but the last history entry is {last.get('status')!r}")
    if record.get("enqueuedAt") != history[0].get("at"):
        problems.append(f"enqueuedAt {record.get('enqueuedAt')} differs from the first history entry's time")
    if record.get("updatedAt") != last.get("at"):
        problems.append(f"updatedAt {record.get('updatedAt')} differs from the last history entry's time {last.get('at')}")
    if record.get("status") == "done" and record.get("result") != last.get("result"):
        problems.append(f"result {record.get('result')!r} differs from the last history entry's")
    if record.get("status") == "failed" and record.get("error") != last.get("error"):
        problems.append(f"error {record.get('error')!r} differs from the last history entry's")


def _check_outcome(
    record: dict[str, Any],
    previous: dict[str, Any],
    entry: dict[str, Any],
    where: str,
    attempts: int,
    cycle_start: int,
    rules: Rules,
    problems: list[str],
) -> str:
    """Check an entry that ends an attempt or a cycle.

    Returns "rule" when it records an outcome of the failure rule, "retry"
    for a manual retry, and "fault" for anything a fault can cause.
    """
    job_id = record["id"]
    status = entry["status"]
    error = entry.get("error")
    last_in_cycle = cycle_start + rules.max_attempts
    after_processing = previous["status"] == "processing"

    if status == "queued" and previous["status"] == "failed":
        return "retry"

    if status == "done":
        expected = _result_text(record)
        if entry.get("result") != expected:
            problems.append(f"{where}: result {entry.get('result')!r}, expected {expected!r}")
        if after_processing and attempt_fails(job_id, attempts, rules.failure_percent):
            problems.append(f"{where}: done, but the failure rule fails attempt {attempts}")
        return "rule"

    simulated = SIMULATED_ERROR.fullmatch(error or "")
    if simulated is not None:
        if not after_processing or simulated.group(1) != record.get("type") or int(simulated.group(2)) != attempts:
            problems.append(f"{where}: error {error!r} does not belong to attempt {attempts} of this {record.get('type')} job")
        if not attempt_fails(job_id, attempts, rules.failure_percent):
            problems.append(f"{where}: {error!r}, but the failure rule lets attempt {attempts} succeed")
        if status == "queued" and attempts >= last_in_cycle:
            problems.append(f"{where}: queued again after attempt {attempts}, the last of its cycle")
        if status == "failed" and attempts != last_in_cycle:
            problems.append(f"{where}: failed after attempt {attempts}, but the cycle allows {last_in_cycle}")
        return "rule"

    stopped = STOPPED_ERROR.fullmatch(error or "")
    if status == "queued" and stopped is not None and after_processing and int(stopped.group(1)) == attempts:
        return "fault"
    if status == "failed" and error == DEAD_LETTER_ERROR:
        return "fault"
    no_attempts_left = NO_ATTEMPTS_LEFT_ERROR.fullmatch(error or "")
    if status == "failed" and no_attempts_left is not None and int(no_attempts_left.group(1)) == rules.max_attempts:
        return "fault"

    problems.append(f"{where}: error {error!r} does not say why the job is {status}")
    return "fault"


def _check_prediction(
    job_id: str, status: str, attempts: int, cycle_start: int, where: str, rules: Rules, problems: list[str]
) -> None:
    expected = predict_outcome(job_id, rules.failure_percent, rules.max_attempts, first_attempt=cycle_start + 1)
    if (status, attempts) != expected:
        problems.append(f"{where}: ended {status} after attempt {attempts}, but the failure rule predicts {expected}")


def _result_text(record: dict[str, Any]) -> str:
    # The same texts as src/jobqueue/simulation.py result_text, written out
    # so that a changed text shows up here.
    if record.get("type") == "resize":
        return f"Resized {record.get('target')} to 800x600 (simulated)"
    return f"Fetched {record.get('target')} (simulated)"


def _end_reason(last: dict[str, Any]) -> str:
    error = last.get("error") or ""
    if last.get("status") == "done":
        return END_DONE
    if SIMULATED_ERROR.fullmatch(error):
        return END_RULE
    if error == DEAD_LETTER_ERROR:
        return END_DEAD_LETTER
    if NO_ATTEMPTS_LEFT_ERROR.fullmatch(error):
        return END_NO_ATTEMPTS_LEFT
    return END_UNEXPLAINED


class WorkerClient:
    """A small HTTP client for the Worker's API, which retries what a fault can fail."""

    def __init__(self, base_url: str, *, timeout: float = 30, tries: int = 30, pause: float = 0.2):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.tries = tries
        self.pause = pause

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
        """Send one request; return (status, headers, body bytes). Raises OSError when the connection fails."""
        outgoing = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(outgoing, timeout=self.timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read()

    def get_json(self, path: str) -> tuple[int, Any]:
        """GET ``path`` and return (status, parsed body), trying again on 503 or a failed connection.

        A KV read fault causes the 503 (STORAGE_UNAVAILABLE), and the next
        read usually succeeds. A response that is not JSON is tried again too.
        Raises RuntimeError after ``tries``.
        """
        last = None
        for _ in range(self.tries):
            try:
                status, _, raw = self.request("GET", path)
                body = json.loads(raw) if raw else None
            except OSError as error:
                last = f"connection failed: {error}"
            except ValueError:
                # Not the Worker's JSON: Miniflare's error page when the runtime's Node process is gone.
                last = f"{status} with a body that is not JSON: {raw[:80]!r}"
            else:
                if status != 503:
                    return status, body
                last = f"503 {body}"
            time.sleep(self.pause)
        raise RuntimeError(f"GET {path} failed {self.tries} times; the last time: {last}")

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """Return the job record, or None when the Worker has none (404)."""
        status, body = self.get_json(f"/jobs/{job_id}")
        if status == 404:
            return None
        if status != 200:
            raise RuntimeError(f"GET /jobs/{job_id} returned {status}: {body}")
        return body

    def list_jobs(self, max_pages: int = 1000) -> dict[str, dict[str, Any]]:
        """Return the summary of every listed job by id, reading pages of 1000."""
        summaries: dict[str, dict[str, Any]] = {}
        cursor = None
        for _ in range(max_pages):
            path = "/jobs?limit=1000" + (f"&cursor={cursor}" if cursor else "")
            status, page = self.get_json(path)
            if status != 200:
                raise RuntimeError(f"GET {path} returned {status}: {page}")
            summaries.update({summary["id"]: summary for summary in page["jobs"]})
            cursor = page["cursor"]
            if cursor is None:
                return summaries
        raise RuntimeError(f"the job list has more than {max_pages} pages")


def wait_until_terminal(client: WorkerClient, job_ids: set[str], timeout: float, poll: float = 1.0) -> set[str]:
    """Poll the job list until every job of ``job_ids`` is done or failed, or ``timeout`` seconds pass.

    Returns the ids that are still missing from the list or not terminal
    (an empty set when all finished).
    """
    deadline = time.monotonic() + timeout
    while True:
        summaries = client.list_jobs()
        unfinished = {job_id for job_id in job_ids if summaries.get(job_id, {}).get("status") not in TERMINAL}
        if not unfinished or time.monotonic() >= deadline:
            return unfinished
        time.sleep(poll)


def find_unfinished(client: WorkerClient, exclude: set[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """Return the summaries of listed jobs that are not done or failed, except those in ``exclude``."""
    return {
        job_id: summary
        for job_id, summary in client.list_jobs().items()
        if summary.get("status") not in TERMINAL and job_id not in exclude
    }


@dataclass
class Report:
    """The checks of a set of accepted jobs."""

    checks: dict[str, JobCheck]
    missing: list[str]  # accepted, but GET /jobs/:id returned 404

    @property
    def problems(self) -> list[str]:
        lines = [f"job {job_id}: no record (404)" for job_id in self.missing]
        for job_id, check in sorted(self.checks.items()):
            lines += [f"job {job_id}: {problem}" for problem in check.problems]
        return lines

    @property
    def completed(self) -> int:
        return sum(1 for check in self.checks.values() if check.status in TERMINAL)

    @property
    def lost(self) -> int:
        """Accepted jobs without a record, or whose record is not done or failed."""
        return len(self.missing) + sum(1 for check in self.checks.values() if check.status not in TERMINAL)

    @property
    def ends(self) -> Counter:
        return Counter(check.end for check in self.checks.values() if check.end is not None)

    @property
    def attempts(self) -> int:
        """The sum of the checked jobs' attempt counts."""
        return sum(check.attempts or 0 for check in self.checks.values())

    @property
    def disturbed(self) -> int:
        return sum(1 for check in self.checks.values() if not check.undisturbed)


def check_jobs(
    client: WorkerClient,
    created: dict[str, dict[str, Any]],
    rules: Rules,
    *,
    faults_possible: bool = True,
    workers: int = 16,
) -> Report:
    """Read and check every job of ``created`` (job id -> its 201 body)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        records = dict(zip(created, pool.map(client.get_job, created)))

    checks = {}
    missing = []
    for job_id, record in records.items():
        if record is None:
            missing.append(job_id)
            continue
        checks[job_id] = check_record(record, rules, created=created[job_id], faults_possible=faults_possible)
    return Report(checks, sorted(missing))
