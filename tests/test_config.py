import pytest

from jobqueue.config import ConfigError, Settings, load_settings


def test_defaults_when_vars_are_unset():
    assert load_settings(lambda name: None) == Settings(35, 3, 2, 800)


def test_vars_as_strings_and_numbers():
    values = {"FAILURE_PERCENT": "10", "MAX_ATTEMPTS": 5, "RETRY_BASE_DELAY_SECONDS": " 0 ", "WORK_DURATION_MS": 50.0}

    settings = load_settings(values.get)

    assert settings == Settings(failure_percent=10, max_attempts=5, retry_base_delay_seconds=0, work_duration_ms=50)


@pytest.mark.parametrize(("name", "value"), [
    ("FAILURE_PERCENT", "101"),
    ("FAILURE_PERCENT", "-1"),
    ("FAILURE_PERCENT", "35%"),
    ("MAX_ATTEMPTS", "0"),
    ("MAX_ATTEMPTS", "three"),
    ("MAX_ATTEMPTS", True),
    ("RETRY_BASE_DELAY_SECONDS", "1.5"),
    ("RETRY_BASE_DELAY_SECONDS", "43201"),
    ("WORK_DURATION_MS", ""),
    ("WORK_DURATION_MS", "\u0663"),  # an Arabic-Indic digit, which int() would accept
])
def test_invalid_var_raises_naming_it(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value}.get)


def test_retry_delay_doubles_and_is_capped():
    settings = Settings(retry_base_delay_seconds=2)

    assert [settings.retry_delay_seconds(n) for n in (1, 2, 3)] == [2, 4, 8]
    assert Settings(retry_base_delay_seconds=40_000).retry_delay_seconds(2) == 43_200
