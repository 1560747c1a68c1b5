import json
import re

import pytest

from conftest import ApiClient
from jobqueue.config import ConfigError
from jobqueue.jobs import parse_timestamp
from jobqueue.store import RECORD_TTL_SECONDS

TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def test_create_job_answers_201_with_queued_record(client):
    status, body, headers = client.post_job({"type": "fetch", "target": "https://example.com/image.png"})

    assert status == 201
    assert body["type"] == "fetch"
    assert body["target"] == "https://example.com/image.png"
    assert body["status"] == "queued"
    assert body["attempts"] == 0
    assert body["enqueuedAt"] == body["updatedAt"]
    assert body["history"] == [{"status": "queued", "at": body["enqueuedAt"], "attempt": 0}]
    assert "result" not in body
    assert "error" not in body
    assert headers["Location"] == f"/jobs/{body['id']}"


def test_create_job_formats_timestamps_with_milliseconds(client):
    _, body, _ = client.post_job({"type": "resize", "target": "photo.png"})

    assert re.fullmatch(TIMESTAMP, body["enqueuedAt"])
    assert parse_timestamp(body["enqueuedAt"]).utcoffset().total_seconds() == 0


def test_create_job_stores_record_and_sends_one_message(client):
    _, body, _ = client.post_job({"type": "resize", "target": "photo.png"})

    assert client.kv.record(f"job:{body['id']}") == body
    assert client.kv.entries[f"job:{body['id']}"][2] == client.clock.now + RECORD_TTL_SECONDS
    assert client.kv.metadata(f"job:{body['id']}") == {
        "status": "queued", "type": "resize", "attempts": 0, "target": "photo.png",
        "enqueuedAt": body["enqueuedAt"], "updatedAt": body["updatedAt"],
    }
    assert client.queue.sent == [{
        "jobId": body["id"], "type": "resize", "target": "photo.png",
        "enqueuedAt": body["enqueuedAt"], "cycleStart": 0,
    }]
    assert client.kv.counts.puts == 1
    assert client.kv.counts.gets == 0


def test_create_job_trims_target(client):
    status, body, _ = client.post_job({"type": "fetch", "target": "  \t photo.png \n"})

    assert status == 201
    assert body["target"] == "photo.png"


def test_get_job_returns_stored_record(client):
    _, created, _ = client.post_job({"type": "fetch", "target": "a.png"})

    status, body, headers = client.call("GET", f"/jobs/{created['id']}")

    assert status == 200
    assert body == created
    assert headers["Cache-Control"] == "no-store"
    assert client.kv.counts.gets == 1


def test_get_unknown_job_is_not_found(client):
    status, body, _ = client.call("GET", "/jobs/00000000-0000-4000-8000-000000000000")

    assert status == 404
    assert body["code"] == "NOT_FOUND"
    assert client.kv.counts.gets == 1


@pytest.mark.parametrize("job_id", [
    "not-a-uuid",
    "00000000-0000-4000-8000-00000000000",  # one digit short
    "00000000-0000-4000-8000-0000000000000",  # one digit long
    "0000000A-0000-4000-8000-000000000000",  # uppercase
    "00000000-0000-4000-8000-000000000000%2Fx",
    "x" * 5000,
])
def test_get_impossible_id_is_not_found_without_kv_read(client, job_id):
    status, body, _ = client.call("GET", f"/jobs/{job_id}")

    assert status == 404
    assert body["code"] == "NOT_FOUND"
    assert len(body["error"]) < 200
    assert client.kv.counts.gets == 0


def test_empty_job_id_is_not_found(client):
    status, body, _ = client.call("GET", "/jobs/")

    assert status == 404
    assert body["error"] == "job id is missing: use /jobs/<id>"


def test_job_path_with_slash_is_not_found(client):
    status, body, _ = client.call("GET", "/jobs/00000000-0000-4000-8000-000000000000/x")

    assert status == 404
    assert body["code"] == "NOT_FOUND"
    assert client.kv.counts.gets == 0


@pytest.mark.parametrize("path", ["/nope", "/jobs/", "/JOBS", "/index.html"])
def test_unknown_path_is_not_found(client, path):
    status, body, _ = client.call("GET", path)

    assert status == 404
    assert body["code"] == "NOT_FOUND"


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PUT", "/jobs", "GET, HEAD, POST"),
    ("DELETE", "/jobs", "GET, HEAD, POST"),
    ("GET", "/jobs/00000000-0000-4000-8000-000000000000/retry", "POST"),
    ("DELETE", "/jobs/00000000-0000-4000-8000-000000000000", "GET, HEAD"),
    ("POST", "/jobs/00000000-0000-4000-8000-000000000000", "GET, HEAD"),
    ("POST", "/", "GET, HEAD"),
    ("POST", "/api", "GET, HEAD"),
])
def test_wrong_method_is_405_with_allow(client, method, path, allow):
    status, body, headers = client.call(method, path)

    assert status == 405
    assert body["code"] == "METHOD_NOT_ALLOWED"
    assert headers["Allow"] == allow


@pytest.mark.parametrize("path", ["/api", "/"])
def test_api_route_describes_the_api(client, path):
    status, body, _ = client.call("GET", path)

    assert status == 200
    assert set(body["endpoints"]) == {"GET /", "POST /jobs", "GET /jobs", "GET /jobs/{id}", "POST /jobs/{id}/retry"}


@pytest.mark.parametrize(("raw", "code"), [
    ("{", "INVALID_BODY"),
    ("", "INVALID_BODY"),
    ("   ", "INVALID_BODY"),
    ("[]", "INVALID_BODY"),
    ('["fetch", "a"]', "INVALID_BODY"),
    ("null", "INVALID_BODY"),
    ("42", "INVALID_BODY"),
    ('"fetch"', "INVALID_BODY"),
    ('{"type": "fetch", "target": NaN}', "INVALID_BODY"),
    ('{"type": "fetch", "target": "a", "n": Infinity}', "INVALID_BODY"),
    ('{"type": "fetch", "type": "resize", "target": "a"}', "INVALID_BODY"),
    ("[" * 8000 + "]" * 8000, "INVALID_BODY"),  # nested past the WebAssembly stack in Pyodide
    ('{"type": "fetch", "target": "a", "x": ' + "[" * 33 + "]" * 33 + "}", "INVALID_BODY"),
    ('{"type": "fetch", "target": "a", "n": ' + "9" * 5000 + "}", "INVALID_BODY"),
    ('{"type": "fetch", "target": "a\\ud800b"}', "INVALID_TARGET"),
    ('{"type": "fetch", "target": "\\udfff"}', "INVALID_TARGET"),
    ('{"target": "a"}', "INVALID_TYPE"),
    ('{"type": null, "target": "a"}', "INVALID_TYPE"),
    ('{"type": 1, "target": "a"}', "INVALID_TYPE"),
    ('{"type": ["fetch"], "target": "a"}', "INVALID_TYPE"),
    ('{"type": "FETCH", "target": "a"}', "INVALID_TYPE"),
    ('{"type": "delete", "target": "a"}', "INVALID_TYPE"),
    ('{"type": " fetch", "target": "a"}', "INVALID_TYPE"),
    ('{"type": "fetch"}', "INVALID_TARGET"),
    ('{"type": "fetch", "target": null}', "INVALID_TARGET"),
    ('{"type": "fetch", "target": 12}', "INVALID_TARGET"),
    ('{"type": "fetch", "target": true}', "INVALID_TARGET"),
    ('{"type": "fetch", "target": {"url": "a"}}', "INVALID_TARGET"),
    ('{"type": "fetch", "target": ""}', "INVALID_TARGET"),
    ('{"type": "fetch", "target": " \\t\\n "}', "INVALID_TARGET"),
    ('{"type": "fetch", "target": "a\\u0000b"}', "INVALID_TARGET"),
    ('{"type": "fetch", "target": "a\\u001bb"}', "INVALID_TARGET"),
    ('{"type": "fetch", "target": "a\\u0085b"}', "INVALID_TARGET"),
])
def test_invalid_body_is_400_and_stores_nothing(client, raw, code):
    status, body, _ = client.call("POST", "/jobs", raw)

    assert status == 400
    assert body["code"] == code
    assert body["error"]
    assert client.kv.entries == {}
    assert client.queue.sent == []


@pytest.mark.parametrize(("raw", "expected"), [
    (b"\xef\xbb\xbf" + b'{"type": "fetch", "target": "a"}', "byte order mark"),
    (b'{"type": "fetch", "target": "\xff"}', "not valid UTF-8"),
])
def test_undecodable_body_is_invalid_body(client, raw, expected):
    status, body, _ = client.call("POST", "/jobs", raw)

    assert status == 400
    assert body["code"] == "INVALID_BODY"
    assert expected in body["error"]


def test_brackets_inside_strings_do_not_count_as_nesting(client):
    status, body, _ = client.post_job({"type": "fetch", "target": "[" * 100 + '\\"{' * 50})

    assert status == 201
    assert body["target"] == "[" * 100 + '\\"{' * 50


def test_nesting_of_32_levels_is_accepted(client):
    raw = '{"type": "fetch", "target": "a", "x": ' + "[" * 31 + "]" * 31 + "}"

    status, _, _ = client.call("POST", "/jobs", raw)

    assert status == 201


def test_target_of_500_characters_is_accepted(client):
    status, body, _ = client.post_job({"type": "fetch", "target": "a" * 500})

    assert status == 201
    assert body["target"] == "a" * 500


def test_target_of_501_characters_is_rejected(client):
    status, body, _ = client.post_job({"type": "fetch", "target": "a" * 501})

    assert status == 400
    assert body["code"] == "INVALID_TARGET"
    assert "501" in body["error"]


def test_target_length_counts_characters_after_trimming(client):
    status, _, _ = client.post_job({"type": "fetch", "target": "  " + "a" * 500 + "  "})

    assert status == 201


def test_target_of_500_emoji_is_accepted(client):
    # 500 characters are 2000 bytes in UTF-8 and 1000 UTF-16 code units; KV
    # measures metadata as UTF-8 JSON, which must stay within 1024 bytes.
    status, body, _ = client.post_job({"type": "fetch", "target": "\U0001F600" * 500})

    assert status == 201
    assert body["target"] == "\U0001F600" * 500
    assert len(json.dumps(client.kv.metadata(f"job:{body['id']}"), ensure_ascii=False).encode()) <= 1024


def test_target_of_501_emoji_is_rejected(client):
    status, body, _ = client.post_job({"type": "fetch", "target": "\U0001F600" * 501})

    assert status == 400
    assert body["code"] == "INVALID_TARGET"


def test_body_over_16_kib_is_413(client):
    raw = json.dumps({"type": "fetch", "target": "a", "padding": "x" * 16 * 1024})

    status, body, _ = client.call("POST", "/jobs", raw)

    assert status == 413
    assert body["code"] == "PAYLOAD_TOO_LARGE"
    assert client.kv.entries == {}


def test_unknown_fields_are_ignored(client):
    status, body, _ = client.post_job({"type": "fetch", "target": "a", "priority": 5})

    assert status == 201
    assert "priority" not in body


def test_failed_send_is_503_and_leaves_no_record(client):
    client.queue.send_errors.extend([RuntimeError("Queue send failed: 500")] * 3)

    status, body, _ = client.post_job({"type": "fetch", "target": "a"})

    assert status == 503
    assert body["code"] == "ENQUEUE_FAILED"
    assert client.kv.entries == {}
    assert client.queue.sent == []


def test_delete_after_failed_send_is_retried(client):
    client.queue.send_errors.extend([RuntimeError("Queue send failed: 500")] * 3)
    client.kv.delete_errors.append(RuntimeError("KV DELETE failed: 500 Internal Server Error"))

    status, _, _ = client.post_job({"type": "fetch", "target": "a"})

    assert status == 503
    assert client.kv.entries == {}
    assert client.kv.counts.deletes == 2


def test_delete_after_failed_send_waits_for_write_slot(client):
    client.queue.send_errors.extend([RuntimeError("Queue send failed: 500")] * 3)

    client.post_job({"type": "fetch", "target": "a"})

    # The send backoffs of 0.2 s and 0.5 s, then the rest of the second since the record's write.
    assert client.clock.sleeps == [0.2, 0.5, pytest.approx(0.3)]


def test_send_failing_twice_is_retried(client):
    client.queue.send_errors.extend([RuntimeError("Queue send failed: 500")] * 2)

    status, body, _ = client.post_job({"type": "fetch", "target": "a"})

    assert status == 201
    assert [message["jobId"] for message in client.queue.sent] == [body["id"]]
    assert client.kv.record(f"job:{body['id']}")["status"] == "queued"
    assert client.clock.sleeps == [0.2, 0.5]


def test_delete_failing_after_failed_send_names_kept_record(client):
    client.queue.send_errors.extend([RuntimeError("Queue send failed: 500")] * 3)
    client.kv.delete_errors.extend([RuntimeError("KV DELETE failed: 500 Internal Server Error")] * 3)

    status, body, _ = client.post_job({"type": "fetch", "target": "a"})

    [key] = client.kv.entries
    assert status == 503
    assert body["code"] == "ENQUEUE_FAILED"
    assert key.removeprefix("job:") in body["error"]
    assert "will not run" in body["error"]
    assert client.kv.counts.deletes == 3


def test_kv_write_failing_once_is_retried(client):
    client.kv.put_errors.append(RuntimeError("KV PUT failed: 500 Internal Server Error"))

    status, body, _ = client.post_job({"type": "fetch", "target": "a"})

    assert status == 201
    assert client.kv.record(f"job:{body['id']}")["status"] == "queued"
    assert len(client.queue.sent) == 1


def test_failed_kv_write_is_503_and_sends_nothing(client):
    client.kv.put_errors.extend([RuntimeError("KV PUT failed: 500 Internal Server Error")] * 3)

    status, body, _ = client.post_job({"type": "fetch", "target": "a"})

    assert status == 503
    assert body["code"] == "STORAGE_UNAVAILABLE"
    assert client.queue.sent == []


def test_failed_kv_read_is_503(client):
    client.kv.get_errors.extend([RuntimeError("KV GET failed: 500 Internal Server Error")] * 3)

    status, body, _ = client.call("GET", "/jobs/00000000-0000-4000-8000-000000000000")

    assert status == 503
    assert body["code"] == "STORAGE_UNAVAILABLE"


def test_unexpected_exception_is_500_without_trace(client):
    client.api._store = None  # saving the new job then raises AttributeError

    status, body, _ = client.post_job({"type": "fetch", "target": "a"})

    assert status == 500
    assert body == {"error": "internal error; the Worker's log has the details", "code": "INTERNAL_ERROR"}


def test_invalid_var_fails_every_request_naming_it():
    client = ApiClient()

    def broken_settings():
        raise ConfigError("var MAX_ATTEMPTS must be an integer from 1 to 100, got 'three'")

    client.api._load_settings = broken_settings

    status, body, _ = client.call("GET", "/")

    assert status == 500
    assert body["code"] == "INVALID_CONFIG"
    assert "MAX_ATTEMPTS" in body["error"]
