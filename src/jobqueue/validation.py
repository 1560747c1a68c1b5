"""Parsing and checking the body of ``POST /jobs``."""

import json
from dataclasses import dataclass
from typing import Any

from .errors import InvalidBody, InvalidTarget, InvalidType
from .jobs import JobType

MAX_TARGET_CHARS = 500
# A job request nests two levels deep. Python's json module recurses once per
# level, and in Pyodide the WebAssembly stack can run out before Python raises
# RecursionError, which kills the whole isolate, so depth is checked first.
MAX_NESTING_DEPTH = 32
_UTF8_BOM = b"\xef\xbb\xbf"
_MISSING = object()
_JOB_TYPES = ", ".join(f'"{job_type.value}"' for job_type in JobType)


@dataclass(frozen=True)
class NewJob:
    """A validated request to enqueue a job."""

    job_type: JobType
    target: str


def parse_new_job(body: bytes) -> NewJob:
    """Parse a request body into a NewJob, or raise InvalidBody, InvalidType or InvalidTarget."""
    data = _parse_json_object(body)
    return NewJob(_check_type(data.get("type", _MISSING)), _check_target(data.get("target", _MISSING)))


def _parse_json_object(body: bytes) -> dict[str, Any]:
    if body.startswith(_UTF8_BOM):
        raise InvalidBody("request body must not start with a byte order mark")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidBody(f"request body is not valid UTF-8 (byte {error.start})") from error
    if not text.strip():
        raise InvalidBody('request body is empty; send a JSON object such as {"type": "fetch", "target": "..."}')
    if _nesting_depth(text) > MAX_NESTING_DEPTH:
        raise InvalidBody(f"request body is nested more than {MAX_NESTING_DEPTH} levels deep")

    try:
        data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as error:
        raise InvalidBody(f"request body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from error
    except ValueError as error:
        # Python refuses to convert an integer of more than 4300 digits.
        raise InvalidBody(f"request body has a number Python cannot read: {error}") from error

    if not isinstance(data, dict):
        raise InvalidBody(f"request body must be a JSON object, got {_json_kind(data)}")
    return data


def _nesting_depth(text: str) -> int:
    """Return the deepest nesting of arrays and objects, skipping brackets inside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _reject_constant(name: str) -> Any:
    # Python's json module accepts NaN and Infinity, which JSON itself does not.
    raise InvalidBody(f"request body is not valid JSON: {name} is not a JSON value")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = {}
    for key, value in pairs:
        if key in data:
            raise InvalidBody(f'request body has the key "{key}" more than once')
        data[key] = value
    return data


def _check_type(value: Any) -> JobType:
    if value is _MISSING:
        raise InvalidType(f"type is required: one of {_JOB_TYPES}")
    if not isinstance(value, str):
        raise InvalidType(f"type must be a string, one of {_JOB_TYPES}; got {_json_kind(value)}")
    try:
        return JobType(value)
    except ValueError:
        raise InvalidType(f"type must be one of {_JOB_TYPES}; got {json.dumps(value)[:60]}") from None


def _check_target(value: Any) -> str:
    if value is _MISSING:
        raise InvalidTarget(f"target is required: a string of 1 to {MAX_TARGET_CHARS} characters")
    if not isinstance(value, str):
        raise InvalidTarget(f"target must be a string; got {_json_kind(value)}")

    target = value.strip()
    if not target:
        raise InvalidTarget("target must not be empty or only whitespace")
    # Characters are code points: an emoji is one, however many bytes it takes.
    if len(target) > MAX_TARGET_CHARS:
        raise InvalidTarget(f"target must be at most {MAX_TARGET_CHARS} characters; got {len(target)}")
    for position, char in enumerate(target):
        if _is_control(char):
            raise InvalidTarget(f"target must not contain control characters; found U+{ord(char):04X} at position {position}")
        # JSON's \ud800-style escapes can encode half of a surrogate pair,
        # which is not a character and cannot be stored as UTF-8.
        if 0xD800 <= ord(char) <= 0xDFFF:
            raise InvalidTarget(f"target must be valid Unicode; found a lone surrogate U+{ord(char):04X} at position {position}")
    return target


def _is_control(char: str) -> bool:
    # Unicode's control characters (category Cc): C0, DEL and C1.
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
