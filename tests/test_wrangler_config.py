import os
import subprocess
import tomllib
from pathlib import Path

from jobqueue.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "wrangler.toml").read_text())


def consumer(queue: str) -> dict:
    [settings] = [c for c in CONFIG["queues"]["consumers"] if c["queue"] == queue]
    return settings


def test_vars_match_code_defaults():
    assert load_settings(CONFIG["vars"].get) == Settings()


def test_platform_retries_match_attempt_limit():
    main = consumer("queue-job-visualizer")

    assert main["max_retries"] == int(CONFIG["vars"]["MAX_ATTEMPTS"]) - 1


def test_dead_letter_queue_is_consumed_by_this_worker():
    main = consumer("queue-job-visualizer")

    assert main["dead_letter_queue"] == "queue-job-visualizer-dlq"
    assert consumer("queue-job-visualizer-dlq")["queue"].endswith("-dlq")


def test_producer_sends_to_consumed_queue():
    [producer] = CONFIG["queues"]["producers"]

    assert producer["binding"] == "JOBS_QUEUE"
    assert producer["queue"] == "queue-job-visualizer"


def test_deployed_sdk_pin_matches_dev_pin():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deployed = [r for r in pyproject["project"]["dependencies"] if r.startswith("workers-runtime-sdk")]
    developed = [r for r in pyproject["dependency-groups"]["dev"] if r.startswith("workers-runtime-sdk")]

    assert deployed == developed
    assert deployed[0].startswith("workers-runtime-sdk==")


def test_compatibility_date_uses_vendored_sdk():
    # From 2026-04-21 workerd loads the SDK that pywrangler vendors, not its own.
    assert CONFIG["compatibility_date"] >= "2026-04-21"


def test_wrangler_dry_run_accepts_config(tmp_path):
    result = subprocess.run(
        ["npx", "--no-install", "wrangler", "deploy", "--dry-run", "--outdir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
        env={**os.environ, "WRANGLER_SEND_METRICS": "false"},
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert "env.JOBS " in result.stdout
    assert "env.JOBS_QUEUE (queue-job-visualizer)" in result.stdout
    assert (tmp_path / "entry.py").exists()
