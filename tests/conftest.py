import asyncio
import json
from typing import Any

import pytest

from fakes import FakeClock, FakeKV, FakeQueue
from jobqueue.api import HttpRequest, JobsApi
from jobqueue.config import Settings
from jobqueue.errors import PayloadTooLarge
from jobqueue.store import JobStore


class ApiClient:
    """Calls the API in process, as entry.py does, against fake bindings."""

    def __init__(self, settings: Settings | None = None):
        self.clock = FakeClock()
        self.kv = FakeKV(self.clock)
        self.queue = FakeQueue()
        self.settings = settings or Settings()
        self.store = JobStore(self.kv, sleep=self.clock.sleep, clock=self.clock.time)
        self.api = JobsApi(
            self.store, self.queue, lambda: self.settings, clock=self.clock.utc_now, sleep=self.clock.sleep
        )
        self.headers: dict[str, str] = {}

    def call(self, method: str, path: str, body: bytes | str | None = None, query: dict[str, str] | None = None):
        raw = body.encode() if isinstance(body, str) else (body or b"")

        async def read_body(limit: int) -> bytes:
            if len(raw) > limit:
                raise PayloadTooLarge(f"request body must be at most {limit} bytes")
            return raw

        request = HttpRequest(method, path, read_body, headers=dict(self.headers), query=query or {})
        response = asyncio.run(self.api.handle(request))
        return response.status, json.loads(response.body), response.headers

    def post_job(self, data: Any):
        return self.call("POST", "/jobs", json.dumps(data))


@pytest.fixture
def client() -> ApiClient:
    return ApiClient()
