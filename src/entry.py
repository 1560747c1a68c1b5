"""The Worker's entry point: turns the runtime's objects into plain Python and back.

Everything else lives in the ``jobqueue`` package, which does not know it runs
in a Worker.
"""

import logging
from urllib.parse import parse_qsl, urlsplit

from workers import Response, WorkerEntrypoint

from jobqueue.api import HttpRequest, JobsApi, Protection
from jobqueue.config import Settings, load_settings
from jobqueue.consumer import process_batch
from jobqueue.errors import PayloadTooLarge
from jobqueue.store import JobStore

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
logger = logging.getLogger("jobqueue.entry")

# wrangler.toml names the dead-letter queue after the job queue with this suffix.
DEAD_LETTER_SUFFIX = "-dlq"


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        js_request = request.js_object
        url = urlsplit(str(js_request.url))
        headers = {name.lower(): value for name, value in request.headers.items()}
        query: dict[str, str] = {}
        for name, value in parse_qsl(url.query, keep_blank_values=True):
            query.setdefault(name, value)
        http_request = HttpRequest(
            method=str(js_request.method),
            path=url.path,
            headers=headers,
            query=query,
            read_body=lambda limit: _read_body(js_request, headers.get("content-length"), limit),
        )
        api = JobsApi(JobStore(self.env.JOBS), self.env.JOBS_QUEUE, self._settings, self._protection())
        response = await api.handle(http_request)
        return Response(response.body, status=response.status, headers=response.headers)

    async def queue(self, batch, env=None, ctx=None):
        # workerd calls a class entrypoint's queue() with (batch, env, ctx).
        # env and ctx are undefined because __init__ received them, but the SDK
        # still passes them on, so the method must accept them.

        # Invalid vars raise here, so the platform retries the whole batch
        # until they are fixed or the messages reach the dead-letter queue.
        settings = self._settings()
        queue_name = str(batch.queue)
        messages = [QueueDelivery(message) for message in batch.messages]
        logger.info("batch of %d messages from %s", len(messages), queue_name)
        await process_batch(
            messages, JobStore(self.env.JOBS), settings, dead_letter=queue_name.endswith(DEAD_LETTER_SUFFIX)
        )

    def _protection(self) -> Protection:
        # Both guards are off unless the deployment adds the secret or the binding.
        limiter = getattr(self.env, "JOBS_RATE_LIMITER", None)

        async def allow_request(key: str) -> bool:
            outcome = await limiter.limit({"key": key})
            return bool(outcome["success"])

        return Protection(
            api_token=getattr(self.env, "API_TOKEN", None) or None,
            allow_request=allow_request if limiter else None,
        )

    def _settings(self) -> Settings:
        return load_settings(lambda name: getattr(self.env, name, None))


class QueueDelivery:
    """One message of a batch, with ack and retry taking Python arguments."""

    def __init__(self, message):
        self._message = message
        self.id = str(message.id)
        self.body = message.body
        self.attempts = int(message.attempts)

    def ack(self) -> None:
        self._message.ack()

    def retry(self, delay_seconds: int) -> None:
        self._message.retry({"delaySeconds": delay_seconds})


async def _read_body(js_request, declared_length: str | None, limit: int) -> bytes:
    """Read the request body, stopping as soon as it passes ``limit`` bytes."""
    too_large = PayloadTooLarge(f"request body must be at most {limit} bytes")
    if declared_length is not None and declared_length.isdigit() and int(declared_length) > limit:
        raise too_large

    # A request without a body has a JS null here, which is falsy in Pyodide.
    stream = js_request.body
    if not stream:
        return b""
    reader = stream.getReader()
    chunks, size = [], 0
    while True:
        chunk = await reader.read()
        if chunk.done:
            return b"".join(chunks)
        data = chunk.value.to_bytes()
        size += len(data)
        if size > limit:
            await reader.cancel()
            raise too_large
        chunks.append(data)
