"""Tunables read from the Worker's vars, parsed and checked once per event."""

import re
from dataclasses import dataclass
from typing import Callable

# Queues accept retry delays of at most 12 hours.
MAX_RETRY_DELAY_SECONDS = 43_200


class ConfigError(Exception):
    """A var is set to a value the Worker cannot use."""


@dataclass(frozen=True)
class Settings:
    """The Worker's tunables, with the defaults that wrangler.toml also sets."""

    failure_percent: int = 35
    max_attempts: int = 3
    retry_base_delay_seconds: int = 2
    work_duration_ms: int = 800

    def retry_delay_seconds(self, attempt_in_cycle: int) -> int:
        """Return the backoff before the next attempt: base, 2 x base, 4 x base, ..."""
        delay = self.retry_base_delay_seconds * 2 ** (attempt_in_cycle - 1)
        return min(delay, MAX_RETRY_DELAY_SECONDS)


# name -> (field, minimum, maximum)
_VARS = {
    "FAILURE_PERCENT": ("failure_percent", 0, 100),
    "MAX_ATTEMPTS": ("max_attempts", 1, 100),
    "RETRY_BASE_DELAY_SECONDS": ("retry_base_delay_seconds", 0, MAX_RETRY_DELAY_SECONDS),
    "WORK_DURATION_MS": ("work_duration_ms", 0, 60_000),
}


def load_settings(lookup: Callable[[str], object]) -> Settings:
    """Build Settings from vars; ``lookup(name)`` returns the raw value or None when unset.

    Raises ConfigError naming the first var that is not an integer in range.
    """
    values = {}
    for name, (field, minimum, maximum) in _VARS.items():
        raw = lookup(name)
        if raw is None:
            continue
        values[field] = _parse_int(name, raw, minimum, maximum)
    return Settings(**values)


def _parse_int(name: str, raw: object, minimum: int, maximum: int) -> int:
    # Vars arrive as strings from the dashboard and as numbers from a TOML
    # number, so both are accepted. A bool is an int in Python, but not here.
    if isinstance(raw, bool):
        value = None
    elif isinstance(raw, int):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    elif isinstance(raw, str) and re.fullmatch(r"-?[0-9]+", raw.strip()):
        value = int(raw.strip())
    else:
        value = None

    if value is None or not minimum <= value <= maximum:
        raise ConfigError(
            f"var {name} must be an integer from {minimum} to {maximum}, got {raw!r}; "
            "fix it in wrangler.toml [vars] or the dashboard"
        )
    return value
