"""Moving back to the first choice, and closing in the middle of it (pure logic over memory adapters)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from cachetier.adapters.memory import MemoryAdapter
from cachetier.config import CacheConfig
from cachetier.errors import BackendError
from cachetier.manager import CacheManager
from cachetier.move_back import TASK_NAME
from cachetier.selection import Candidate, SelectingAdapter


class Backend(MemoryAdapter):
    """Answers pings only once `answering`, holds `clear` while `clear_gate` is unset, remembers being closed."""

    answering = False
    clear_gate: asyncio.Event | None = None

    def __init__(self) -> None:
        super().__init__()
        self.clearing = asyncio.Event()
        self.closed = False

    async def ping(self) -> None:
        if not self.answering:
            raise BackendError("not answering")

    async def clear(self, prefix: str) -> int:
        self.clearing.set()
        if Backend.clear_gate is not None:
            await Backend.clear_gate.wait()
        return await super().clear(prefix)

    async def close(self) -> None:
        self.closed = True
        await super().close()


async def until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def probes() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == TASK_NAME and not task.done()]


def manager_on_fallback() -> tuple[CacheManager, list[Backend], Backend]:
    built: list[Backend] = []
    fallback = Backend()
    fallback.answering = True

    def build_first() -> Backend:
        built.append(Backend())
        return built[-1]

    selector = SelectingAdapter(
        CacheConfig(),
        [Candidate("first", build_first, "first choice"), Candidate("second", lambda: fallback, "second")],
    )
    return CacheManager(selector, CacheConfig(namespace="mb")), built, fallback


async def test_close_during_the_switch_leaves_no_backend_open_and_no_task() -> None:
    cache, built, fallback = manager_on_fallback()
    await cache.set("k", "on the fallback")
    assert cache.selection_reason.startswith("second (fallback after: first")
    Backend.answering, Backend.clear_gate = True, asyncio.Event()  # the switch stops in its clear
    try:
        await until(lambda: bool(built) and built[-1].clearing.is_set(), 10)
        await asyncio.wait_for(cache.close(), 10)
    finally:
        Backend.answering, Backend.clear_gate = False, None
    assert all(backend.closed for backend in built)  # the one being switched to as well
    assert fallback.closed
    assert not probes()


async def test_the_first_choice_serves_once_it_answers_and_the_fallback_is_closed() -> None:
    cache, built, fallback = manager_on_fallback()
    await cache.set("k", "on the fallback")
    assert probes()
    Backend.answering = True
    try:
        await until(lambda: "moved back" in cache.selection_reason, 10)
        assert await cache.get("k") is None  # L1 was emptied; the first choice never had it
        assert await cache.set("k", "on the first choice")
        assert await built[-1].get("mb:k") is not None
        assert cache.selection_reason == "first choice; moved back to it from memory once it answered"
        await until(lambda: not probes(), 5)  # it closes the fallback after a 1 s grace, then ends
        assert fallback.closed
        assert not built[-1].closed
    finally:
        Backend.answering = False
        await cache.close()
    assert built[-1].closed
