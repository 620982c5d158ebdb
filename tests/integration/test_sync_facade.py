"""The blocking facade over the async core, as WSGI apps and sync decorators use it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cachetier import CacheClosedError, CacheConfig, create_for_testing, create_with_config
from cachetier import sync as sync_module
from cachetier.adapters.memory import MemoryAdapter
from cachetier.sync import SyncCache


@pytest.fixture
def cache() -> Iterator[SyncCache]:
    with SyncCache(create_for_testing()) as facade:
        yield facade


def test_set_get_delete_and_tags_work_from_a_plain_thread(cache: SyncCache) -> None:
    cache.set("user:1", {"name": "J"}, tags=["users"])
    assert cache.get("user:1") == {"name": "J"}
    assert cache.invalidate_by_tag("users") == 1
    assert cache.get("user:1") is None
    assert cache.increment("n", 2) == 2
    assert cache.mget(["n", "absent"]) == {"n": 2}


def test_get_without_a_loader_rejects_unknown_options_as_the_manager_does(cache: SyncCache) -> None:
    with pytest.raises(TypeError, match="nmespace"):
        cache.get("absent", nmespace="other")
    assert cache.get("absent", namespace="other", default=0, ttl=5) == 0


def test_loader_runs_in_the_calling_thread(cache: SyncCache) -> None:
    seen: list[threading.Thread] = []

    def loader() -> str:
        seen.append(threading.current_thread())
        return "v"

    assert cache.get("k", loader) == "v"
    assert seen == [threading.current_thread()]


def test_recursive_cached_loaders_do_not_deadlock(cache: SyncCache) -> None:
    def fib(n: int) -> int:
        if n < 2:
            return n
        return cache.get(f"fib:{n}", lambda: fib(n - 1) + fib(n - 2))  # type: ignore[no-any-return]

    assert fib(40) == 102334155


def test_concurrent_threads_share_one_loader_call(cache: SyncCache) -> None:
    calls = 0

    def slow() -> str:
        nonlocal calls
        calls += 1
        time.sleep(0.1)
        return "once"

    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("hot", slow))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["once"] * 8
    assert calls == 1


def test_loader_error_reaches_the_caller_and_nothing_is_stored(cache: SyncCache) -> None:
    def broken() -> str:
        raise LookupError("no such user")

    with pytest.raises(LookupError):
        cache.get("k", broken)
    assert cache.exists("k") is False


def test_l1_hit_is_answered_without_a_loop_round_trip(cache: SyncCache) -> None:
    cache.set("k", "v")
    cache._loop.call_soon_threadsafe(time.sleep, 0.3)  # block the loop thread
    started = time.perf_counter()
    assert cache.get("k") == "v"
    assert time.perf_counter() - started < 0.1


def test_a_closed_facade_raises_cache_closed_error() -> None:
    facade = SyncCache(create_for_testing())
    facade.set("k", 1)
    facade.close()
    with pytest.raises(CacheClosedError):
        facade.get("k")
    with pytest.raises(CacheClosedError):
        facade.set("k", 2)
    with pytest.raises(CacheClosedError):
        facade.get("k", lambda: 3)


def test_a_call_in_flight_when_the_facade_closes_does_not_hang() -> None:
    class SlowAdapter(MemoryAdapter):
        async def get(self, key: str) -> bytes | None:
            await asyncio.sleep(30)
            return None

    facade = SyncCache(create_with_config(CacheConfig(), adapter=SlowAdapter()))
    outcome: list[object] = []

    def read() -> None:
        try:
            outcome.append(facade.get("k"))
        except Exception as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.1)
    facade.close()
    reader.join(timeout=2)
    assert not reader.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], CacheClosedError)


def test_a_caller_interrupted_while_its_loader_is_wanted_does_not_strand_other_callers(
    cache: SyncCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_wait = sync_module.wait
    interrupted = threading.Event()

    def interrupting_wait(*args: Any, **kwargs: Any) -> Any:
        if not interrupted.is_set():
            interrupted.set()
            time.sleep(0.05)  # the manager misses and asks for the loader meanwhile
            raise KeyboardInterrupt  # as Ctrl-C lands in the caller's thread
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(sync_module, "wait", interrupting_wait)
    with pytest.raises(KeyboardInterrupt):
        cache.get("k", lambda: "from the interrupted caller")
    done: list[Any] = []
    other = threading.Thread(target=lambda: done.append(cache.get("k", lambda: "from the next caller")))
    other.start()
    other.join(timeout=5)
    assert done == ["from the next caller"]  # not stuck behind a load nobody will finish


# -- what the async manager offers, blocking ------------------------------------------------


def test_cache_aside_handle_loads_once_refreshes_and_invalidates(cache: SyncCache) -> None:
    loads: list[int] = []

    def load() -> dict[str, int]:
        loads.append(1)
        return {"n": len(loads)}

    handle = cache.cache_aside("aside", load, ttl=60, tags=["asides"])
    assert handle.get() == {"n": 1}
    assert handle.get() == {"n": 1}
    assert handle.refresh() == {"n": 2}
    assert cache.get("aside") == {"n": 2}
    assert handle.invalidate() is True
    assert handle.get() == {"n": 3}
    assert cache.invalidate_by_tag("asides") == 1


def test_start_adapter_type_and_selection_reason(cache: SyncCache) -> None:
    assert cache.start() is cache
    assert cache.adapter_type == "sqlite"
    assert cache.selection_reason == cache.manager.selection_reason


class RecordingHook:
    def __init__(self) -> None:
        self.purged: list[list[str]] = []

    async def purge_tags(self, tags: Any) -> None:
        self.purged.append(list(tags))


class FailingHook:
    async def purge_tags(self, tags: Any) -> None:
        raise RuntimeError("CDN down")


def test_purge_hooks_hear_tag_invalidations_and_failures_are_counted(cache: SyncCache) -> None:
    hook = RecordingHook()
    cache.add_purge_hook(hook)
    cache.add_purge_hook(FailingHook())
    cache.set("page", "body", tags=["posts"])
    assert cache.invalidate_by_tag("posts") == 1
    assert hook.purged == [["posts"]]
    assert cache.purge_failures == 1


def test_set_and_mset_say_whether_l2_took_them_and_mset_takes_the_seeds_entries(cache: SyncCache) -> None:
    assert cache.set("a", 1) is True
    assert cache.mset([{"key": "b", "value": 2, "options": {"tags": ["t"]}}, ("c", 3)]) is True
    assert cache.mget(["a", "b", "c"]) == {"a": 1, "b": 2, "c": 3}
    assert cache.invalidate_by_tag("t") == 1


def test_a_caller_that_joined_an_interrupted_callers_load_starts_again(
    cache: SyncCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_wait = sync_module.wait
    other_waiting = threading.Event()
    first = threading.current_thread()
    done: list[Any] = []

    def scripted_wait(pending: Any, return_when: Any = None) -> Any:
        if threading.current_thread() is not first:
            other_waiting.set()  # the other call is submitted: it runs on the loop next
            return real_wait(pending, return_when=return_when)
        real_wait(pending, return_when=return_when)  # this caller's loader is wanted: the load is in flight
        other.start()
        assert other_waiting.wait(5)
        cache.run(asyncio.sleep(0))  # the loop has run the other call up to joining the load in flight
        raise KeyboardInterrupt  # as Ctrl-C lands in this caller's thread, ending that load

    other = threading.Thread(target=lambda: done.append(cache.get("k", lambda: "from the other caller")))
    monkeypatch.setattr(sync_module, "wait", scripted_wait)
    with pytest.raises(KeyboardInterrupt):
        cache.get("k", lambda: "from the interrupted caller")
    other.join(timeout=10)
    assert done == ["from the other caller"]  # restarted, not a CancelledError
