"""`HttpPurgeHook` against a real local HTTP server that records the purges."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cachetier import CacheManager, create_with_config
from cachetier.adapters.memory import MemoryAdapter
from cachetier.integrations.cdn import HttpPurgeHook


@dataclass
class PurgeServer:
    """What the fake CDN received, and what status it answers with."""

    url: str
    status: int = 200
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def purged_tags(self) -> list[str]:
        return [tag for request in self.requests for tag in request["body"]["tags"]]


@pytest.fixture
def purge_server() -> Iterator[PurgeServer]:
    state = PurgeServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            state.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/purge"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
async def cache() -> AsyncIterator[CacheManager]:
    manager = create_with_config(adapter=MemoryAdapter(), namespace="purgetest")
    try:
        yield manager
    finally:
        await manager.close()


async def test_invalidate_by_tag_posts_the_tag_to_the_purge_url(cache: CacheManager, purge_server: PurgeServer) -> None:
    async with HttpPurgeHook(purge_server.url, headers={"Authorization": "Bearer secret"}) as hook:
        cache.add_purge_hook(hook)
        await cache.set("profile", {"name": "Ada"}, tags=["user:1"])

        assert await cache.invalidate_by_tag("user:1") == 1

    assert len(purge_server.requests) == 1
    request = purge_server.requests[0]
    assert request["path"] == "/purge"
    assert request["body"] == {"tags": ["user:1"]}
    assert request["headers"]["Authorization"] == "Bearer secret"
    assert request["headers"]["Content-Type"] == "application/json"
    assert await cache.get("profile") is None


async def test_a_failing_purge_is_counted_and_the_invalidation_still_stands(
    cache: CacheManager, purge_server: PurgeServer
) -> None:
    purge_server.status = 500
    async with HttpPurgeHook(purge_server.url) as hook:
        cache.add_purge_hook(hook)
        await cache.set("profile", {"name": "Ada"}, tags=["user:1"])

        await cache.invalidate_by_tag("user:1")

    assert cache.purge_failures == 1
    assert purge_server.purged_tags == ["user:1"]
    assert await cache.get("profile") is None
    assert not await cache.exists("profile")


async def test_many_tags_are_sent_in_batches_of_the_configured_size(purge_server: PurgeServer) -> None:
    tags = [f"t{i}" for i in range(7)]
    async with HttpPurgeHook(purge_server.url, max_tags_per_request=3) as hook:
        await hook.purge_tags(tags)

    assert [request["body"]["tags"] for request in purge_server.requests] == [tags[:3], tags[3:6], tags[6:]]


async def test_a_custom_body_builder_shapes_the_request(purge_server: PurgeServer) -> None:
    purge_server.status = 204
    async with HttpPurgeHook(purge_server.url, body=lambda tags: {"tags": tags, "surrogate_keys": tags}) as hook:
        await hook.purge_tags(["a", "b"])

    assert purge_server.requests[0]["body"] == {"tags": ["a", "b"], "surrogate_keys": ["a", "b"]}


async def test_every_batch_is_tried_before_the_failure_is_raised(purge_server: PurgeServer) -> None:
    import httpx

    purge_server.status = 503
    async with HttpPurgeHook(purge_server.url, max_tags_per_request=1) as hook:
        with pytest.raises(httpx.HTTPStatusError):
            await hook.purge_tags(["a", "b"])

    assert purge_server.purged_tags == ["a", "b"]


async def test_an_unreachable_purge_url_is_counted_not_raised(cache: CacheManager) -> None:
    async with HttpPurgeHook("http://127.0.0.1:9/purge", timeout=1.0) as hook:
        cache.add_purge_hook(hook)
        await cache.set("k", 1, tags=["t"])

        await cache.invalidate_by_tag("t")

    assert cache.purge_failures == 1
    assert not await cache.exists("k")


def test_batch_size_must_be_positive() -> None:
    from cachetier.errors import ConfigError

    with pytest.raises(ConfigError, match="max_tags_per_request"):
        HttpPurgeHook("http://127.0.0.1/purge", max_tags_per_request=0)
