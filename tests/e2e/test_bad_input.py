"""Bad and borderline requests over HTTP: each gets its exact status and error code, never a 500.

The cases live in tools/reliability/inputs.py, which the load report
(tools/reliability/run.py) sends too. A case that the Worker or the offline
runtime gets wrong today is marked xfail with what happens instead, strictly,
so that a fix shows up as a failure to remove the mark.
"""

import json

import pytest

from tools.reliability import inputs
from tools.reliability.check import WorkerClient

from .runtimes import running_runtime

API_TOKEN = "e2e-token-7d1f9c"  # only for the runtime that the API_TOKEN tests start
TARGET = "bad-input.png"


def _params(cases):
    params = []
    for case in cases:
        marks = [pytest.mark.xfail(strict=True, reason=case.known_bug)] if case.known_bug else []
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


def _expected_target(case: inputs.Case) -> str:
    return json.loads(case.body)["target"].strip()


@pytest.fixture(scope="module")
def client(base_url) -> WorkerClient:
    return WorkerClient(base_url, tries=1)


@pytest.fixture(scope="module")
def job_id(client) -> str:
    """The id of a job that exists, for the cases that vary an id."""
    status, _, raw = client.request("POST", "/jobs", inputs.job_body(type="fetch", target=TARGET))
    assert status == 201, raw
    return json.loads(raw)["id"]


@pytest.mark.parametrize("case", _params([case for case in inputs.ALL_CASES if not case.needs_own_runtime]))
def test_bad_input_status_and_code(client, job_id, case):
    status, code, body = inputs.send(client, case, job_id)

    assert status == case.status, body
    assert code == case.code, body
    if case.code is not None:
        assert isinstance(body["error"], str)
        assert body["error"]
    elif case.method == "POST" and case.path == "/jobs":
        # An accepted body must be stored as sent: trimmed, and otherwise unchanged.
        record = client.get_job(body["id"])
        assert record["target"] == _expected_target(case)
        assert record["status"] in {"queued", "processing", "done", "failed"}


@pytest.mark.parametrize("case", _params([case for case in inputs.ALL_CASES if case.needs_own_runtime]))
def test_bad_input_on_own_runtime(case):
    with running_runtime() as runtime:
        client = WorkerClient(runtime.base_url, tries=1)
        try:
            status, code, body = inputs.send(client, case, "00000000-0000-8000-8000-000000000000")
        except OSError as error:
            status, code, body = None, None, f"no response: {error}"
        try:
            next_status = client.request("GET", "/jobs?limit=1")[0]
        except OSError as error:
            next_status = f"no response: {error}"

        assert status == case.status, body
        assert code == case.code, body
        assert next_status == 200, "the runtime failed the request after the case"


@pytest.fixture(scope="module")
def token_client():
    with running_runtime("--var", f"API_TOKEN={API_TOKEN}") as runtime:
        yield WorkerClient(runtime.base_url, tries=1)


def _post_job(client: WorkerClient, headers: dict[str, str], body: bytes | None = None):
    body = inputs.job_body(type="fetch", target=TARGET) if body is None else body
    status, response_headers, raw = client.request("POST", "/jobs", body, headers)
    return status, response_headers, json.loads(raw)


@pytest.mark.parametrize("authorization", [
    None,
    "Bearer wrong-token",
    f"Bearer {API_TOKEN}x",
    f"Bearer {API_TOKEN[:-1]}",
    "Bearer ",
    f"Basic {API_TOKEN}",
    API_TOKEN,
])
def test_api_token_rejects_post(token_client, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}

    status, response_headers, body = _post_job(token_client, headers)

    assert status == 401, body
    assert body["code"] == "UNAUTHORIZED"
    assert response_headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_api_token_accepts_post(token_client, scheme):
    status, response_headers, body = _post_job(token_client, {"Authorization": f"{scheme} {API_TOKEN}"})

    assert status == 201, body
    assert response_headers["Location"] == f"/jobs/{body['id']}"


def test_api_token_checked_before_body(token_client):
    status, _, body = _post_job(token_client, {}, b"{not json")

    assert status == 401, body
    assert body["code"] == "UNAUTHORIZED"


def test_api_token_leaves_reads_open(token_client):
    status, _, created = _post_job(token_client, {"Authorization": f"Bearer {API_TOKEN}"})
    assert status == 201, created

    listed, _, raw_list = token_client.request("GET", "/jobs?limit=5")
    read, _, raw_job = token_client.request("GET", f"/jobs/{created['id']}")

    assert listed == 200, raw_list
    assert created["id"] in [job["id"] for job in json.loads(raw_list)["jobs"]]
    assert read == 200, raw_job
    assert json.loads(raw_job)["id"] == created["id"]


def test_api_token_guards_retry(token_client):
    status, _, created = _post_job(token_client, {"Authorization": f"Bearer {API_TOKEN}"})
    assert status == 201, created
    path = f"/jobs/{created['id']}/retry"

    without_token, _, raw_without = token_client.request("POST", path)
    with_token, _, raw_with = token_client.request("POST", path, None, {"Authorization": f"Bearer {API_TOKEN}"})

    assert without_token == 401, raw_without
    assert json.loads(raw_without)["code"] == "UNAUTHORIZED"
    # With the token the request reaches the job, which is not failed.
    assert with_token == 409, raw_with
    assert json.loads(raw_with)["code"] == "CONFLICT"
