"""Checking a Redis URL's shape before anything connects, so a typo is a `ConfigError`, not an outage.

Accepted (see `cachetier.adapters.redis_connection` and
`cachetier.adapters.redis_cluster_connection`):

- ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...``, ``unix:///path[?db=N]``;
- ``redis+sentinel://host[:port][,host[:port]...]/service_name[/db]``;
- ``redis+cluster://host[:port][,host[:port]...][/]`` (``rediss+cluster://`` with TLS),
  or a ``redis://``/``rediss://`` URL with ``?cluster=true``.

Refused: other schemes, several hosts outside Sentinel and Cluster URLs (the
usual way of guessing a cluster), a port out of range, a database that is not
a number (or not 0 on a cluster), and query options the driver does not take.
Only the standard library is imported here; the driver (when installed) is
asked which query options its connections accept.
"""

from __future__ import annotations

import inspect
from functools import cache
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from cachetier.errors import ConfigError

SINGLE_SCHEMES: Final = frozenset({"redis", "rediss", "unix"})
SENTINEL_SCHEMES: Final = frozenset({"redis+sentinel"})
CLUSTER_SCHEMES: Final = frozenset({"redis+cluster", "rediss+cluster"})
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_OUR_OPTIONS: Final = frozenset({"cluster", "sentinel_kwargs"})


def is_cluster_url(url: str | None) -> bool:
    """True for ``redis+cluster://``/``rediss+cluster://`` URLs and Redis URLs with ``cluster=true``."""
    if not url:
        return False
    parts = urlsplit(url)
    if parts.scheme in CLUSTER_SCHEMES:
        return True
    return parts.scheme in {"redis", "rediss"} and dict(parse_qsl(parts.query)).get("cluster", "").lower() in _TRUE


@cache
def _driver_options() -> frozenset[str] | None:
    """Keyword options redis-py's connections take (None when redis-py is not installed)."""
    try:
        from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection
    except ImportError:
        return None
    names: set[str] = set()
    for connection_class in (AbstractConnection, Connection, SSLConnection):
        names.update(inspect.signature(connection_class.__init__).parameters)
    return frozenset(names - {"self", "args", "kwargs"}) | {"db", "max_connections", "timeout"}


def check_redis_url(url: str, *, cluster: bool = False) -> None:
    """Raise `ConfigError` naming what is wrong with `url`; `cluster` says cluster mode is configured."""
    try:
        parts = urlsplit(url)
        for host in _hosts(parts.netloc):
            urlsplit("//" + host).port  # noqa: B018  # raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(f"redis URL {url!r} is invalid: {exc}") from exc
    scheme = parts.scheme
    if scheme not in SINGLE_SCHEMES | SENTINEL_SCHEMES | CLUSTER_SCHEMES:
        known = ", ".join(sorted(SINGLE_SCHEMES | SENTINEL_SCHEMES | CLUSTER_SCHEMES))
        raise ConfigError(f"redis URL {url!r} has an unsupported scheme {scheme!r} (use one of {known})")
    hosts = _hosts(parts.netloc)
    clustered = cluster or is_cluster_url(url)
    if scheme != "unix" and not hosts:
        raise ConfigError(f"redis URL {url!r} names no host")
    if len(hosts) > 1 and scheme not in SENTINEL_SCHEMES and not clustered:
        raise ConfigError(
            f"redis URL {url!r} names several hosts: for a Redis Cluster use redis+cluster://{','.join(hosts)}/ "
            "(or ?cluster=true), for Sentinel redis+sentinel://.../service_name"
        )
    if clustered and scheme in {"unix", *SENTINEL_SCHEMES}:
        raise ConfigError(f"redis URL {url!r}: cluster mode needs redis+cluster://, rediss+cluster:// or redis://")
    if scheme not in {"unix", *SENTINEL_SCHEMES}:
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ConfigError(f"redis URL {url!r}: the database must be a number, got {path!r}")
        if clustered and path not in {"", "0"}:
            raise ConfigError(f"redis URL {url!r}: a Redis Cluster has database 0 only")
    allowed = _driver_options()
    if allowed is not None:
        unknown = sorted({name for name, _ in parse_qsl(parts.query)} - allowed - _OUR_OPTIONS)
        if unknown:
            raise ConfigError(f"redis URL {url!r} has unknown option(s): {', '.join(unknown)}")


def _hosts(netloc: str) -> list[str]:
    return [host for host in netloc.rpartition("@")[2].split(",") if host]
