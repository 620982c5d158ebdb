"""RedisAdapter against throwaway servers: down, hung, with a password, over TLS, behind Sentinel.

Every call raises `BackendError` (never hangs) while the server is away, and
works again once it is back, with the scripts it lost reloaded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection
from redis.exceptions import RedisError

from cachetier.adapters.redis import RedisAdapter
from cachetier.config import CacheConfig
from cachetier.errors import BackendError
from cachetier.protocols import L2Entry
from servers import RedisServer

Call = Callable[[RedisAdapter], Coroutine[Any, Any, object]]
CALLS: dict[str, Call] = {
    "get": lambda a: a.get("k"),
    "mget": lambda a: a.mget(["k", "j"]),
    "set": lambda a: a.set("k", b"v", 60, ("t",)),
    "mset": lambda a: a.mset([L2Entry("k", b"v", 60)]),
    "delete": lambda a: a.delete("k"),
    "exists": lambda a: a.exists("k"),
    "expire": lambda a: a.expire("k", 60),
    "incr": lambda a: a.incr("n", 1, 60),
    "invalidate_tags": lambda a: a.invalidate_tags(["t"]),
    "clear": lambda a: a.clear("k"),
    "get_or_lease": lambda a: a.get_or_lease("k", 30),
    "set_leased": lambda a: a.set_leased("k", b"v", 60, ("t",), 1),
    "ping": lambda a: a.ping(),
    "stats": lambda a: a.stats(),
}


async def _assert_every_call_raises_backend_error(adapter: RedisAdapter, within: float) -> None:
    async def check(name: str, call: Call) -> None:
        started = time.monotonic()
        with pytest.raises(BackendError) as caught:
            await call(adapter)
        assert time.monotonic() - started < within, name
        assert isinstance(caught.value.__cause__, RedisError), name

    await asyncio.gather(*(check(name, call) for name, call in CALLS.items()))


async def _assert_works(adapter: RedisAdapter) -> None:
    await adapter.mset([L2Entry("j", b"w", 60, ("t",))])  # first: the pipeline must reload a lost script
    await adapter.set("k", b"v", 60, ("t",))
    assert await adapter.mget(["k", "j"]) == [b"v", b"w"]
    assert await adapter.expire("k", 60) is True
    token = (await adapter.get_or_lease("loaded", 30)).token
    assert token is not None
    assert await adapter.set_leased("loaded", b"x", 60, ("t",), token) is True
    assert await adapter.delete("j") is True
    assert await adapter.invalidate_tags(["t"]) == 2


@pytest.mark.slow
async def test_adapter_raises_backend_error_while_server_is_down_and_recovers_on_restart() -> None:
    with RedisServer() as server:
        adapter = RedisAdapter.from_url(server.url, socket_timeout=0.3, connect_timeout=0.3)
        try:
            await _assert_works(adapter)
            server.stop()
            await _assert_every_call_raises_backend_error(adapter, within=1.5)
            server.restart()
            await _assert_works(adapter)
        finally:
            await adapter.close()


@pytest.mark.slow
async def test_adapter_times_out_on_a_hung_server_and_recovers() -> None:
    with RedisServer() as server:
        adapter = RedisAdapter.from_url(server.url, socket_timeout=0.2, connect_timeout=0.2, retries=1)
        try:
            await _assert_works(adapter)
            server.pause()
            try:
                await _assert_every_call_raises_backend_error(adapter, within=1.5)
            finally:
                server.resume()
            await _assert_works(adapter)
        finally:
            await adapter.close()


@pytest.mark.slow
async def test_from_url_and_from_config_authenticate_with_a_password() -> None:
    password = "p@ss word"
    with RedisServer("--requirepass", password) as server:
        host_port = f"127.0.0.1:{server.port}"
        good = [
            RedisAdapter.from_url(f"redis://:p%40ss%20word@{host_port}/0"),
            RedisAdapter.from_url(server.url, password=password),
            RedisAdapter.from_config(CacheConfig(redis_url=server.url, redis_password=password)),
            RedisAdapter.from_config(
                CacheConfig(redis_host="127.0.0.1", redis_port=server.port, redis_password=password)
            ),
        ]
        bad = [RedisAdapter.from_url(server.url), RedisAdapter.from_url(f"redis://:wrong@{host_port}/0")]
        try:
            for adapter in good:
                await adapter.ping()
            for adapter in bad:
                with pytest.raises(BackendError):
                    await adapter.ping()
        finally:
            for adapter in good + bad:
                await adapter.close()


async def test_rediss_url_selects_tls_connections_with_url_settings() -> None:
    adapter = RedisAdapter.from_url("rediss://user:pw@cache.example:6380/3", ssl_cert_reqs="none", max_connections=7)
    try:
        pool = adapter.client.connection_pool
        assert issubclass(pool.connection_class, SSLConnection)
        assert pool.max_connections == 7
        kwargs = pool.connection_kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.example", 6380, 3)
        assert (kwargs["username"], kwargs["password"], kwargs["ssl_cert_reqs"]) == ("user", "pw", "none")
    finally:
        await adapter.close()


@pytest.mark.slow
async def test_rediss_url_talks_to_a_tls_server() -> None:
    with RedisServer(tls=True) as server:
        adapter = RedisAdapter.from_url(server.url, ssl_ca_certs=str(server.cert))
        try:
            await _assert_works(adapter)
        finally:
            await adapter.close()


@pytest.mark.slow
async def test_sentinel_url_finds_the_master() -> None:
    with RedisServer() as master, RedisServer(sentinel_of=(master.port, "primary")) as sentinel:
        adapter = RedisAdapter.from_url(f"redis+sentinel://127.0.0.1:9,127.0.0.1:{sentinel.port}/primary/2")
        try:
            await _assert_works(adapter)
            await adapter.set("k", b"v", 60)
            async with Redis(host="127.0.0.1", port=master.port, db=2) as direct:
                assert await direct.get("k") == b"v"
        finally:
            await adapter.close()
