"""Per-operation DEBUG logging (the seed's debug mode), at no cost unless DEBUG is on at construction.

When `logging.getLogger("cachetier")` is enabled for DEBUG as a `CacheManager`
is built, its public coroutine methods are replaced, on that instance only, by
timed wrappers that log one record per call: the operation, the key (or the
first argument), where a `get` was answered, and the elapsed milliseconds. The
class's own methods are untouched, so a manager built without DEBUG pays
nothing, not even a flag check on the L1 hit path.

Where a `get` was answered: "l1" when L1 held the key as the call began (an L1
hit completes without yielding, so nothing can change it in between),
"loader" when this call's own loader ran, otherwise "l2" (an L2 hit, a load
shared with a concurrent caller, or the default on a miss).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from cachetier.sentinel import MISS

if TYPE_CHECKING:
    from cachetier.manager import CacheManager

logger = logging.getLogger("cachetier")

_TRACED = ("set", "delete", "exists", "expire", "increment", "decrement", "mget", "mset", "refresh", "clear")
_TRACED_TAGS = ("invalidate_by_tag", "invalidate_by_tags")


def trace_calls(manager: CacheManager) -> None:
    """Replace `manager`'s public coroutine methods by logging wrappers (see the module docstring)."""
    setattr(manager, "get", _traced_get(manager))  # noqa: B010 -- an instance attribute shadows the method
    for name in (*_TRACED, *_TRACED_TAGS):
        setattr(manager, name, _traced(name, getattr(manager, name)))


def _traced(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def traced(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await method(*args, **kwargs)
            outcome = "ok"
            return result
        finally:
            subject = args[0] if args else kwargs.get("namespace", "")
            if isinstance(subject, list | tuple | dict):
                subject = f"{len(subject)} items"
            logger.debug("cachetier: %s %s %s %.3f ms", name, subject, outcome, (time.perf_counter() - started) * 1e3)

    return traced


def _traced_get(manager: CacheManager) -> Callable[..., Awaitable[Any]]:
    method = type(manager).get

    async def get(key: str, loader: Any = None, **options: Any) -> Any:
        started = time.perf_counter()
        ran_loader = False
        tier = "l1" if manager.get_local(key, namespace=options.get("namespace")) is not MISS else "l2"
        if loader is not None and callable(loader):
            original = loader

            def loader() -> Any:
                nonlocal ran_loader
                ran_loader = True
                return original()

        outcome = "error"
        try:
            value = await method(manager, key, loader, **options)
            outcome = "hit" if tier == "l1" or not ran_loader else "loaded"
            return value
        finally:
            tier = "loader" if ran_loader else tier
            logger.debug("cachetier: get %s %s %s %.3f ms", key, tier, outcome, (time.perf_counter() - started) * 1e3)

    return get
