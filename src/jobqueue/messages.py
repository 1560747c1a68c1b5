"""The body of the queue message that starts a cycle of attempts of a job."""

from dataclasses import dataclass
from typing import Any

from .jobs import Job, JobType


class InvalidMessage(Exception):
    """A queue message whose body is not a job message; retrying it cannot help."""


@dataclass(frozen=True)
class JobMessage:
    """A request to run a cycle of attempts of one job.

    It carries the job's type, target and enqueue time as well as its id, so the
    consumer can rebuild a record that KV does not show it yet.
    """

    job_id: str
    job_type: JobType
    target: str
    enqueued_at: str
    # Attempts made before this cycle: delivery n of this message is attempt cycle_start + n.
    cycle_start: int = 0

    @classmethod
    def for_job(cls, job: Job) -> "JobMessage":
        return cls(job.id, job.type, job.target, job.enqueued_at, job.cycle_start)

    def to_body(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "type": self.job_type.value,
            "target": self.target,
            "enqueuedAt": self.enqueued_at,
            "cycleStart": self.cycle_start,
        }

    @classmethod
    def from_body(cls, body: Any) -> "JobMessage":
        if not isinstance(body, dict):
            raise InvalidMessage(f"message body is {type(body).__name__}, expected an object")
        try:
            job_id = body["jobId"]
            job_type = JobType(body["type"])
            target = body["target"]
            enqueued_at = body["enqueuedAt"]
            cycle_start = body.get("cycleStart", 0)
        except (KeyError, ValueError) as error:
            raise InvalidMessage(f"message body is not a job message: missing or invalid {error}") from error

        if not isinstance(job_id, str) or not isinstance(target, str) or not isinstance(enqueued_at, str):
            raise InvalidMessage("message body is not a job message: jobId, target and enqueuedAt must be strings")
        if isinstance(cycle_start, bool) or not isinstance(cycle_start, int) or cycle_start < 0:
            raise InvalidMessage(f"message body is not a job message: invalid cycleStart {cycle_start!r}")
        return cls(job_id, job_type, target, enqueued_at, cycle_start)
