"""The job record, its statuses and the only legal ways to move between them."""

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any


class JobType(StrEnum):
    """The kinds of simulated work a job can ask for."""

    RESIZE = "resize"
    FETCH = "fetch"


class JobStatus(StrEnum):
    """A job's stage in its lifecycle; the values are the API's strings."""

    QUEUED = "queued"  # waiting for a delivery, first or retried
    PROCESSING = "processing"  # a consumer has started an attempt
    DONE = "done"  # an attempt succeeded; final
    FAILED = "failed"  # no attempts left; final until a manual retry

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED)


# from -> the statuses it may move to. FAILED -> QUEUED is a manual retry;
# QUEUED -> FAILED is a job given up without a further attempt, for example
# one that reached the dead-letter queue.
LEGAL_TRANSITIONS = {
    JobStatus.QUEUED: {JobStatus.PROCESSING, JobStatus.FAILED},
    JobStatus.PROCESSING: {JobStatus.QUEUED, JobStatus.DONE, JobStatus.FAILED},
    JobStatus.DONE: set(),
    JobStatus.FAILED: {JobStatus.QUEUED},
}


class IllegalTransition(Exception):
    """A change of status that the lifecycle does not allow."""


class InvalidRecord(Exception):
    """A stored record that is not a job record this code can read."""


def format_timestamp(moment: datetime) -> str:
    """Format as the API does: UTC, milliseconds, ``Z``, e.g. 2025-06-20T12:00:00.000Z."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


_MAX_48_BITS = (1 << 48) - 1


def new_job_id(now_ms: int | None = None) -> str:
    """Return a new job id: an RFC 9562 version 8 UUID that sorts newest first.

    The first 48 bits are the creation time in milliseconds counted down from
    the largest 48-bit value, so KV, which lists keys in lexicographic order,
    lists jobs newest first. The remaining 74 free bits are random, so jobs
    created in the same millisecond list in no particular order.
    """
    if now_ms is None:
        now_ms = time.time_ns() // 1_000_000
    descending_time = _MAX_48_BITS - now_ms
    random_bits = int.from_bytes(os.urandom(10), "big")

    value = descending_time << 80
    value |= 0x8 << 76  # version 8
    value |= (random_bits >> 68) << 64  # 12 random bits
    value |= 0b10 << 62  # RFC 9562 variant
    value |= random_bits & ((1 << 62) - 1)  # 62 random bits

    # Formatted by hand: the uuid module would be one more import at cold start.
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


@dataclass
class HistoryEntry:
    """One transition of a job: the status it entered, when, and on which attempt."""

    status: JobStatus
    at: str
    attempt: int
    error: str | None = None
    result: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": self.status.value, "at": self.at, "attempt": self.attempt}
        for name in ("error", "result", "note"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "HistoryEntry":
        return cls(
            status=JobStatus(data["status"]),
            at=data["at"],
            attempt=int(data["attempt"]),
            error=data.get("error"),
            result=data.get("result"),
            note=data.get("note"),
        )


@dataclass(frozen=True)
class Transition:
    """A change of status just applied to a job, for the log line that reports it."""

    job_id: str
    from_status: JobStatus
    to_status: JobStatus
    attempt: int


@dataclass
class Job:
    """A job record as stored in KV and returned by the API."""

    id: str
    type: JobType
    target: str
    status: JobStatus
    attempts: int
    enqueued_at: str
    updated_at: str
    history: list[HistoryEntry] = field(default_factory=list)
    result: str | None = None
    error: str | None = None
    # Attempts made before the current cycle: a manual retry starts a new
    # cycle of attempts whose numbers go on from here (4, 5, 6, ...).
    cycle_start: int = 0

    @classmethod
    def create(cls, job_type: JobType, target: str, job_id: str, now: datetime) -> "Job":
        """Create a job that is queued and has made no attempt yet."""
        at = format_timestamp(now)
        return cls(
            id=job_id,
            type=job_type,
            target=target,
            status=JobStatus.QUEUED,
            attempts=0,
            enqueued_at=at,
            updated_at=at,
            history=[HistoryEntry(JobStatus.QUEUED, at, 0)],
        )

    def start_attempt(self, attempt: int, now: datetime) -> Transition:
        """Move a queued job to processing for ``attempt``."""
        transition = self._move(JobStatus.PROCESSING, now, attempt)
        self.attempts = attempt
        return transition

    def complete(self, result: str, now: datetime) -> Transition:
        """Move a processing job to done with its result."""
        transition = self._move(JobStatus.DONE, now, self.attempts, result=result)
        self.result = result
        self.error = None
        return transition

    def requeue(self, error: str, now: datetime) -> Transition:
        """Move a processing job back to queued after a failed attempt."""
        transition = self._move(JobStatus.QUEUED, now, self.attempts, error=error)
        self.error = error
        return transition

    def fail(self, error: str, now: datetime) -> Transition:
        """Move a queued or processing job to failed: no attempt will follow."""
        transition = self._move(JobStatus.FAILED, now, self.attempts, error=error)
        self.error = error
        return transition

    def retry_manually(self, now: datetime) -> Transition:
        """Move a failed job back to queued with a fresh cycle of attempts."""
        transition = self._move(JobStatus.QUEUED, now, self.attempts, note="manual retry")
        self.cycle_start = self.attempts
        return transition

    def _move(self, to_status: JobStatus, now: datetime, attempt: int, **details: str) -> Transition:
        if to_status not in LEGAL_TRANSITIONS[self.status]:
            raise IllegalTransition(
                f"job {self.id} cannot move from {self.status.value} to {to_status.value}"
            )
        transition = Transition(self.id, self.status, to_status, attempt)
        at = format_timestamp(now)
        self.history.append(HistoryEntry(to_status, at, attempt, **details))
        self.status = to_status
        self.updated_at = at
        return transition

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "type": self.type.value,
            "target": self.target,
            "status": self.status.value,
            "attempts": self.attempts,
        }
        if self.result is not None:
            data["result"] = self.result
        if self.error is not None:
            data["error"] = self.error
        data["enqueuedAt"] = self.enqueued_at
        data["updatedAt"] = self.updated_at
        data["history"] = [entry.to_json() for entry in self.history]
        if self.cycle_start:
            data["cycleStart"] = self.cycle_start
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Job":
        try:
            return cls(
                id=data["id"],
                type=JobType(data["type"]),
                target=data["target"],
                status=JobStatus(data["status"]),
                attempts=int(data["attempts"]),
                enqueued_at=data["enqueuedAt"],
                updated_at=data["updatedAt"],
                history=[HistoryEntry.from_json(entry) for entry in data.get("history", [])],
                result=data.get("result"),
                error=data.get("error"),
                cycle_start=int(data.get("cycleStart", 0)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidRecord(f"stored job record is invalid: {error!r}") from error
