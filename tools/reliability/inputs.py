"""Bad and borderline requests, each with the status and error code the API must return.

tests/e2e/test_bad_input.py sends every case and asserts the result, and
tools/reliability/run.py sends them again for docs/reliability.md.
"""

import json
from dataclasses import dataclass, field
from typing import Any

MAX_BODY_BYTES = 16 * 1024
MAX_TARGET_CHARS = 500
# A body needs no nesting at all, so this depth only tests the parser; it
# still fits in MAX_BODY_BYTES.
DEEP_NESTING_LEVELS = 7000
# Python 3.11 and later reject integers of more digits than this in
# int(str), so json.loads raises ValueError for a longer number.
INT_MAX_STR_DIGITS = 4300
# Placeholders in a path for the id of a job that exists, as the API
# returned it and in upper case; resolve_path fills them in.
JOB_ID = "{job_id}"
JOB_ID_UPPER = "{JOB_ID}"
EMOJI = "\U0001F600"  # one code point, four bytes in UTF-8


@dataclass(frozen=True)
class Case:
    """One request and the status and error code it must get (code None for a success)."""

    name: str
    method: str
    path: str
    body: bytes | None
    status: int
    code: str | None
    # The body is sent in chunks without Content-Length.
    chunked: bool = False
    # Set when the Worker or the offline runtime gets this case wrong today:
    # what happens instead.
    known_bug: str | None = None
    # The case can break the runtime, so it runs on a runtime of its own,
    # which must still respond to a request afterwards.
    needs_own_runtime: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def resolve_path(path: str, job_id: str) -> str:
    """Return ``path`` with the placeholders replaced by ``job_id``."""
    return path.replace(JOB_ID, job_id).replace(JOB_ID_UPPER, job_id.upper())


def job_body(**fields) -> bytes:
    return json.dumps(fields, ensure_ascii=False).encode()


def _padded_body(size: int) -> bytes:
    """Return a valid job body of exactly ``size`` bytes, padded with spaces before the closing brace."""
    start = b'{"type": "fetch", "target": "padded.png"'
    return start + b" " * (size - len(start) - 1) + b"}"


def _post(name: str, body: bytes, status: int, code: str | None, **options) -> Case:
    return Case(name, "POST", "/jobs", body, status, code, **options)


def _deeply_nested(levels: int) -> bytes:
    return b'{"type": "fetch", "target": "a", "nested": ' + b"[" * levels + b"]" * levels + b"}"


BODY_CASES = [
    _post("body of exactly 16 KiB", _padded_body(MAX_BODY_BYTES), 201, None),
    _post("body of 16 KiB + 1 byte", _padded_body(MAX_BODY_BYTES + 1), 413, "PAYLOAD_TOO_LARGE"),
    _post("chunked body of exactly 16 KiB", _padded_body(MAX_BODY_BYTES), 201, None, chunked=True),
    _post("chunked body of 16 KiB + 1 byte", _padded_body(MAX_BODY_BYTES + 1), 413, "PAYLOAD_TOO_LARGE", chunked=True),
    _post(
        "body of 1 MiB",
        _padded_body(1024 * 1024),
        413,
        "PAYLOAD_TOO_LARGE",
        needs_own_runtime=True,
    ),
    _post(
        "chunked body of 1 MiB",
        _padded_body(1024 * 1024),
        413,
        "PAYLOAD_TOO_LARGE",
        chunked=True,
        needs_own_runtime=True,
    ),
    _post("empty body", b"", 400, "INVALID_BODY"),
    _post("JSON null", b"null", 400, "INVALID_BODY"),
    _post("JSON number", b"1", 400, "INVALID_BODY"),
    _post("JSON string", b'"fetch"', 400, "INVALID_BODY"),
    _post("JSON array", b'[{"type": "fetch", "target": "a"}]', 400, "INVALID_BODY"),
    _post("truncated JSON", b'{"type": "fetch", "target": "a"', 400, "INVALID_BODY"),
    _post("NaN", b'{"type": "fetch", "target": "a", "n": NaN}', 400, "INVALID_BODY"),
    _post("Infinity", b'{"type": "fetch", "target": "a", "n": Infinity}', 400, "INVALID_BODY"),
    _post("-Infinity", b'{"type": "fetch", "target": "a", "n": -Infinity}', 400, "INVALID_BODY"),
    _post("duplicate key type", b'{"type": "fetch", "type": "resize", "target": "a"}', 400, "INVALID_BODY"),
    _post("duplicate key target", b'{"type": "fetch", "target": "a", "target": "b"}', 400, "INVALID_BODY"),
    _post("duplicate key in a nested object", b'{"type": "fetch", "target": "a", "x": {"k": 1, "k": 2}}', 400, "INVALID_BODY"),
    _post("invalid UTF-8 byte 0xFF", b'{"type": "fetch", "target": "\xff"}', 400, "INVALID_BODY"),
    _post("overlong UTF-8 encoding of /", b'{"type": "fetch", "target": "\xc0\xaf"}', 400, "INVALID_BODY"),
    _post("truncated UTF-8 sequence", b'{"type": "fetch", "target": "\xe2\x82"}', 400, "INVALID_BODY"),
    _post("UTF-8 encoded surrogate", b'{"type": "fetch", "target": "\xed\xa0\x80"}', 400, "INVALID_BODY"),
    _post("byte order mark before the body", b"\xef\xbb\xbf" + job_body(type="fetch", target="a"), 400, "INVALID_BODY"),
    _post("UTF-16 body", job_body(type="fetch", target="a").decode().encode("utf-16"), 400, "INVALID_BODY"),
    _post(
        f"integer of {INT_MAX_STR_DIGITS + 700} digits in an extra field",
        b'{"type": "fetch", "target": "a", "n": ' + b"1" * (INT_MAX_STR_DIGITS + 700) + b"}",
        400,
        "INVALID_BODY",
    ),
    _post(
        f"JSON nested {DEEP_NESTING_LEVELS} levels deep",
        _deeply_nested(DEEP_NESTING_LEVELS),
        400,
        "INVALID_BODY",
        # Before commit c1b6c8b this overflowed the WebAssembly stack in
        # json.loads, and the Pyodide fatal error stopped the whole runtime.
        needs_own_runtime=True,
    ),
]

FIELD_CASES = [
    _post("type missing", job_body(target="a"), 400, "INVALID_TYPE"),
    _post("type as a number", job_body(type=1, target="a"), 400, "INVALID_TYPE"),
    _post("type as a boolean", job_body(type=True, target="a"), 400, "INVALID_TYPE"),
    _post("type as an object", job_body(type={"name": "fetch"}, target="a"), 400, "INVALID_TYPE"),
    _post("type as an array", job_body(type=["fetch"], target="a"), 400, "INVALID_TYPE"),
    _post("type as null", job_body(type=None, target="a"), 400, "INVALID_TYPE"),
    _post("type in upper case", job_body(type="FETCH", target="a"), 400, "INVALID_TYPE"),
    _post("type with a trailing space", job_body(type="fetch ", target="a"), 400, "INVALID_TYPE"),
    _post("target missing", job_body(type="fetch"), 400, "INVALID_TARGET"),
    _post("target as a number", job_body(type="fetch", target=12), 400, "INVALID_TARGET"),
    _post("target as a boolean", job_body(type="fetch", target=False), 400, "INVALID_TARGET"),
    _post("target as an object", job_body(type="fetch", target={"url": "a"}), 400, "INVALID_TARGET"),
    _post("target as an array", job_body(type="fetch", target=["a"]), 400, "INVALID_TARGET"),
    _post("target as null", job_body(type="fetch", target=None), 400, "INVALID_TARGET"),
    _post("target empty", job_body(type="fetch", target=""), 400, "INVALID_TARGET"),
    _post("target of Unicode whitespace only", job_body(type="fetch", target=" \t\u3000\u2003"), 400, "INVALID_TARGET"),
    _post("target with NUL", job_body(type="fetch", target="a\u0000b"), 400, "INVALID_TARGET"),
    _post("target ending in NUL", job_body(type="fetch", target="a\u0000"), 400, "INVALID_TARGET"),
    _post("target with a newline inside", job_body(type="fetch", target="a\nb"), 400, "INVALID_TARGET"),
    _post("target with ESC", job_body(type="fetch", target="a\u001b[31mb"), 400, "INVALID_TARGET"),
    _post("target with DEL", job_body(type="fetch", target="a\u007fb"), 400, "INVALID_TARGET"),
    _post("target with a C1 control", job_body(type="fetch", target="a\u0085b"), 400, "INVALID_TARGET"),
    _post("target with a raw control byte", b'{"type": "fetch", "target": "a\x01b"}', 400, "INVALID_BODY"),
    _post("target with a raw tab", b'{"type": "fetch", "target": "a\tb"}', 400, "INVALID_BODY"),
    _post(
        "target with an unpaired surrogate escape",
        b'{"type": "fetch", "target": "a\\ud800b"}',
        400,
        "INVALID_TARGET",
    ),
    _post(f"target of {MAX_TARGET_CHARS} emoji", job_body(type="fetch", target=EMOJI * MAX_TARGET_CHARS), 201, None),
    _post(f"target of {MAX_TARGET_CHARS + 1} emoji", job_body(type="fetch", target=EMOJI * (MAX_TARGET_CHARS + 1)), 400, "INVALID_TARGET"),
    _post(
        f"target of {MAX_TARGET_CHARS} characters inside whitespace",
        job_body(type="fetch", target="  " + "a" * MAX_TARGET_CHARS + "\n"),
        201,
        None,
    ),
]

_UPPER_CASE_ID = "FE5DBD2C-6534-8D79-B16C-70F2EE010E21"
PATH_CASES = [
    Case("id of an existing job in upper case", "GET", "/jobs/" + JOB_ID_UPPER, None, 404, "NOT_FOUND"),
    Case("id in upper case", "GET", f"/jobs/{_UPPER_CASE_ID}", None, 404, "NOT_FOUND"),
    Case("id one character too long", "GET", "/jobs/" + JOB_ID + "0", None, 404, "NOT_FOUND"),
    Case("id of 1000 characters", "GET", "/jobs/" + "a" * 1000, None, 404, "NOT_FOUND"),
    Case("id with a slash", "GET", "/jobs/" + JOB_ID + "/x", None, 404, "NOT_FOUND"),
    Case("id with %2F", "GET", "/jobs/" + JOB_ID + "%2Fx", None, 404, "NOT_FOUND"),
    Case("id that is only %2F", "GET", "/jobs/%2F", None, 404, "NOT_FOUND"),
    Case("id with %2F before retry", "GET", "/jobs/" + JOB_ID + "%2Fretry", None, 404, "NOT_FOUND"),
    Case("empty id", "GET", "/jobs/", None, 404, "NOT_FOUND"),
    Case("retry of an id in upper case", "POST", "/jobs/" + JOB_ID_UPPER + "/retry", None, 404, "NOT_FOUND"),
    Case("retry of an id with %2F", "POST", "/jobs/" + JOB_ID + "%2Fx/retry", None, 404, "NOT_FOUND"),
]

ALL_CASES = BODY_CASES + FIELD_CASES + PATH_CASES

CHUNK_BYTES = 4096


def send(client, case: Case, job_id: str) -> tuple[int, str | None, Any]:
    """Send ``case`` through ``client`` (a check.WorkerClient); return (status, error code or None, parsed body).

    ``job_id`` fills the placeholders of the path. Raises OSError when the
    connection fails, as when the runtime stops.
    """
    body = case.body
    headers = dict(case.headers)
    if case.chunked:
        body = iter([case.body[start:start + CHUNK_BYTES] for start in range(0, len(case.body), CHUNK_BYTES)])
        headers["Transfer-Encoding"] = "chunked"
    status, _, raw = client.request(case.method, resolve_path(case.path, job_id), body, headers)
    parsed = json.loads(raw) if raw else None
    code = parsed.get("code") if isinstance(parsed, dict) else None
    return status, code, parsed
