"""Cluster URLs: which ones mean cluster mode, and what a cluster URL turns into (no server needed)."""

from __future__ import annotations

import pytest

from cachetier.adapters.redis_cluster_connection import cluster_options_from_url
from cachetier.errors import ConfigError
from cachetier.redis_urls import check_redis_url, is_cluster_url


@pytest.mark.parametrize(
    ("url", "cluster"),
    [
        ("redis+cluster://h1:7000,h2:7001/", True),
        ("rediss+cluster://h:7000", True),
        ("redis://h:7000/0?cluster=true", True),
        ("redis://h:7000/0?cluster=yes", True),
        ("redis://h:7000/0?cluster=false", False),
        ("redis://h:7000/0", False),
        ("redis+sentinel://h:26379/mymaster", False),
        (None, False),
    ],
)
def test_cluster_mode_is_read_from_the_url(url: str | None, cluster: bool) -> None:
    assert is_cluster_url(url) is cluster


def test_a_cluster_url_gives_every_seed_node_credentials_and_tls() -> None:
    nodes, options = cluster_options_from_url("rediss+cluster://app:s%3Acret@h1:7000,h2,[::1]:7002/?socket_timeout=2")
    assert nodes == [("h1", 7000), ("h2", 6379), ("::1", 7002)]
    assert options["username"] == "app"
    assert options["password"] == "s:cret"
    assert options["ssl"] is True
    assert options["socket_timeout"] == 2.0


def test_a_redis_url_with_cluster_true_is_one_seed_node() -> None:
    nodes, options = cluster_options_from_url("redis://h:7000/0?cluster=true")
    assert nodes == [("h", 7000)]
    assert "cluster" not in options


@pytest.mark.parametrize(
    "url",
    ["redis+cluster://h:7000/1", "redis+cluster:///", "memcached://h:1", "redis+cluster://h:notaport/"],
)
def test_malformed_cluster_urls_raise_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        cluster_options_from_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "redis://h:6379/0",
        "rediss://user:pw@h:6380/2?ssl_cert_reqs=none",
        "unix:///run/redis.sock?db=1",
        "redis+sentinel://s1:26379,s2:26379/mymaster/0",
        "redis+cluster://h1:7000,h2:7001/",
        "redis://[::1]:6379/0",
    ],
)
def test_well_formed_redis_urls_pass_the_check(url: str) -> None:
    check_redis_url(url)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://h1:7000,h2:7001/0", r"redis\+cluster://h1:7000,h2:7001/"),
        ("redis://h:6379/zero", "database must be a number"),
        ("redis://h:6379/0?sockettimeout=1", "unknown option"),
        ("http://h:6379/0", "unsupported scheme"),
        ("redis+cluster://h:7000/5", "database 0 only"),
        ("redis://h:99999/0", "invalid"),
    ],
)
def test_bad_redis_urls_say_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        check_redis_url(url)
