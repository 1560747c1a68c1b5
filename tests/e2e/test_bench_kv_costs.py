"""KV operations per job, by outcome, in the offline runtime: the real src/ in
Pyodide with Miniflare's KV and Queues, the queue consumer included.

tests/test_kv_costs.py pins the same counts under CPython with in-memory
stand-ins. Here the KV part of the benchmark (tools/bench) counts them at the
KV binding that the Worker calls, so a KV call that only the Workers SDK or
the real runtime adds fails here. It always runs the offline runtime, also
with E2E_RUNTIME=wrangler.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The benchmark creates jobs until every outcome appears, so usually 30 to 60.
MIN_JOBS = 30
# A run took 15 to 25 s on a machine with 2 cores. The bound leaves room for
# the rare run that needs a few hundred jobs before one fails.
BENCH_TIMEOUT_SECONDS = 300

# (reads, writes, lists): 1 write at enqueue, then per attempt 1 read and 2 writes.
EXPECTED = {
    "done_1": (1, 3, 0),
    "done_2": (2, 5, 0),
    "done_3": (3, 7, 0),
    "failed": (3, 7, 0),
}


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> dict:
    """Run the benchmark's KV part once and return the figures it wrote as JSON."""
    if shutil.which("node") is None:
        pytest.fail("the benchmark needs node on PATH; scripts/setup installs the rest")
    folder = tmp_path_factory.mktemp("bench")
    json_path, log_path = folder / "figures.json", folder / "bench.log"
    command = [
        "node", str(ROOT / "tools" / "bench" / "bench.mjs"), "--parts", "kv", "--jobs", str(MIN_JOBS),
        "--json", str(json_path), "--log", str(log_path),
    ]
    try:
        completed = subprocess.run(
            command, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=BENCH_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the benchmark timed out after {BENCH_TIMEOUT_SECONDS} s. Its log is in {log_path}")
    if completed.returncode != 0:
        pytest.fail(
            f"the benchmark failed with exit status {completed.returncode}. Its log is in {log_path}\n"
            f"stderr:\n{completed.stderr}"
        )
    return json.loads(json_path.read_text())


@pytest.mark.parametrize("outcome", sorted(EXPECTED))
def test_kv_operations_per_outcome(figures, outcome):
    entry = figures["kv_per_job"][outcome]
    reads, writes, lists = EXPECTED[outcome]
    assert entry["jobs"] >= 1, f"no job ended as {outcome}"
    # Every job of the outcome, not only their mean, made these counts.
    assert entry["range"]["reads"] == [reads, reads]
    assert entry["range"]["writes"] == [writes, writes]
    assert entry["range"]["lists"] == [lists, lists]
    assert entry["range"]["deletes"] == [0, 0]


def test_get_job_costs_one_read(figures):
    counts = figures["kv_per_request"]["get_job"]
    assert (counts["reads"], counts["writes"], counts["lists"]) == (1, 0, 0)


def test_list_page_costs_one_list(figures):
    counts = figures["kv_per_request"]["list_page"]
    assert (counts["reads"], counts["writes"], counts["lists"]) == (0, 0, 1)


def test_outcomes_match_failure_rule(figures):
    # The benchmark predicts each job's outcome with a JavaScript port of the
    # failure rule; a mismatch means the port and src/ disagree.
    assert figures["kv_mismatches"] == []
