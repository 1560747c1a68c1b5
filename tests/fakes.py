"""In-memory stand-ins for the Worker's bindings that keep the platform's documented rules.

Workers KV: values are strings, ``expirationTtl`` is at least 60 s, keys are at
most 512 bytes, metadata at most 1024 bytes of JSON, ``list`` returns at most
1000 keys in lexicographic order with their metadata. Queues: every message is
settled once with ``ack()`` or ``retry()``, and ``attempts`` counts deliveries
from 1.
"""

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


class FakeClock:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self, start: float | None = None):
        self.now = time.time() if start is None else start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def utc_now(self) -> datetime:
        return datetime.fromtimestamp(self.now, timezone.utc)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class KVCounts:
    gets: int = 0
    puts: int = 0
    lists: int = 0
    deletes: int = 0


class FakeKV:
    """A KV namespace with the binding's Python-facing methods."""

    def __init__(self, clock: FakeClock | None = None):
        self.clock = clock or FakeClock()
        self.entries: dict[str, tuple[str, dict | None, float | None]] = {}
        self.counts = KVCounts()
        # Errors to raise from the next puts, one per put, in order.
        self.put_errors: list[Exception] = []
        self.get_errors: list[Exception] = []
        self.delete_errors: list[Exception] = []
        self.list_errors: list[Exception] = []
        self.put_times: dict[str, list[float]] = {}

    async def get(self, key: str) -> str | None:
        self.counts.gets += 1
        if self.get_errors:
            raise self.get_errors.pop(0)
        entry = self._live_entry(key)
        return None if entry is None else entry[0]

    async def put(self, key: str, value: str, options: dict[str, Any] | None = None) -> None:
        self.counts.puts += 1
        options = options or {}
        if self.put_errors:
            raise self.put_errors.pop(0)
        if len(key.encode()) > 512:
            raise ValueError("KV PUT failed: 414 key is longer than 512 bytes")
        if not isinstance(value, str):
            raise TypeError(f"KV PUT failed: value must be a string here, got {type(value).__name__}")
        ttl = options.get("expirationTtl")
        if ttl is not None and ttl < 60:
            raise ValueError(f"KV PUT failed: 400 Invalid expiration_ttl of {ttl}. Expiration TTL must be at least 60.")
        metadata = options.get("metadata")
        if metadata is not None and len(json.dumps(metadata, ensure_ascii=False).encode()) > 1024:
            raise ValueError("KV PUT failed: 413 metadata is larger than 1024 bytes")

        expires_at = None if ttl is None else self.clock.now + ttl
        self.entries[key] = (value, metadata, expires_at)
        self.put_times.setdefault(key, []).append(self.clock.now)

    async def delete(self, key: str) -> None:
        self.counts.deletes += 1
        if self.delete_errors:
            raise self.delete_errors.pop(0)
        self.entries.pop(key, None)

    async def list(self, options: dict[str, Any] | None = None) -> dict[str, Any]:
        self.counts.lists += 1
        if self.list_errors:
            raise self.list_errors.pop(0)
        options = options or {}
        prefix = options.get("prefix") or ""
        limit = min(int(options.get("limit") or 1000), 1000)
        start = int(options.get("cursor") or 0)
        names = sorted(key for key in self.entries if key.startswith(prefix) and self._live_entry(key))
        page = names[start:start + limit]
        complete = start + limit >= len(names)
        result: dict[str, Any] = {
            "keys": [{"name": name, "metadata": self.entries[name][1]} for name in page],
            "list_complete": complete,
        }
        if not complete:
            result["cursor"] = str(start + limit)
        return result

    def record(self, key: str) -> dict[str, Any]:
        return json.loads(self.entries[key][0])

    def metadata(self, key: str) -> dict[str, Any] | None:
        return self.entries[key][1]

    def _live_entry(self, key: str):
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry[2] is not None and entry[2] <= self.clock.now:
            del self.entries[key]
            return None
        return entry


class FakeQueue:
    """A queue producer binding that keeps what was sent."""

    def __init__(self):
        self.sent: list[Any] = []
        self.send_errors: list[Exception] = []

    async def send(self, body: Any, options: dict[str, Any] | None = None) -> None:
        if self.send_errors:
            raise self.send_errors.pop(0)
        self.sent.append(json.loads(json.dumps(body)))


@dataclass
class FakeMessage:
    """One delivery of a queue message; records how the consumer settled it."""

    body: Any
    attempts: int = 1
    id: str = "message-1"
    settlements: list[tuple[str, int | None]] = field(default_factory=list)

    def ack(self) -> None:
        self.settlements.append(("ack", None))

    def retry(self, delay_seconds: int) -> None:
        self.settlements.append(("retry", delay_seconds))

    @property
    def outcome(self) -> tuple[str, int | None]:
        assert len(self.settlements) == 1, f"message settled {len(self.settlements)} times: {self.settlements}"
        return self.settlements[0]

    def redelivered(self) -> "FakeMessage":
        return FakeMessage(self.body, self.attempts + 1, self.id)
