"""The one place configuration is built, from code or from the environment.

Nothing else in cachetier reads `os.environ`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar, cast, get_args

from cachetier.errors import ConfigError
from cachetier.keys import MAX_TTL, is_valid_namespace

AdapterChoice = Literal["auto", "redis", "database", "memory", "sqlite", "postgres"]
Environment = Literal["development", "production", "testing"]

# 48 characters leave room for derived names (indexes, a tags table) within PostgreSQL's 63.
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheConfig:
    """Settings of one `CacheManager`. Invalid values raise `ConfigError` naming the field.

    `l1_enabled=False` turns the in-process tier off (every read goes to L2;
    useful when another layer already holds values in memory, and for
    measuring L2 on its own). `l1_change_feed` subscribes to the backend's
    change feed where it has one (Redis client tracking), so L1 copies that
    other processes changed are dropped within about a round trip instead of
    living up to `l1_max_ttl`; it costs Redis write throughput (see README).
    `max_inflated_bytes` caps how far a compressed entry may inflate when read
    (a larger one is a corrupt entry: a logged miss; values larger than it are
    stored uncompressed). TTLs and timeouts are seconds. `loader_timeout` bounds one loader run
    (callers get `LoaderTimeoutError`); `lease_ttl` is how long a miss's lease
    on L2 lasts (a loader slower than that cannot store its value), and
    `lease_wait` how long a caller waits for another process that holds the
    lease before it runs the loader itself without storing. `adapter="auto"` picks, in production, Redis
    when a Redis URL or host is set and reachable; otherwise (and as the
    fallback) PostgreSQL when `database_url` is a postgres URL, else the
    embedded SQLite file (see `cachetier.selection`). `redis_cluster=True`
    (or a ``redis+cluster://`` URL, or ``?cluster=true``) talks to a Redis
    Cluster, `redis_url`/`redis_host` naming any of its nodes.
    """

    adapter: AdapterChoice = "auto"
    environment: Environment = "development"
    namespace: str = "cachetier"
    default_ttl: float = 3600.0
    l1_enabled: bool = True
    l1_change_feed: bool = True
    max_memory_entries: int = 10_000
    max_memory_bytes: int | None = None
    l1_max_ttl: float | None = 60.0
    enable_compression: bool = False
    compression_threshold: int = 1024
    max_inflated_bytes: int = 64 * 1024 * 1024  # framing.DEFAULT_MAX_INFLATED_BYTES; see its docstring
    redis_url: str | None = None
    redis_host: str | None = None
    redis_port: int = 6379
    redis_password: str | None = None
    redis_database: int = 0
    redis_cluster: bool = False
    redis_max_connections: int = 64
    redis_socket_timeout: float = 1.0
    redis_connect_timeout: float = 1.0
    database_url: str | None = None
    table_name: str = "cache_entries"
    database_pool_size: int = 10
    database_statement_timeout: float = 5.0
    database_unlogged: bool = False
    cleanup_interval: float = 60.0
    failure_threshold: int = 5
    recovery_timeout: float = 5.0
    loader_timeout: float | None = 30.0
    lease_ttl: float = 30.0
    lease_wait: float = 2.0

    def __post_init__(self) -> None:
        _check_choice("adapter", self.adapter, AdapterChoice)
        _check_choice("environment", self.environment, Environment)
        for name in (
            "default_ttl",
            "cleanup_interval",
            "redis_socket_timeout",
            "redis_connect_timeout",
            "database_statement_timeout",
            "recovery_timeout",
        ):
            _check_positive(name, getattr(self, name))
        for name in ("max_memory_entries", "redis_max_connections", "database_pool_size", "failure_threshold"):
            _check_positive(name, getattr(self, name))
        if not self.default_ttl <= MAX_TTL:  # also rejects infinity: every entry carries its expiry
            raise ConfigError(f"default_ttl must be at most {MAX_TTL:.0f} seconds, got {self.default_ttl!r}")
        if self.l1_max_ttl is not None:
            _check_positive("l1_max_ttl", self.l1_max_ttl)
        if self.loader_timeout is not None:
            _check_positive("loader_timeout", self.loader_timeout)
        _check_positive("lease_ttl", self.lease_ttl)
        _check_positive("lease_wait", self.lease_wait)
        if self.max_memory_bytes is not None:
            _check_positive("max_memory_bytes", self.max_memory_bytes)
        if not _is_int(self.max_inflated_bytes):
            raise ConfigError(f"max_inflated_bytes must be an int, got {self.max_inflated_bytes!r}")
        _check_positive("max_inflated_bytes", self.max_inflated_bytes)
        if not _is_int(self.compression_threshold) or self.compression_threshold < 0:
            raise ConfigError(f"compression_threshold must be an int >= 0, got {self.compression_threshold!r}")
        if not is_valid_namespace(self.namespace):  # so no stored name can spell a backend's own structures
            raise ConfigError(
                f"namespace must be 1-64 ASCII letters, digits, '_', '.' or '-', got {self.namespace!r:.80}"
            )
        if not isinstance(self.table_name, str) or not _IDENTIFIER.fullmatch(self.table_name):
            raise ConfigError(
                f"table_name must be a plain SQL identifier (letters, digits, _; at most 48), got {self.table_name!r}"
            )
        if not _is_int(self.redis_port) or not 0 < self.redis_port < 65536:
            raise ConfigError(f"redis_port must be an int 1-65535, got {self.redis_port!r}")
        if not _is_int(self.redis_database) or self.redis_database < 0:
            raise ConfigError(f"redis_database must be an int >= 0, got {self.redis_database!r}")

    @property
    def redis_configured(self) -> bool:
        return bool(self.redis_url or self.redis_host)

    def replace(self, **changes: Any) -> CacheConfig:
        """A copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, defaults: Mapping[str, Any] | None = None, **overrides: Any
    ) -> CacheConfig:
        """Build from environment variables; keyword `overrides` win over them, and they over `defaults`.

        Invalid values raise `ConfigError` naming the variable.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for variable, (field, parse) in _ENV_FIELDS.items():
            raw = env.get(variable)
            if raw is None or raw == "" or field in values:
                continue
            try:
                values[field] = parse(raw)
                cls(**{field: values[field]})
            except (ValueError, ConfigError) as exc:
                raise ConfigError(f"{variable}={raw!r} is invalid: {exc}") from exc
        values.update(overrides)
        return cls(**{**(defaults or {}), **values})


def _check_choice(name: str, value: object, choices: Any) -> None:
    allowed = get_args(choices)
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true/false")


def _str(raw: str) -> str:
    return raw


def _lower(raw: str) -> str:
    return raw.strip().lower()


def _env_field(field: str, parse: Callable[[str], _T]) -> tuple[str, Callable[[str], Any]]:
    return field, cast(Callable[[str], Any], parse)


# First variable that names a field wins (CACHE_DATABASE_URL over DATABASE_URL).
_ENV_FIELDS: Final[dict[str, tuple[str, Callable[[str], Any]]]] = {
    "CACHE_ADAPTER": _env_field("adapter", _lower),
    "CACHE_ENVIRONMENT": _env_field("environment", _lower),
    "ENVIRONMENT": _env_field("environment", _lower),
    "CACHE_NAMESPACE": _env_field("namespace", _str),
    "CACHE_DEFAULT_TTL": _env_field("default_ttl", float),
    "CACHE_L1_ENABLED": _env_field("l1_enabled", _parse_bool),
    "CACHE_L1_CHANGE_FEED": _env_field("l1_change_feed", _parse_bool),
    "CACHE_MAX_MEMORY_ENTRIES": _env_field("max_memory_entries", int),
    "CACHE_MAX_MEMORY_BYTES": _env_field("max_memory_bytes", int),
    "CACHE_L1_MAX_TTL": _env_field("l1_max_ttl", float),
    "CACHE_ENABLE_COMPRESSION": _env_field("enable_compression", _parse_bool),
    "CACHE_COMPRESSION_THRESHOLD": _env_field("compression_threshold", int),
    "CACHE_MAX_INFLATED_BYTES": _env_field("max_inflated_bytes", int),
    "REDIS_URL": _env_field("redis_url", _str),
    "REDIS_HOST": _env_field("redis_host", _str),
    "REDIS_PORT": _env_field("redis_port", int),
    "REDIS_PASSWORD": _env_field("redis_password", _str),
    "REDIS_DATABASE": _env_field("redis_database", int),
    "REDIS_CLUSTER": _env_field("redis_cluster", _parse_bool),
    "CACHE_DATABASE_URL": _env_field("database_url", _str),
    "DATABASE_URL": _env_field("database_url", _str),
    "CACHE_TABLE_NAME": _env_field("table_name", _str),
    "CACHE_LOADER_TIMEOUT": _env_field("loader_timeout", float),
    "CACHE_LEASE_TTL": _env_field("lease_ttl", float),
    "CACHE_LEASE_WAIT": _env_field("lease_wait", float),
}
