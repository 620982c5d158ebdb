"""cachetier: a two-tier async cache (in-process L1 over Redis, PostgreSQL or embedded SQLite)."""

from __future__ import annotations

from cachetier.api_types import EntryOptions, Loader, MSetItem
from cachetier.aside import CacheAside
from cachetier.codecs import Codec, JsonCodec
from cachetier.config import CacheConfig
from cachetier.errors import (
    BackendError,
    CacheClosedError,
    CacheError,
    ConfigError,
    DeserializationError,
    InvalidKeyError,
    InvalidTagError,
    InvalidTTLError,
    LoaderTimeoutError,
    NotAnIntegerError,
    SerializationError,
)
from cachetier.factory import HealthCheck, create_cache, create_for_testing, create_health_check, create_with_config
from cachetier.keys import MAX_KEY_BYTES, MAX_TAG_BYTES
from cachetier.manager import CacheManager
from cachetier.protocols import L2Adapter, L2Entry, Lease, LeasingAdapter
from cachetier.sentinel import MISS, Missing
from cachetier.stats import CacheStats, L1Stats, L2Stats

__version__ = "0.1.0"

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_TAG_BYTES",
    "MISS",
    "BackendError",
    "CacheAside",
    "CacheClosedError",
    "CacheConfig",
    "CacheError",
    "CacheManager",
    "CacheStats",
    "Codec",
    "ConfigError",
    "DeserializationError",
    "EntryOptions",
    "HealthCheck",
    "InvalidKeyError",
    "InvalidTTLError",
    "InvalidTagError",
    "JsonCodec",
    "L1Stats",
    "L2Adapter",
    "L2Entry",
    "L2Stats",
    "Lease",
    "LeasingAdapter",
    "Loader",
    "LoaderTimeoutError",
    "MSetItem",
    "Missing",
    "NotAnIntegerError",
    "SerializationError",
    "create_cache",
    "create_for_testing",
    "create_health_check",
    "create_with_config",
]
