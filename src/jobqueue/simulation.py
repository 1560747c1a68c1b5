"""The simulated work: a deterministic failure rule and the result each job type reports."""

import asyncio

from .jobs import JobType

_FNV_OFFSET_BASIS = 0x811C9DC5
_FNV_PRIME = 0x01000193
_MASK_32 = 0xFFFFFFFF


class SimulatedFailure(Exception):
    """An attempt that the failure rule chose to fail."""


def fnv1a_32(data: bytes) -> int:
    value = _FNV_OFFSET_BASIS
    for byte in data:
        value ^= byte
        value = (value * _FNV_PRIME) & _MASK_32
    return value


def fmix32(value: int) -> int:
    """Apply murmur3's 32-bit finaliser, which spreads FNV's weak low bits over all 32."""
    value ^= value >> 16
    value = (value * 0x85EBCA6B) & _MASK_32
    value ^= value >> 13
    value = (value * 0xC2B2AE35) & _MASK_32
    value ^= value >> 16
    return value


def failure_roll(job_id: str, attempt: int) -> int:
    """Return the roll, from 0 to 99, for one attempt of one job.

    It depends only on the id and the attempt number, so the outcome of every
    attempt can be predicted, and rolls of different attempts are independent.
    """
    return fmix32(fnv1a_32(f"{job_id}:{attempt}".encode("utf-8"))) % 100


def attempt_fails(job_id: str, attempt: int, failure_percent: int) -> bool:
    return failure_roll(job_id, attempt) < failure_percent


def predict_outcome(
    job_id: str, failure_percent: int, max_attempts: int, first_attempt: int = 1
) -> tuple[str, int]:
    """Return the final status and attempt count that a cycle of attempts will reach."""
    last_attempt = first_attempt + max_attempts - 1
    for attempt in range(first_attempt, last_attempt + 1):
        if not attempt_fails(job_id, attempt, failure_percent):
            return "done", attempt
    return "failed", last_attempt


def result_text(job_type: JobType, target: str) -> str:
    if job_type is JobType.RESIZE:
        return f"Resized {target} to 800x600 (simulated)"
    return f"Fetched {target} (simulated)"


async def run_attempt(
    job_id: str, job_type: JobType, target: str, attempt: int, failure_percent: int, work_ms: int
) -> str:
    """Simulate one attempt: wait ``work_ms``, then return the result or raise SimulatedFailure."""
    await asyncio.sleep(work_ms / 1000)
    if attempt_fails(job_id, attempt, failure_percent):
        raise SimulatedFailure(f"Simulated {job_type.value} failure on attempt {attempt}")
    return result_text(job_type, target)
