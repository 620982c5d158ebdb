"""Exceptions raised at the call that made the mistake.

Programmer errors (bad key, bad TTL, unencodable value, bad config) are raised
to the caller. Backend faults are `BackendError`s inside the adapter layer and
never reach the caller of a `CacheManager` method: the manager degrades instead.
"""

from __future__ import annotations


class CacheError(Exception):
    """Base class of every exception cachetier raises."""


class ConfigError(CacheError, ValueError):
    """A configuration value is invalid; the message names the setting."""


class InvalidKeyError(CacheError, ValueError):
    """A key is not a non-empty string within the documented length limit."""


class InvalidTTLError(CacheError, ValueError):
    """A TTL is not a positive number of seconds."""


class InvalidTagError(CacheError, ValueError):
    """A tag is not a non-empty string within the documented length limit."""


class SerializationError(CacheError, TypeError):
    """A value cannot be encoded by the configured codec."""


class DeserializationError(CacheError, ValueError):
    """Stored bytes cannot be decoded; the entry is treated as a miss."""


class NotAnIntegerError(CacheError, TypeError):
    """`increment`/`decrement` hit a key whose value is not an integer."""


class InvalidLoaderError(CacheError, TypeError):
    """A loader is not callable."""


class LoaderTimeoutError(CacheError, TimeoutError):
    """A loader ran longer than `loader_timeout`; every caller waiting for it gets this."""


class BackendError(CacheError):
    """An L2 backend failed (connection lost, timeout, server error).

    Adapters raise it; the manager's guard catches it, counts it and degrades.
    """


class CacheClosedError(CacheError, RuntimeError):
    """The cache was used after `close()`."""


class MissingDependencyError(ConfigError, ImportError):
    """The configuration needs an optional package that is not installed; the message names the extra."""
