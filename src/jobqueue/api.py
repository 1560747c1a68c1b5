"""The HTTP API: routes, request handling, and every error turned into a JSON response."""

import asyncio
import json
import logging
import re
from _operator import _compare_digest  # hmac.compare_digest without importing hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable

from .config import ConfigError, Settings
from .errors import (
    ApiError,
    Conflict,
    EnqueueFailed,
    InvalidConfig,
    InvalidQuery,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    StorageUnavailable,
    Unauthorized,
)
from .jobs import Job, JobStatus, new_job_id, utc_now
from .messages import JobMessage
from .store import JobStore, StoreError
from .validation import parse_new_job

logger = logging.getLogger("jobqueue.api")

# A job request is a few hundred bytes, so a larger body is rejected unread.
MAX_BODY_BYTES = 16 * 1024
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000  # the maximum number of keys one KV list call returns
_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_STATUSES = ", ".join(status.value for status in JobStatus)
_JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}
# Delays before the second and third try of a queue send. A send that
# reported a failure may still have been delivered, and then the consumer
# acknowledges the second message of the same attempt as a duplicate.
SEND_BACKOFF_SECONDS = (0.2, 0.5)
SEND_TRIES = len(SEND_BACKOFF_SECONDS) + 1


@dataclass
class HttpRequest:
    """The parts of an HTTP request that the API reads."""

    method: str
    path: str
    # Returns the body, or raises PayloadTooLarge once it passes the given number of bytes.
    read_body: Callable[[int], Awaitable[bytes]]
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case
    query: dict[str, str] = field(default_factory=dict)  # the first value of each parameter


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


@dataclass
class Protection:
    """Optional guards for a public deployment; both are off when unset."""

    # When set, POST routes require "Authorization: Bearer <api_token>".
    api_token: str | None = None
    # When set, called with the client's address before a job is created;
    # returns False once the client is past its limit.
    allow_request: Callable[[str], Awaitable[bool]] | None = None


class JobsApi:
    """Routes requests to handlers; the producer is the queue binding, used through ``send``."""

    def __init__(
        self,
        store: JobStore,
        producer: Any,
        load_settings: Callable[[], Settings],
        protection: Protection | None = None,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self._clock = clock
        self._sleep = sleep
        self._store = store
        self._producer = producer
        self._load_settings = load_settings
        self._protection = protection or Protection()

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
        # Where static assets are deployed, the page in public/ is served at "/" instead.
        if path in ("/", "/api"):
            _allow(method, ["GET", "HEAD"])
            return json_response(200, _API_DESCRIPTION)

        if path == "/jobs":
            _allow(method, ["GET", "HEAD", "POST"])
            if method == "POST":
                self._authorize(request)
                await self._check_rate_limit(request)
                return await self._create_job(request)
            return await self._list_jobs(request.query)

        parts = path.split("/")
        if len(parts) == 3 and parts[1] == "jobs":
            _allow(method, ["GET", "HEAD"])
            return await self._get_job(parts[2])
        if len(parts) == 4 and parts[1] == "jobs" and parts[3] == "retry":
            _allow(method, ["POST"])
            self._authorize(request)
            return await self._retry_job(parts[2])

        raise NotFound(f"no route for {_shorten(path)}; see GET /api for the API")

    async def _create_job(self, request: HttpRequest) -> HttpResponse:
        new_job = parse_new_job(await request.read_body(MAX_BODY_BYTES))
        now = self._clock()
        job_id = new_job_id(now_ms=int(now.timestamp() * 1000))
        job = Job.create(new_job.job_type, new_job.target, job_id, now)

        await self._save(job, "storing the new record")
        try:
            await self._send(job)
        except Exception as error:
            logger.error("job %s: sending its queue message failed %d times: %s", job.id, SEND_TRIES, error)
            if await self._discard(job):
                raise EnqueueFailed("the job could not be enqueued; nothing was kept, try again") from error
            raise EnqueueFailed(
                f"the job could not be enqueued, and its record could not be deleted: job {job.id} "
                "shows queued until it expires in 24 hours, but will not run; try again"
            ) from error

        logger.info("job %s: created as queued (attempt 0)", job.id)
        return json_response(201, job.to_json(), {"Location": f"/jobs/{job.id}"})

    async def _send(self, job: Job) -> None:
        """Send the job's queue message, trying again after each delay of SEND_BACKOFF_SECONDS.

        Raises the last try's error when every try failed.
        """
        body = JobMessage.for_job(job).to_body()
        for backoff in (*SEND_BACKOFF_SECONDS, None):
            try:
                await self._producer.send(body)
                return
            except Exception as error:
                if backoff is None:
                    raise
                logger.warning("job %s: sending its queue message failed (%s); trying again in %.1f s",
                               job.id, error, backoff)
                await self._sleep(backoff)

    async def _discard(self, job: Job) -> bool:
        """Delete the record of a job that was not enqueued; return whether that worked.

        A record without a message would stay queued until it expires, so it
        goes. If the send failed only on the way back, the message still
        arrives and the consumer rebuilds the record from it.
        """
        try:
            await self._store.delete(job.id)
        except StoreError as error:
            # NOTE: the record then stays queued, with no message to move it,
            # until it expires 24 hours after it was written. KV has no
            # conditional write that would let the send come first safely.
            logger.error("job %s: deleting the record of a job that was not enqueued failed: %s", job.id, error)
            return False
        return True

    async def _get_job(self, job_id: str) -> HttpResponse:
        job = await self._load(job_id)
        return json_response(200, job.to_json())

    async def _list_jobs(self, query: dict[str, str]) -> HttpResponse:
        status = query.get("status") or None
        if status is not None and status not in {member.value for member in JobStatus}:
            raise InvalidQuery(f"status must be one of {_STATUSES}; got {_shorten(status)!r}")
        limit = _parse_limit(query.get("limit"))
        cursor = query.get("cursor") or None

        try:
            page = await self._store.list_summaries(limit, cursor)
        except StoreError as error:
            logger.error("listing jobs failed: %s", error)
            raise StorageUnavailable("the jobs could not be listed; try again, or start again without cursor") from error

        # The filter applies to the page KV returned, so a filtered page can
        # hold fewer than `limit` jobs, even none, while more pages follow.
        summaries = [s for s in page.summaries if status is None or s.get("status") == status]
        return json_response(200, {"jobs": summaries, "cursor": page.cursor})

    async def _retry_job(self, job_id: str) -> HttpResponse:
        job = await self._load(job_id)
        if job.status is not JobStatus.FAILED:
            raise Conflict(f"job {job_id} is {job.status.value}; only a failed job can be retried")

        failed_record = Job.from_json(job.to_json())
        transition = job.retry_manually(self._clock())
        await self._save(job, "storing the manual retry")
        try:
            await self._send(job)
        except Exception as error:
            logger.error("job %s: sending the retry message failed %d times: %s", job.id, SEND_TRIES, error)
            if await self._restore(failed_record):
                raise EnqueueFailed("the retry could not be enqueued; the job stays failed, try again") from error
            raise EnqueueFailed(
                "the retry could not be enqueued, and the failed record could not be restored: the job "
                "shows queued until it expires in 24 hours, but will not run; try again"
            ) from error

        logger.info("job %s: %s -> %s (manual retry after attempt %d)",
                    job.id, transition.from_status.value, transition.to_status.value, transition.attempt)
        return json_response(202, job.to_json())

    async def _restore(self, failed_record: Job) -> bool:
        """Write back the record of a failed job whose retry was not enqueued; return whether that worked."""
        try:
            await self._store.save(failed_record)
        except StoreError as error:
            # NOTE: the job then shows queued, with no message to move it,
            # until it expires 24 hours after the retry's write.
            logger.error("job %s: restoring the failed record after a failed retry failed; "
                         "it shows queued with no message: %s", failed_record.id, error)
            return False
        return True

    async def _load(self, job_id: str) -> Job:
        # An id that cannot be a job id costs no KV read.
        if not job_id:
            raise NotFound("job id is missing: use /jobs/<id>")
        if not _JOB_ID.fullmatch(job_id):
            raise NotFound(f"no job with id {_shorten(job_id)}")
        try:
            job = await self._store.load(job_id)
        except StoreError as error:
            logger.error("job %s: reading the record failed: %s", job_id, error)
            raise StorageUnavailable("the job could not be read; try again") from error
        if job is None:
            raise NotFound(f"no job with id {job_id}; records expire 24 hours after their last change")
        return job

    async def _save(self, job: Job, action: str) -> None:
        try:
            await self._store.save(job)
        except StoreError as error:
            logger.error("job %s: %s failed: %s", job.id, action, error)
            raise StorageUnavailable("the job could not be stored; try again") from error

    def _authorize(self, request: HttpRequest) -> None:
        token = self._protection.api_token
        if not token:
            return
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not _compare_digest(credentials.strip().encode(), token.encode()):
            raise Unauthorized("this route needs the header Authorization: Bearer <API_TOKEN>")

    async def _check_rate_limit(self, request: HttpRequest) -> None:
        allow_request = self._protection.allow_request
        if allow_request is None:
            return
        client = request.headers.get("cf-connecting-ip", "unknown")
        if not await allow_request(client):
            logger.warning("client %s is past the job creation rate limit", client)
            raise RateLimited("too many jobs created from this address; wait a minute and try again")


def _allow(method: str, allowed: list[str]) -> None:
    if method not in allowed:
        raise MethodNotAllowed(method, allowed)


def _parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise InvalidQuery(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}; got {_shorten(raw)!r}")
    return int(raw)


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


_API_DESCRIPTION = {
    "name": "queue-job-visualizer",
    "description": "Enqueue simulated jobs on a Cloudflare Queue and follow them through Workers KV.",
    "endpoints": {
        "GET /": "The visualizer page.",
        "POST /jobs": 'Enqueue a job. Body: {"type": "resize" | "fetch", "target": "<1 to 500 characters>"}. Answers 201 with the job.',
        "GET /jobs": "List jobs, newest first: ?status=queued|processing|done|failed&limit=1..1000&cursor=<from the previous page>.",
        "GET /jobs/{id}": "Return a job: status queued, processing, done or failed, attempts, result or error, and history.",
        "POST /jobs/{id}/retry": "Queue a failed job again with a fresh cycle of attempts.",
    },
}
