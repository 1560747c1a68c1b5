"""Every Workers KV call the Worker makes, counted.

The binding is used through its Python-facing methods (``get``, ``put``,
``list``, ``delete`` taking option dicts), which the Workers SDK provides in
production and an in-memory stand-in provides in tests.
"""

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from .jobs import InvalidRecord, Job, parse_timestamp

logger = logging.getLogger("jobqueue.store")

KEY_PREFIX = "job:"
# Records expire a day after their last write, so the namespace stays small.
RECORD_TTL_SECONDS = 24 * 60 * 60
# KV accepts at most one write per second to the same key.
MIN_SECONDS_BETWEEN_WRITES = 1.0
# Delays before the second and third try of a failed KV write. Every failure
# is tried again, not only a 429: a KV 500 is usually gone a moment later, and
# a failure that reaches the consumer costs the job one of its deliveries.
WRITE_BACKOFF_SECONDS = (1.0, 2.0)
# Reads have no per-key rate limit, so a failed read is tried again sooner.
READ_BACKOFF_SECONDS = (0.1, 0.5)
# KV rejects metadata over 1024 bytes; a shortened target keeps the summary well below.
SUMMARY_TARGET_CHARS = 100


class StoreError(Exception):
    """A KV operation failed."""


class RateLimited(StoreError):
    """KV rejected the last try of a write with 429, after the backoff of WRITE_BACKOFF_SECONDS."""


@dataclass
class OperationCounts:
    """KV operations made through one store, by the kinds KV prices separately."""

    reads: int = 0
    writes: int = 0
    lists: int = 0
    deletes: int = 0


def job_key(job_id: str) -> str:
    return KEY_PREFIX + job_id


def summarize(job: Job) -> dict[str, Any]:
    """Return the small summary kept in the key's metadata, so a list call can show jobs."""
    return {
        "status": job.status.value,
        "type": job.type.value,
        "attempts": job.attempts,
        "target": job.target[:SUMMARY_TARGET_CHARS],
        "enqueuedAt": job.enqueued_at,
        "updatedAt": job.updated_at,
    }


@dataclass(frozen=True)
class SummaryPage:
    """One page of job summaries from a single KV list call, newest job first."""

    summaries: list[dict[str, Any]]
    cursor: str | None  # None on the last page


class JobStore:
    """Job records in a KV namespace, one key per job."""

    def __init__(
        self,
        kv: Any,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ):
        self._kv = kv
        self._sleep = sleep
        self._clock = clock
        self.counts = OperationCounts()
        # key -> time of its last write known here, to keep writes a second apart.
        self._last_write: dict[str, float] = {}

    async def load(self, job_id: str) -> Job | None:
        """Read a job record with one KV read, or up to three when reads fail; return None when there is none."""
        key = job_key(job_id)
        text = await self._read(f"read of {key}", lambda: self._kv.get(key))
        if text is None:
            return None

        try:
            job = Job.from_json(json.loads(text))
        except (ValueError, InvalidRecord) as error:
            raise StoreError(f"KV value of {key} is not a job record: {error}") from error
        # updatedAt is cut to whole milliseconds, so the write was up to 1 ms later.
        self._last_write[key] = parse_timestamp(job.updated_at).timestamp() + 0.001
        return job

    async def save(self, job: Job) -> None:
        """Write a job record with its summary, a second after the key's last write.

        A failed write is tried again after each delay of WRITE_BACKOFF_SECONDS.
        When the last try fails too, RateLimited is raised for a 429 and
        StoreError for any other failure.
        """
        key = job_key(job.id)
        value = json.dumps(job.to_json(), ensure_ascii=False, separators=(",", ":"))
        options = {"expirationTtl": RECORD_TTL_SECONDS, "metadata": summarize(job)}
        await self._write(key, "write", lambda: self._kv.put(key, value, options))

    async def delete(self, job_id: str) -> None:
        """Delete a job record, a second after the key's last write, retrying as save() does."""
        key = job_key(job_id)
        await self._write(key, "delete", lambda: self._kv.delete(key))

    async def list_summaries(self, limit: int, cursor: str | None = None) -> SummaryPage:
        """List up to ``limit`` jobs with one KV list call (up to three when calls fail), from key metadata.

        KV lists keys in lexicographic order and job ids start with a
        descending timestamp, so the newest jobs come first. KV lists are
        eventually consistent: a job written in the last minute or so may be
        missing, or show an older summary, when listed from another location.
        """
        options: dict[str, Any] = {"prefix": KEY_PREFIX, "limit": limit}
        if cursor:
            options["cursor"] = cursor
        page = await self._read(f"list of {KEY_PREFIX}*", lambda: self._kv.list(options), listing=True)

        summaries = []
        for key in page["keys"]:
            metadata = key.get("metadata") or {}
            summaries.append({"id": key["name"][len(KEY_PREFIX):], **metadata})
        next_cursor = None if page.get("list_complete", True) else page.get("cursor")
        return SummaryPage(summaries, next_cursor or None)

    async def _read(self, description: str, operation: Callable[[], Awaitable[Any]], listing: bool = False) -> Any:
        """Run a KV get or list with the backoff of READ_BACKOFF_SECONDS, counting every call."""
        for backoff in (*READ_BACKOFF_SECONDS, None):
            if listing:
                self.counts.lists += 1
            else:
                self.counts.reads += 1
            try:
                return await operation()
            except Exception as error:
                if backoff is None:
                    tries = len(READ_BACKOFF_SECONDS) + 1
                    raise StoreError(f"KV {description} failed after {tries} tries: {error}") from error
                logger.warning("KV %s failed (%s); trying again in %.1f s", description, error, backoff)
                await self._sleep(backoff)

    async def _write(self, key: str, action: str, operation: Callable[[], Awaitable[None]]) -> None:
        """Run a KV put or delete with the key's spacing and backoff, counting every call."""
        await self._wait_for_write_slot(key)
        for backoff in (*WRITE_BACKOFF_SECONDS, None):
            if action == "delete":
                self.counts.deletes += 1
            else:
                self.counts.writes += 1
            try:
                await operation()
            except Exception as error:
                if backoff is None:
                    if _is_rate_limit(error):
                        raise RateLimited(f"KV kept rejecting the {action} of {key} with 429: {error}") from error
                    tries = len(WRITE_BACKOFF_SECONDS) + 1
                    raise StoreError(f"KV {action} of {key} failed after {tries} tries: {error}") from error
                logger.warning("KV %s of %s failed (%s); trying again in %.0f s", action, key, error, backoff)
                await self._sleep(backoff)
                continue
            self._last_write[key] = self._clock()
            return

    async def _wait_for_write_slot(self, key: str) -> None:
        # The last write may come from another invocation (the record's
        # updatedAt), so clocks of two machines are compared here. A skew
        # between them can still bring a 429, which save() then backs off from.
        last_write = self._last_write.get(key)
        if last_write is None:
            return
        wait = last_write + MIN_SECONDS_BETWEEN_WRITES - self._clock()
        if wait > 0:
            await self._sleep(wait)


def _is_rate_limit(error: Exception) -> bool:
    # KV's binding raises a plain Error whose message carries the HTTP status,
    # for example "KV PUT failed: 429 Too Many Requests" (workerd's api/kv.c++).
    return "429" in str(error)
