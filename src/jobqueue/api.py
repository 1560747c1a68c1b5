"""The HTTP API: routes, request handling, and every error turned into a JSON response."""

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from .config import ConfigError, Settings
from .errors import (
    ApiError,
    EnqueueFailed,
    InvalidConfig,
    MethodNotAllowed,
    NotFound,
    StorageUnavailable,
)
from .jobs import Job, new_job_id, utc_now
from .messages import JobMessage
from .store import JobStore, StoreError
from .validation import parse_new_job

logger = logging.getLogger("jobqueue.api")

# A job request is a few hundred bytes; anything past this is refused unread.
MAX_BODY_BYTES = 16 * 1024
_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}


@dataclass
class HttpRequest:
    """The parts of an HTTP request that the API reads."""

    method: str
    path: str
    # Returns the body, or raises PayloadTooLarge once it passes the given number of bytes.
    read_body: Callable[[int], Awaitable[bytes]]
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case


@dataclass
class HttpResponse:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> HttpResponse:
    body = json.dumps(data, ensure_ascii=False, indent=2)
    return HttpResponse(status, body, {**_JSON_HEADERS, **(headers or {})})


def error_response(error: ApiError) -> HttpResponse:
    return json_response(error.status, {"error": error.message, "code": error.code}, error.headers)


class JobsApi:
    """Routes requests to handlers; the producer is the queue binding's ``send``."""

    def __init__(self, store: JobStore, producer: Any, load_settings: Callable[[], Settings]):
        self._store = store
        self._producer = producer
        self._load_settings = load_settings

    async def handle(self, request: HttpRequest) -> HttpResponse:
        try:
            self._check_settings()
            return await self._route(request)
        except ApiError as error:
            return error_response(error)
        except Exception:
            # The stack trace goes to the log only, never to the client.
            logger.exception("%s %s failed", request.method, request.path)
            return error_response(ApiError("internal error; the Worker's log has the details"))

    def _check_settings(self) -> None:
        # Invalid vars are reported on every request until they are fixed,
        # rather than only once a job reaches the consumer.
        try:
            self._load_settings()
        except ConfigError as error:
            logger.error("invalid configuration: %s", error)
            raise InvalidConfig(str(error)) from error

    async def _route(self, request: HttpRequest) -> HttpResponse:
        method, path = request.method, request.path
        if path == "/":
            _allow(method, ["GET", "HEAD"])
            return json_response(200, _API_DESCRIPTION)
        if path == "/jobs":
            _allow(method, ["POST"])
            return await self._create_job(request)
        if path.startswith("/jobs/") and "/" not in path[len("/jobs/"):]:
            _allow(method, ["GET", "HEAD"])
            return await self._get_job(path[len("/jobs/"):])
        raise NotFound(f"no route for {_shorten(path)}; see GET / for the API")

    async def _create_job(self, request: HttpRequest) -> HttpResponse:
        new_job = parse_new_job(await request.read_body(MAX_BODY_BYTES))
        job = Job.create(new_job.job_type, new_job.target, new_job_id(), utc_now())

        try:
            await self._store.save(job)
        except StoreError as error:
            logger.error("job %s: storing the new record failed: %s", job.id, error)
            raise StorageUnavailable("the job could not be stored; try again") from error

        try:
            await self._producer.send(JobMessage.for_job(job).to_body())
        except Exception as error:
            logger.error("job %s: sending its queue message failed: %s", job.id, error)
            await self._discard(job)
            raise EnqueueFailed("the job could not be enqueued; nothing was kept, try again") from error

        logger.info("job %s: enqueued as queued (attempt 0)", job.id)
        return json_response(201, job.to_json(), {"Location": f"/jobs/{job.id}"})

    async def _discard(self, job: Job) -> None:
        # A record without a message would stay queued for ever, so it goes.
        # If the send failed only on the way back, the message still arrives
        # and the consumer rebuilds the record from it.
        try:
            await self._store.delete(job.id)
        except StoreError as error:
            logger.error("job %s: deleting the record of a job that was not enqueued failed: %s", job.id, error)

    async def _get_job(self, job_id: str) -> HttpResponse:
        if not _JOB_ID.fullmatch(job_id):
            raise NotFound(f"no job with id {_shorten(job_id)}")
        try:
            job = await self._store.load(job_id)
        except StoreError as error:
            logger.error("job %s: reading the record failed: %s", job_id, error)
            raise StorageUnavailable("the job could not be read; try again") from error
        if job is None:
            raise NotFound(f"no job with id {job_id}; records expire 24 hours after their last change")
        return json_response(200, job.to_json())


def _allow(method: str, allowed: list[str]) -> None:
    if method not in allowed:
        raise MethodNotAllowed(method, allowed)


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


_API_DESCRIPTION = {
    "name": "queue-job-visualizer",
    "description": "Enqueue simulated jobs on a Cloudflare Queue and follow them through Workers KV.",
    "endpoints": {
        "POST /jobs": 'Enqueue a job. Body: {"type": "resize" | "fetch", "target": "<1 to 500 characters>"}. Answers 201 with the job.',
        "GET /jobs/{id}": "Return a job: status queued, processing, done or failed, attempts, result or error, and history.",
    },
}
