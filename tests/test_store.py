import asyncio
from datetime import datetime, timezone

import pytest

from fakes import FakeClock, FakeKV
from jobqueue.jobs import Job, JobType
from jobqueue.store import JobStore, RateLimited, StoreError

JOB_ID = "00000000-0000-4000-8000-000000000000"


def make_store():
    clock = FakeClock(start=1_750_000_000.0)
    kv = FakeKV(clock)
    return JobStore(kv, sleep=clock.sleep, clock=clock.time), kv, clock


def make_job(clock: FakeClock) -> Job:
    return Job.create(JobType.FETCH, "a.png", JOB_ID, clock.utc_now())


def test_saved_record_expires_after_a_day():
    store, kv, clock = make_store()
    asyncio.run(store.save(make_job(clock)))

    clock.now += 24 * 60 * 60 - 1
    assert asyncio.run(store.load(JOB_ID)) is not None
    clock.now += 1
    assert asyncio.run(store.load(JOB_ID)) is None


def test_load_of_missing_key_is_none_and_counts_a_read():
    store, _, _ = make_store()

    assert asyncio.run(store.load(JOB_ID)) is None
    assert store.counts.reads == 1


def test_load_of_corrupt_value_raises_store_error():
    store, kv, clock = make_store()
    kv.entries[f"job:{JOB_ID}"] = ("{not json", None, None)

    with pytest.raises(StoreError, match="not a job record"):
        asyncio.run(store.load(JOB_ID))


def test_second_write_waits_a_second():
    store, kv, clock = make_store()
    job = make_job(clock)

    asyncio.run(store.save(job))
    clock.now += 0.3
    asyncio.run(store.save(job))

    assert clock.sleeps == [pytest.approx(0.7)]


def test_write_after_load_waits_for_records_updated_at():
    store, kv, clock = make_store()
    job = make_job(clock)
    asyncio.run(JobStore(kv, sleep=clock.sleep, clock=clock.time).save(job))
    clock.now += 0.25

    loaded = asyncio.run(store.load(JOB_ID))
    asyncio.run(store.save(loaded))

    assert clock.sleeps == [pytest.approx(0.751)]


def test_rate_limited_write_backs_off_then_succeeds():
    store, kv, clock = make_store()
    kv.put_errors.extend([RuntimeError("KV PUT failed: 429 Too Many Requests")] * 2)

    asyncio.run(store.save(make_job(clock)))

    assert clock.sleeps == [1.0, 2.0]
    assert store.counts.writes == 3
    assert kv.record(f"job:{JOB_ID}")["id"] == JOB_ID


def test_rate_limited_write_gives_up_after_three_tries():
    store, kv, clock = make_store()
    kv.put_errors.extend([RuntimeError("KV PUT failed: 429 Too Many Requests")] * 3)

    with pytest.raises(RateLimited):
        asyncio.run(store.save(make_job(clock)))
    assert store.counts.writes == 3
    assert kv.entries == {}


def test_failed_write_backs_off_then_succeeds():
    store, kv, clock = make_store()
    kv.put_errors.extend([RuntimeError("KV PUT failed: 500 Internal Server Error")] * 2)

    asyncio.run(store.save(make_job(clock)))

    assert clock.sleeps == [1.0, 2.0]
    assert store.counts.writes == 3
    assert kv.record(f"job:{JOB_ID}")["id"] == JOB_ID


def test_failed_write_gives_up_after_three_tries():
    store, kv, clock = make_store()
    kv.put_errors.extend([RuntimeError("KV PUT failed: 500 Internal Server Error")] * 3)

    with pytest.raises(StoreError, match="after 3 tries: KV PUT failed: 500") as raised:
        asyncio.run(store.save(make_job(clock)))
    assert not isinstance(raised.value, RateLimited)
    assert store.counts.writes == 3
    assert kv.entries == {}


def test_failed_read_backs_off_then_succeeds():
    store, kv, clock = make_store()
    asyncio.run(store.save(make_job(clock)))
    kv.get_errors.extend([RuntimeError("KV GET failed: 500 Internal Server Error")] * 2)

    loaded = asyncio.run(store.load(JOB_ID))

    assert loaded.id == JOB_ID
    assert clock.sleeps == [0.1, 0.5]
    assert store.counts.reads == 3


def test_failed_read_gives_up_after_three_tries():
    store, kv, clock = make_store()
    kv.get_errors.extend([RuntimeError("KV GET failed: 500 Internal Server Error")] * 3)

    with pytest.raises(StoreError, match="after 3 tries: KV GET failed: 500"):
        asyncio.run(store.load(JOB_ID))
    assert store.counts.reads == 3


def test_failed_list_backs_off_then_succeeds():
    store, kv, clock = make_store()
    asyncio.run(store.save(make_job(clock)))
    kv.list_errors.append(RuntimeError("KV GET failed: 500 Internal Server Error"))

    page = asyncio.run(store.list_summaries(10))

    assert [summary["id"] for summary in page.summaries] == [JOB_ID]
    assert clock.sleeps == [0.1]
    assert store.counts.lists == 2


def test_summary_metadata_fits_kv_limit_for_longest_target():
    store, kv, clock = make_store()
    job = Job.create(JobType.RESIZE, "\U0001F600" * 500, JOB_ID, clock.utc_now())

    asyncio.run(store.save(job))

    assert kv.metadata(f"job:{JOB_ID}")["target"] == "\U0001F600" * 100
