"""`SelectingAdapter` closing while it is still choosing (pure logic over the memory adapter)."""

from __future__ import annotations

import asyncio

import pytest

from cachetier.adapters.memory import MemoryAdapter
from cachetier.config import CacheConfig
from cachetier.errors import BackendError
from cachetier.selection import Candidate, SelectingAdapter


class SlowToAnswer(MemoryAdapter):
    """Answers its first ping only when told to, and remembers being closed."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()
        self.closed = False

    async def ping(self) -> None:
        await self.answer.wait()

    async def close(self) -> None:
        self.closed = True
        await super().close()


async def test_close_during_the_choice_closes_the_backend_it_then_picks() -> None:
    backend = SlowToAnswer()
    selector = SelectingAdapter(CacheConfig(), [Candidate("slow", lambda: backend, "test")])
    choosing = asyncio.create_task(selector.resolve())
    await asyncio.sleep(0.01)  # the candidate is being pinged
    closing = asyncio.create_task(selector.close())
    await asyncio.sleep(0.01)
    assert not closing.done()  # close waits for the choice instead of missing its backend
    backend.answer.set()
    assert await choosing is backend
    await closing
    assert backend.closed
    with pytest.raises(BackendError):
        await selector.resolve()  # nothing is connected again after close
