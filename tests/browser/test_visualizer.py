"""The visualizer page (public/) in headless Chromium, against the offline runtime.

The tests on the `mixed` runtime run in file order and share its jobs: the
first one expects no job yet.
"""

import json
import os
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The README's screenshot is replaced only on request, so a test run leaves the
# checkout clean: UPDATE_SCREENSHOT=1 scripts/test tests/browser
README_SCREENSHOT = ROOT / "docs" / "screenshot.png"

# A job that fails three times took about 6 s on a two-core machine: 1 s and
# 2 s of backoff, plus the queue's 1 s batch timeout before each attempt.
# The bound leaves room for a loaded machine.
JOB_TIMEOUT_SECONDS = 30
# A new job is drawn from the POST response, without waiting for a list read.
APPEAR_TIMEOUT_SECONDS = 1
# The first list read, or one 2 s poll of the list.
LIST_TIMEOUT_SECONDS = 10
TERMINAL = {"done", "failed"}
MARKUP_TARGET = "<img src=x onerror=alert(1)>"


def read_job(base_url: str, job_id: str) -> dict:
    with urllib.request.urlopen(f"{base_url}/jobs/{job_id}", timeout=10) as response:
        return json.load(response)


def read_jobs(base_url: str) -> list[dict]:
    with urllib.request.urlopen(f"{base_url}/jobs?limit=1000", timeout=10) as response:
        return json.load(response)["jobs"]


def open_page(page, base_url: str) -> None:
    page.goto(base_url + "/")
    page.wait_until(lambda: page.text('[data-count="all"]') != "–", LIST_TIMEOUT_SECONDS, "the first list read")


def opened_job(page) -> str | None:
    """Return the id of the job open in the detail panel, from the page's URL."""
    return page.evaluate("new URLSearchParams(location.hash.slice(1)).get('job')")


def enqueue(page, job_type: str, target: str) -> str:
    """Enqueue through the form and return the id of the job the page then opens."""
    previous = opened_job(page)
    page.select("#job-type", job_type)
    page.fill("#job-target", target)
    page.click("#enqueue-button")

    def new_job():
        job_id = opened_job(page)
        return job_id if job_id != previous else None

    return page.wait_until(new_job, JOB_TIMEOUT_SECONDS, f"the page to open the new job for {target!r}")


def wait_for_detail_status(page, job_id: str, statuses: set[str]) -> str:
    """Wait until the detail panel shows `job_id` in one of `statuses`; return that status."""

    def status():
        if page.text("#detail-id") != job_id or not page.call("isVisible", selector="#detail-body"):
            return None
        displayed = page.text("#detail-status")
        return displayed if displayed in statuses else None

    return page.wait_until(status, JOB_TIMEOUT_SECONDS, f"job {job_id} to be {' or '.join(sorted(statuses))}")


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def test_page_headers_and_empty_state(page, mixed_url):
    response = page.goto(mixed_url + "/")

    assert response["status"] == 200
    assert response["headers"]["content-type"].startswith("text/html")
    assert response["headers"]["x-content-type-options"] == "nosniff"
    csp = csp_directives(response["headers"]["content-security-policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    page.wait_until(lambda: page.text("#live-text") == "Live", LIST_TIMEOUT_SECONDS, "the live indicator")
    assert page.text("#list-empty").startswith("No jobs yet")
    assert page.text('[data-count="all"]') == "0"
    events = page.events()
    assert events["cspViolations"] == []
    assert events["pageErrors"] == []
    assert events["consoleErrors"] == []


def test_enqueued_job_timeline_then_no_polling(page, mixed_url):
    open_page(page, mixed_url)

    job_id = enqueue(page, "fetch", "https://example.com/image.png")

    page.wait_until(lambda: page.count(f'#job-rows tr[data-id="{job_id}"]') == 1,
                    APPEAR_TIMEOUT_SECONDS, "the new job's row")
    status = wait_for_detail_status(page, job_id, TERMINAL)
    record = read_job(mixed_url, job_id)
    history = record["history"]
    assert status == record["status"]
    assert page.texts("#timeline .tl-entry .tl-status") == [entry["status"] for entry in history]
    assert page.texts("#timeline .tl-entry .tl-time") != []
    assert page.texts("#timeline .tl-error") == [entry["error"] for entry in history if "error" in entry]
    assert page.texts("#timeline .tl-result") == [entry["result"] for entry in history if "result" in entry]
    retries = sum(1 for entry in history if entry["status"] == "queued" and "error" in entry)
    assert page.count("#timeline .tl-backoff") == retries
    attempts = [f"attempt {entry['attempt']}" for entry in history if entry["attempt"] > 0]
    assert page.texts("#timeline .tl-entry .tl-attempt") == attempts
    page.wait_until(lambda: page.text(f'#job-rows tr[data-id="{job_id}"] .badge') == record["status"],
                    LIST_TIMEOUT_SECONDS, "the list row to show the final status")

    # A finished job's detail is not read again; the list goes on.
    detail_request = f"GET /jobs/{job_id}"
    reads_when_finished = page.events()["requests"].count(detail_request)
    time.sleep(2.5)  # two detail poll intervals, one list poll interval
    requests = page.events()["requests"]
    assert requests.count(detail_request) == reads_when_finished
    assert requests[-1].startswith("GET /jobs?limit=")


def test_target_markup_is_shown_as_text(page, mixed_url):
    open_page(page, mixed_url)

    job_id = enqueue(page, "fetch", MARKUP_TARGET)

    page.wait_until(lambda: page.text("#detail-target") == MARKUP_TARGET, JOB_TIMEOUT_SECONDS, "the detail's target")
    assert page.text(f'#job-rows tr[data-id="{job_id}"] .target-link') == MARKUP_TARGET
    assert page.count("img") == 0
    events = page.events()
    assert events["dialogs"] == []
    assert events["cspViolations"] == []
    assert events["pageErrors"] == []


def test_rejected_enqueue_shows_api_error(page, mixed_url):
    open_page(page, mixed_url)
    page.fill("#job-target", "   ")

    page.click("#enqueue-button")

    message = page.wait_until(lambda: page.text("#form-message"), LIST_TIMEOUT_SECONDS, "the form's message")
    assert "INVALID_TARGET" in message
    assert message.startswith("Not enqueued: target")
    assert page.call("getAttribute", "data-kind", selector="#form-message") == "error"


def test_keyboard_enqueues_and_opens_job(page, mixed_url):
    open_page(page, mixed_url)
    page.fill("#job-target", "keyboard.png")

    page.press("#job-target", "Enter")
    job_id = page.wait_until(lambda: opened_job(page), JOB_TIMEOUT_SECONDS, "the page to open the enqueued job")
    page.press("#detail-close", "Enter")
    assert opened_job(page) is None
    page.press(f'#job-rows tr[data-id="{job_id}"] .target-link', "Enter")

    assert opened_job(page) == job_id
    wait_for_detail_status(page, job_id, {"queued", "processing", "done", "failed"})


def test_burst_counts_filter_and_screenshot(page, mixed_url, tmp_path):
    open_page(page, mixed_url)
    before = int(page.text('[data-count="all"]'))

    page.click('[data-burst="10"]')

    page.wait_until(lambda: int(page.text('[data-count="all"]')) == before + 10,
                    LIST_TIMEOUT_SECONDS, "ten new rows")
    page.wait_until(
        lambda: page.text('[data-count="queued"]') == "0" and page.text('[data-count="processing"]') == "0",
        JOB_TIMEOUT_SECONDS, "every job of the burst to finish",
    )
    for status in ("done", "failed"):
        page.click(f'.stat-{status}')
        expected = int(page.text(f'[data-count="{status}"]'))
        assert page.texts("#job-rows .badge") == [status] * expected
        if expected == 0:
            assert page.text("#list-empty") == f"No {status} jobs among these {before + 10}."
    page.click(".stat-all")
    assert page.count("#job-rows tr") == before + 10

    # The screenshot shows the job with the longest story.
    jobs = read_jobs(mixed_url)
    longest = max(jobs, key=lambda job: (job["attempts"], job["status"] == "failed", job["enqueuedAt"]))
    page.click(f'#job-rows tr[data-id="{longest["id"]}"] .target-link')
    wait_for_detail_status(page, longest["id"], TERMINAL)
    page.evaluate("document.activeElement.blur()")
    page.call("hover", selector="h1")
    screenshot = README_SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / "screenshot.png"
    page.screenshot(screenshot)
    assert screenshot.stat().st_size > 10_000


SET_HIDDEN = """hidden => {
  Object.defineProperty(document, "hidden", { value: hidden, configurable: true });
  Object.defineProperty(document, "visibilityState", { value: hidden ? "hidden" : "visible", configurable: true });
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def list_reads(page) -> int:
    return sum(1 for request in page.events()["requests"] if request.startswith("GET /jobs?limit="))


def test_hidden_tab_stops_fast_polling(page, mixed_url):
    open_page(page, mixed_url)

    page.evaluate(f"({SET_HIDDEN})(true)")
    reads_when_hidden = list_reads(page)
    time.sleep(4.5)  # two visible list poll intervals
    reads_while_hidden = list_reads(page) - reads_when_hidden
    page.evaluate(f"({SET_HIDDEN})(false)")

    assert reads_while_hidden == 0
    page.wait_until(lambda: list_reads(page) > reads_when_hidden, 1, "a list read once visible again")


def test_phone_width_has_no_horizontal_scroll(page, mixed_url):
    page.call("setViewportSize", {"width": 375, "height": 800})
    open_page(page, mixed_url)

    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert page.call("isVisible", selector="#enqueue-button")
    assert not page.call("isVisible", selector="#detail")
    page.click("#job-rows tr >> nth=0")
    page.wait_until(lambda: page.call("isVisible", selector="#detail-body"), LIST_TIMEOUT_SECONDS, "the detail")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


def test_retry_of_failed_job_shows_new_cycle(page, failing_url, failing_job_id):
    page.goto(f"{failing_url}/#job={failing_job_id}")
    wait_for_detail_status(page, failing_job_id, {"failed"})
    assert page.count("#timeline .tl-backoff") == 2
    assert page.call("isVisible", selector="#retry-button")

    page.click("#retry-button")

    page.wait_until(lambda: "Queued again" in page.text("#detail-message"), LIST_TIMEOUT_SECONDS, "the retry's message")
    assert page.count("#timeline .tl-cycle") == 1
    assert "manual retry" in page.texts("#timeline .tl-note")
    page.wait_until(
        lambda: "attempt 4" in page.texts("#timeline .tl-entry.status-processing .tl-attempt"),
        JOB_TIMEOUT_SECONDS, "attempt 4 to start",
    )
    page.wait_until(lambda: page.count("#timeline .tl-backoff") == 3, JOB_TIMEOUT_SECONDS, "the new cycle's first backoff")
