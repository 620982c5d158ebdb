"""cachetier: a two-tier async cache (in-process L1 over Redis, PostgreSQL or embedded SQLite)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    InvalidLoaderError,
    InvalidTagError,
    InvalidTTLError,
    LoaderTimeoutError,
    MissingDependencyError,
    NotAnIntegerError,
    SerializationError,
)
from cachetier.factory import HealthCheck, create_cache, create_for_testing, create_health_check, create_with_config
from cachetier.keys import MAX_KEY_BYTES, MAX_TAG_BYTES
from cachetier.manager import CacheManager
from cachetier.protocols import L2Adapter, L2Entry, Lease, LeasingAdapter
from cachetier.sentinel import MISS, Missing
from cachetier.stats import CacheStats, L1Stats, L2Stats

if TYPE_CHECKING:  # imported on first use (see __getattr__): the integrations import this package
    from cachetier.integrations.decorators import cache_class, cache_method
    from cachetier.integrations.patterns import CachePatterns

__version__ = "0.1.0"

# The seed's `import { CacheMethod, CacheClass, CachePatterns }`; also at their home,
# `cachetier.integrations.decorators` and `cachetier.integrations.patterns`.
_LAZY = {
    "CachePatterns": "cachetier.integrations.patterns",
    "cache_class": "cachetier.integrations.decorators",
    "cache_method": "cachetier.integrations.decorators",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cachetier' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
    "CachePatterns",
    "CacheStats",
    "Codec",
    "ConfigError",
    "DeserializationError",
    "EntryOptions",
    "HealthCheck",
    "InvalidKeyError",
    "InvalidLoaderError",
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
    "MissingDependencyError",
    "NotAnIntegerError",
    "SerializationError",
    "cache_class",
    "cache_method",
    "create_cache",
    "create_for_testing",
    "create_health_check",
    "create_with_config",
]
