import pytest

from conftest import ApiClient
from jobqueue.api import Protection

TOKEN = "s3cret-token"
JOB = {"type": "fetch", "target": "a.png"}


@pytest.fixture
def guarded() -> ApiClient:
    client = ApiClient()
    client.api._protection = Protection(api_token=TOKEN)
    return client


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_post_without_valid_token_is_401(guarded, header):
    if header is not None:
        guarded.headers["authorization"] = header

    status, body, headers = guarded.post_job(JOB)

    assert status == 401
    assert body["code"] == "UNAUTHORIZED"
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert guarded.kv.entries == {}


def test_post_with_token_is_created(guarded):
    guarded.headers["authorization"] = f"Bearer {TOKEN}"

    status, _, _ = guarded.post_job(JOB)

    assert status == 201


def test_retry_needs_token(guarded):
    status, body, _ = guarded.call("POST", "/jobs/00000000-0000-4000-8000-000000000003/retry")

    assert status == 401
    assert guarded.kv.counts.gets == 0


def test_reads_stay_open_with_token_set(guarded):
    guarded.headers["authorization"] = f"Bearer {TOKEN}"
    _, created, _ = guarded.post_job(JOB)
    guarded.headers.clear()

    assert guarded.call("GET", f"/jobs/{created['id']}")[0] == 200
    assert guarded.call("GET", "/jobs")[0] == 200


def test_no_token_configured_leaves_posts_open(client):
    assert client.post_job(JOB)[0] == 201


def test_rate_limit_rejects_past_limit():
    client = ApiClient()
    allowed = iter([True, False])
    keys = []

    async def allow_request(key: str) -> bool:
        keys.append(key)
        return next(allowed)

    client.api._protection = Protection(allow_request=allow_request)
    client.headers["cf-connecting-ip"] = "127.0.0.2"

    first, _, _ = client.post_job(JOB)
    second, body, _ = client.post_job(JOB)

    assert first == 201
    assert second == 429
    assert body["code"] == "RATE_LIMITED"
    assert keys == ["127.0.0.2", "127.0.0.2"]
    assert len(client.queue.sent) == 1
