from __future__ import annotations

import contextlib
import dataclasses

import pytest

from cachetier.config import CacheConfig
from cachetier.errors import ConfigError


def test_from_env_reads_the_documented_variables() -> None:
    config = CacheConfig.from_env(
        {
            "REDIS_URL": "redis://127.0.0.1:6379/2",
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": "6380",
            "REDIS_PASSWORD": "secret",
            "REDIS_DATABASE": "3",
            "CACHE_ADAPTER": "Redis",
            "CACHE_DEFAULT_TTL": "120",
            "CACHE_MAX_MEMORY_ENTRIES": "500",
            "CACHE_ENABLE_COMPRESSION": "true",
            "CACHE_TABLE_NAME": "my_cache",
            "CACHE_DATABASE_URL": "postgresql://postgres@127.0.0.1/test",
            "DATABASE_URL": "postgresql://ignored",
            "CACHE_ENVIRONMENT": "production",
        }
    )
    assert config.redis_url == "redis://127.0.0.1:6379/2"
    assert (config.redis_host, config.redis_port, config.redis_password, config.redis_database) == (
        "127.0.0.1",
        6380,
        "secret",
        3,
    )
    assert config.adapter == "redis"
    assert config.default_ttl == 120
    assert config.max_memory_entries == 500
    assert config.enable_compression is True
    assert config.table_name == "my_cache"
    assert config.database_url == "postgresql://postgres@127.0.0.1/test"
    assert config.environment == "production"


def test_database_url_is_used_when_cache_database_url_is_absent() -> None:
    assert CacheConfig.from_env({"DATABASE_URL": "sqlite:///x.db"}).database_url == "sqlite:///x.db"


def test_keyword_overrides_win_over_environment() -> None:
    assert CacheConfig.from_env({"CACHE_DEFAULT_TTL": "5"}, default_ttl=9).default_ttl == 9


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CACHE_DEFAULT_TTL", "-1"),
        ("CACHE_DEFAULT_TTL", "soon"),
        ("CACHE_ADAPTER", "foo"),
        ("CACHE_TABLE_NAME", "cache; DROP TABLE users"),
        ("CACHE_TABLE_NAME", '"quoted"'),
        ("CACHE_MAX_MEMORY_ENTRIES", "0"),
        ("CACHE_ENABLE_COMPRESSION", "maybe"),
        ("REDIS_PORT", "70000"),
        ("CACHE_MAX_INFLATED_BYTES", "0"),
        ("CACHE_MAX_INFLATED_BYTES", "1.5"),
        ("CACHE_NAMESPACE", "{t"),
        ("CACHE_NAMESPACE", "my app"),
    ],
)
def test_invalid_environment_values_raise_config_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        CacheConfig.from_env({variable: value})


def test_invalid_code_values_raise_config_error_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="default_ttl"):
        CacheConfig(default_ttl=0)
    with pytest.raises(ConfigError, match="namespace"):
        CacheConfig(namespace="a:b")


def test_config_is_frozen() -> None:
    config = CacheConfig()
    with pytest.raises(AttributeError):
        config.default_ttl = 5  # type: ignore[misc]


@pytest.mark.parametrize("ttl", [float("inf"), 1e20])
def test_a_default_ttl_no_entry_could_carry_raises_config_error(ttl: float) -> None:
    with pytest.raises(ConfigError, match="default_ttl"):
        CacheConfig(default_ttl=ttl)


def test_max_inflated_bytes_defaults_to_64_mib_and_is_read_from_the_environment() -> None:
    assert CacheConfig().max_inflated_bytes == 64 * 1024 * 1024
    assert CacheConfig.from_env({"CACHE_MAX_INFLATED_BYTES": "4096"}).max_inflated_bytes == 4096
    with pytest.raises(ConfigError, match="max_inflated_bytes"):
        CacheConfig(max_inflated_bytes=2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["x", object(), -1, 1.5, None, True])
def test_every_field_given_a_value_of_the_wrong_kind_raises_config_error(value: object) -> None:
    # compression_threshold, redis_port, redis_database and table_name compared or matched it unchecked (TypeError).
    for field in dataclasses.fields(CacheConfig):
        with contextlib.suppress(ConfigError):  # accepted, or refused the documented way; anything else fails
            CacheConfig(**{field.name: value})
