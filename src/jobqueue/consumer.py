"""The queue consumer: one batch of messages, each acknowledged or retried on its own."""

import asyncio
import logging
from collections import defaultdict
from datetime import datetime
from typing import Any, Callable, Protocol

from .config import Settings
from .jobs import Job, JobStatus, Transition, utc_now
from .messages import InvalidMessage, JobMessage
from .simulation import SimulatedFailure, run_attempt
from .store import JobStore

logger = logging.getLogger("jobqueue.consumer")


class Delivery(Protocol):
    """One delivery of a queue message, as the platform hands it to the consumer."""

    id: str
    body: Any
    attempts: int  # 1 on the first delivery of the message

    def ack(self) -> None: ...

    def retry(self, delay_seconds: int) -> None: ...


async def process_batch(
    messages: list[Delivery],
    store: JobStore,
    settings: Settings,
    *,
    dead_letter: bool = False,
    clock: Callable[[], datetime] = utc_now,
) -> None:
    """Process the messages of one batch concurrently and settle each one.

    With ``dead_letter``, the messages come from the dead-letter queue: the
    platform gave up on them, so their jobs are marked failed.
    """
    # Two deliveries of one job in the same batch run one after the other, so
    # the second reads what the first wrote and is recognised as a duplicate.
    job_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
    consumer = _Consumer(store, settings, clock)

    async def settle(message: Delivery) -> None:
        try:
            job_message = JobMessage.from_body(message.body)
        except InvalidMessage as error:
            logger.error("message %s acknowledged without processing: %s", message.id, error)
            message.ack()
            return

        async with job_locks[job_message.job_id]:
            try:
                if dead_letter:
                    await consumer.give_up(message, job_message)
                else:
                    await consumer.run_delivery(message, job_message)
            except Exception as error:
                # Only this message is retried; the rest of the batch is unaffected.
                delay = max(1, settings.retry_base_delay_seconds)
                logger.error(
                    "job %s: delivery %d of message %s failed, retrying the message in %d s: %r",
                    job_message.job_id, message.attempts, message.id, delay, error,
                )
                message.retry(delay)

    await asyncio.gather(*(settle(message) for message in messages))


class _Consumer:
    def __init__(self, store: JobStore, settings: Settings, clock: Callable[[], datetime]):
        self._store = store
        self._settings = settings
        self._clock = clock

    async def run_delivery(self, message: Delivery, job_message: JobMessage) -> None:
        attempt_in_cycle = message.attempts
        attempt = job_message.cycle_start + attempt_in_cycle
        job = await self._load_or_rebuild(job_message)

        if self._is_stale(job, job_message, attempt, message):
            message.ack()
            return

        max_attempts = self._settings.max_attempts
        interrupted = job.status is JobStatus.PROCESSING
        interruption = f"Attempt {job.attempts} stopped before recording an outcome"

        if attempt_in_cycle > max_attempts:
            # A delivery past the limit: the previous one stopped between its writes.
            reason = interruption if interrupted else f"Delivery {attempt_in_cycle} of the job's message"
            transition = job.fail(f"{reason}, and no attempts are left of {max_attempts}", self._clock())
            await self._commit(job, transition)
            message.ack()
            return

        transitions = []
        if interrupted:
            transitions.append(job.requeue(interruption, self._clock()))
        transitions.append(job.start_attempt(attempt, self._clock()))
        await self._commit(job, *transitions)

        try:
            result = await run_attempt(
                job.id, job.type, job.target, attempt,
                self._settings.failure_percent, self._settings.work_duration_ms,
            )
        except SimulatedFailure as failure:
            if attempt_in_cycle >= max_attempts:
                await self._commit(job, job.fail(str(failure), self._clock()))
                message.ack()
            else:
                await self._commit(job, job.requeue(str(failure), self._clock()))
                message.retry(self._settings.retry_delay_seconds(attempt_in_cycle))
            return

        await self._commit(job, job.complete(result, self._clock()))
        message.ack()

    async def give_up(self, message: Delivery, job_message: JobMessage) -> None:
        job = await self._load_or_rebuild(job_message)
        if job.status.is_terminal:
            logger.info("job %s: dead-lettered message ignored, job is already %s", job.id, job.status.value)
            message.ack()
            return

        error = "The queue moved the job's message to the dead-letter queue after its last retry"
        await self._commit(job, job.fail(error, self._clock()))
        message.ack()

    def _is_stale(self, job: Job, job_message: JobMessage, attempt: int, message: Delivery) -> bool:
        # Queues deliver at least once: a message can arrive again after its
        # attempt ran, or come from a cycle that a manual retry replaced.
        if job.status.is_terminal:
            reason = f"job is already {job.status.value}"
        elif job_message.cycle_start != job.cycle_start:
            reason = f"message belongs to the cycle starting after attempt {job_message.cycle_start}"
        elif attempt <= job.attempts:
            reason = f"attempt {attempt} has already started"
        else:
            return False
        logger.info("job %s: duplicate delivery of message %s acknowledged: %s", job.id, message.id, reason)
        return True

    async def _load_or_rebuild(self, job_message: JobMessage) -> Job:
        job = await self._store.load(job_message.job_id)
        if job is not None:
            return job

        # KV is eventually consistent: a consumer running in another location
        # than the last write can miss the record for up to 60 s. The message
        # carries enough to start again from the queued record; any later
        # history that KV had not shown here yet is then overwritten.
        logger.warning("job %s: record not found in KV, rebuilt from its queue message", job_message.job_id)
        job = Job.create(job_message.job_type, job_message.target, job_message.job_id, self._clock())
        job.enqueued_at = job.updated_at = job.history[0].at = job_message.enqueued_at
        job.attempts = job.cycle_start = job_message.cycle_start
        return job

    async def _commit(self, job: Job, *transitions: Transition) -> None:
        await self._store.save(job)
        for transition in transitions:
            logger.info(
                "job %s: %s -> %s (attempt %d)",
                transition.job_id, transition.from_status.value, transition.to_status.value, transition.attempt,
            )
