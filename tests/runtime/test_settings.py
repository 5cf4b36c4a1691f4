from __future__ import annotations

import pytest

from services.runtime.settings import RateLimit, SettingsError, load_settings


def test_defaults_mean_embedded() -> None:
    settings = load_settings({})
    assert settings.embedded
    assert settings.port == 8000 and settings.data_dir == ".fuli"


def test_reads_fuli_variables() -> None:
    settings = load_settings({
        "FULI_DATABASE_URL": "postgresql://u@h/db", "FULI_REDIS_URL": "redis://h:1/0",
        "FULI_PORT": "9000", "FULI_LOG_JSON": "false", "FULI_AUTH_CACHE_TTL_S": "0.5",
        "FULI_RATE_LIMITS": "key.events=10/1", "OTHER": "ignored"})
    assert not settings.embedded
    assert settings.port == 9000 and settings.log_json is False
    assert settings.auth_cache_ttl_s == 0.5
    assert settings.rate_limit("key", "events") == RateLimit(10, 1)
    assert settings.rate_limit("key", "unknown-group") == settings.rate_limit("key", "default")


@pytest.mark.parametrize(("name", "value"), [
    ("FULI_PORT", "eighty"), ("FULI_PORT", "70000"), ("FULI_LOG_LEVEL", "LOUD"),
    ("FULI_DATABASE_URL", "mysql://x"), ("FULI_REDIS_URL", "http://x"),
    ("FULI_BROKER_URL", "kafka://x"), ("FULI_RATE_LIMITS", "key.events=ten/60"),
    ("FULI_RATE_LIMITS", "key.events=0/60"), ("FULI_BOOTSTRAP_KEY", "short"),
    ("FULI_DB_POOL_MIN", "0"), ("FULI_LOG_JSON", "maybe"),
])
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_pool_bounds_are_consistent() -> None:
    with pytest.raises(SettingsError, match="FULI_DB_POOL_MIN"):
        load_settings({"FULI_DB_POOL_MIN": "10", "FULI_DB_POOL_MAX": "5"})
