"""Running `RedisClusterAdapter`'s scripts on a cluster, and its supply of lease tokens.

Scripts go by EVALSHA, pipelined: redis-py's cluster pipeline groups the
commands by node and sends each node's group at once, in parallel, so a batch
costs one round trip per node whatever its size. A node that lost its scripts
(a promoted replica, a restart) answers NOSCRIPT: every script is loaded on
every primary and only the commands that were refused are sent again (others
ran, and a write script must not run twice).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from cachetier.adapters import redis_cluster_scripts as scripts
from cachetier.adapters.redis_cluster_names import clock_name
from cachetier.adapters.redis_cluster_scripts import Script


class Call(NamedTuple):
    """One script run; on `node` when given (a cross-slot script), else on the owner of `keys`' slot."""

    script: Script
    keys: Sequence[str]
    args: Sequence[Any]
    node: ClusterNode | None = None


TOKEN_BLOCK: Final = 256  # tokens drawn from the clock at once
TOKEN_BLOCK_AGE: Final = 1.0  # seconds; a block older than this is dropped (see `TokenSupply`)


async def load_scripts(client: RedisCluster) -> bool:
    """SCRIPT LOAD every script on every primary; False when they refuse cross-slot scripts (Redis < 7)."""
    for script in scripts.ALL:
        await client.script_load(script.source)  # redis-py sends SCRIPT LOAD to every primary
    try:
        for script in scripts.CROSS_SLOT.values():
            await client.script_load(script.source)
    except ResponseError:
        return False
    return True


async def run_script(client: RedisCluster, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """One script on the node that owns `keys` (all in one slot)."""
    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        await load_scripts(client)
        return await client.evalsha(script.sha, len(keys), *keys, *args)


async def _pipelined(client: RedisCluster, calls: Sequence[Call]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for script, keys, args, node in calls:
        if node is None:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        else:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args, target_nodes=node)
    return list(await pipe.execute(raise_on_error=False))


async def run_scripts(client: RedisCluster, calls: Sequence[Call]) -> list[Any]:
    """Every call, one round trip per node; raises the first error any of them met."""
    if not calls:
        return []
    if len(calls) == 1 and calls[0].node is None:
        script, keys, args, _ = calls[0]
        return [await run_script(client, script, keys, args)]
    results = await _pipelined(client, calls)
    refused = [position for position, result in enumerate(results) if isinstance(result, NoScriptError)]
    if refused:
        await load_scripts(client)
        again = await _pipelined(client, [calls[position] for position in refused])
        for position, result in zip(refused, again, strict=True):
            results[position] = result
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


async def run_commands(client: RedisCluster, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Plain single-slot commands, one round trip per node; raises the first error."""
    if not commands:
        return []
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    results = list(await pipe.execute(raise_on_error=False))
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


async def draw_from_clock(client: RedisCluster, count: int) -> int:
    """Take `count` tokens from the cluster's lease clock; the highest is returned."""
    return int(await run_script(client, scripts.CLOCK, [clock_name()], [count]))


class TokenSupply:
    """Lease tokens (and write tickets) from blocks drawn from the clock.

    Why a token drawn earlier is safe: an invalidation's mark is drawn from the
    clock after it starts, so it exceeds every token drawn before, including
    unused ones in a block. A block drawn before another process's invalidation
    only errs the safe way (a lease whose store is refused); a refusal drops
    the block (`drop`), and so do this process's own invalidations and age.
    """

    def __init__(self, client: RedisCluster) -> None:
        self._client = client
        self._next = 1
        self._top = 0
        self._drawn_at = 0.0
        self._drawing: asyncio.Future[None] | None = None

    async def take(self) -> int:
        while True:
            if self._next <= self._top and time.monotonic() - self._drawn_at < TOKEN_BLOCK_AGE:
                token = self._next
                self._next += 1
                return token
            if self._drawing is None:
                self._drawing = asyncio.ensure_future(self._draw())
            drawing = self._drawing
            try:
                await asyncio.shield(drawing)
            finally:
                if self._drawing is drawing and drawing.done():
                    self._drawing = None

    async def _draw(self) -> None:
        drawn_at = time.monotonic()
        top = await draw_from_clock(self._client, TOKEN_BLOCK)
        if top > self._top:
            self._next, self._top, self._drawn_at = top - TOKEN_BLOCK + 1, top, drawn_at

    def drop(self, below: int | None = None) -> None:
        """Forget the current block (only if its tokens are below `below`, when given)."""
        if below is None or self._top < below:
            self._next = self._top + 1
