"""How `RedisClusterAdapter` connects: cluster URLs and redis-py's `RedisCluster` client.

URLs (any one reachable node is enough; the client discovers the rest):

- ``redis+cluster://[[user]:password@]host[:port][,host[:port]...][/][?option=value...]``
  (``rediss+cluster://`` for TLS), port 6379 by default;
- ``redis://host:port/?cluster=true`` (or ``rediss://``), one seed node.

A cluster has database 0 only: a path other than ``/`` or ``/0`` is a
`ConfigError`, as are an unknown scheme, a bad port and a query option redis-py
does not know. Settings in a URL win over keyword options.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisClusterException

from cachetier.config import CacheConfig
from cachetier.errors import ConfigError

CLUSTER_SCHEMES: Final = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def _nodes(netloc: str, url: str) -> list[tuple[str, int]]:
    hosts = netloc.rpartition("@")[2]
    if not hosts:
        raise ConfigError(f"redis cluster URL {url!r} names no node")
    nodes = []
    for host in hosts.split(","):
        try:
            address = urlsplit("//" + host)
            port = address.port or 6379
        except ValueError as exc:
            raise ConfigError(f"redis cluster URL {url!r} has a bad node {host!r}: {exc}") from exc
        if not address.hostname:
            raise ConfigError(f"redis cluster URL {url!r} has a node without a host: {host!r}")
        nodes.append((address.hostname, port))
    return nodes


def cluster_options_from_url(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """(seed nodes, client options) from a cluster URL; raises `ConfigError` when it is malformed."""
    parts = urlsplit(url)
    scheme = CLUSTER_SCHEMES.get(parts.scheme, parts.scheme)
    if scheme not in {"redis", "rediss"}:
        raise ConfigError(f"redis cluster URL {url!r} must start with redis+cluster://, rediss+cluster:// or redis://")
    if parts.path not in {"", "/", "/0"}:
        raise ConfigError(f"redis cluster URL {url!r}: a cluster has database 0 only, got path {parts.path!r}")
    nodes = _nodes(parts.netloc, url)
    query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if name != "cluster"]
    credentials = parts.netloc.rpartition("@")[0]
    seed = f"{scheme}://{credentials + '@' if credentials else ''}{nodes[0][0]}:{nodes[0][1]}/0"
    if query:
        seed += "?" + urlencode(query)
    try:
        options: dict[str, Any] = dict(parse_url(seed))
    except ValueError as exc:
        raise ConfigError(f"redis cluster URL {url!r} is invalid: {exc}") from exc
    for name in ("host", "port", "db", "path"):
        options.pop(name, None)
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    if "username" in options:
        options["username"] = unquote(options["username"])
    return nodes, options


def cluster_client(
    nodes: list[tuple[str, int]],
    *,
    max_connections: int = 64,
    socket_timeout: float = 1.0,
    connect_timeout: float = 1.0,
    retries: int = 2,
    **options: Any,
) -> RedisCluster:
    """A lazily connecting `RedisCluster` on `nodes`; `max_connections` is per node.

    `retries` counts the client's retries after a connection error, a timeout or
    a cluster that is down, each after re-reading the slot map (so a call made
    while a replica is being promoted finds the new primary when it is ready).
    """
    options.setdefault("socket_timeout", socket_timeout)
    options.setdefault("socket_connect_timeout", connect_timeout)
    options.pop("pool_timeout", None)
    options.pop("decode_responses", None)
    if options.pop("db", 0):
        raise ConfigError("a Redis Cluster has database 0 only (redis_database must be 0)")
    try:
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in nodes],
            max_connections=max_connections,
            retry=Retry(ExponentialBackoff(cap=0.25, base=0.025), retries),
            **options,
        )
    except (RedisClusterException, TypeError, ValueError) as exc:
        raise ConfigError(f"redis cluster settings are invalid: {exc}") from exc


def options_from_config(config: CacheConfig) -> dict[str, Any]:
    """`cluster_client` options from the Redis settings of `config` (a URL's own settings win over them)."""
    options: dict[str, Any] = {
        "max_connections": config.redis_max_connections,
        "socket_timeout": config.redis_socket_timeout,
        "connect_timeout": config.redis_connect_timeout,
        "db": config.redis_database,
    }
    if config.redis_password is not None:
        options["password"] = config.redis_password
    return options
