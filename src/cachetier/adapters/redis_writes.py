"""`RedisAdapter`'s keyed scripts: writes, deletes, expiries and leases, with the tag-list retry.

A script may touch only the keys in KEYS, and a key's stored tags are known
only to the server, so each script that must leave the key's old tags' indexes
refuses when the key's tag list names a tag the caller did not pass, and returns
the list; these calls run it again with those indexes (each attempt learns every
tag the key had, so one retry is the rule). Calls raise what the client raises
(`RedisError`, or `BackendError` from a batch), which the adapter turns into
`BackendError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from cachetier.adapters import redis_lease_scripts, redis_scripts
from cachetier.adapters.redis_batching import Joinable, ScriptBatcher
from cachetier.adapters.redis_keys import LEASE_COUNTER, lease, namespace_of, prefix_mark, tag_index, tag_list, tag_mark
from cachetier.adapters.redis_quiet import QuietChannel
from cachetier.errors import BackendError
from cachetier.protocols import L2Entry, Lease

MSET_CHUNK: Final = 500  # entries per untagged-write script: a longer one holds the server up longer
_ATTEMPTS: Final = 4  # tag-list retries; each one learns every tag the key had


def ms(ttl: float) -> int:
    """Seconds to whole milliseconds, rounded up, at least 1."""
    return max(1, math.ceil(ttl * 1000))


class KeyedScripts:
    """The scripts that change one key (or, in `mset`, many), each call sent through `run`."""

    def __init__(self, client: Redis, scripts: ScriptBatcher) -> None:
        self._client = client
        self._run = scripts.run
        self._run_many = scripts.run_many
        self._write = client.register_script(redis_scripts.WRITE)
        self.set_untagged = client.register_script(redis_scripts.SET_UNTAGGED)
        scripts.join(Joinable(self.set_untagged, keys_per_part=3, max_parts=MSET_CHUNK))
        self._expire = client.register_script(redis_scripts.EXPIRE)
        self._delete = client.register_script(redis_scripts.DELETE)
        self._incr = client.register_script(redis_scripts.INCR)
        self._get_or_lease = client.register_script(redis_lease_scripts.GET_OR_LEASE)
        self._set_leased = client.register_script(redis_lease_scripts.SET_LEASED)

    async def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str]) -> None:
        if not tags and not await self._run(self.set_untagged, [key, tag_list(key), lease(key)], [value, ms(ttl)]):
            return  # written: the key had no tags to leave (else its position came back)
        await self.write(L2Entry(key, value, ttl, tags), ())

    async def set_quietly(self, quiet: QuietChannel, key: str, value: bytes, ttl: float) -> list[bytes]:
        """An untagged write as SET_UNTAGGED's, in MULTI/EXEC on the tracker; the tags the key had, to leave.

        A transaction cannot skip the SET when the key had tags, as the script does, so
        it writes, then names them; `set` then runs WRITE, which leaves their indexes.
        Until then a tag invalidation may remove the new value: a drop, never a stale read.
        """
        reply = await quiet.transaction(
            [("DEL", lease(key)), ("SET", key, value, "PX", ms(ttl)), ("SMEMBERS", tag_list(key))]
        )
        stored_tags: list[bytes] = reply[2]
        return stored_tags

    async def delete_quietly(self, quiet: QuietChannel, key: str) -> tuple[bool, list[bytes]]:
        """Whether `key` was removed, in MULTI/EXEC on the tracker (revoking its lease), and the tags it had.

        Its tags' indexes are left to `delete` (a script), when there were any.
        """
        reply = await quiet.transaction([("DEL", lease(key)), ("UNLINK", key), ("SMEMBERS", tag_list(key))])
        return reply[1] == 1, reply[2]

    async def mset(self, entries: Sequence[L2Entry]) -> None:
        """Untagged entries go in one script per `MSET_CHUNK`, tagged ones in a WRITE each, all in one pipeline."""
        untagged = [entry for entry in entries if not entry.tags]
        tagged = [entry for entry in entries if entry.tags]
        chunks = [untagged[start : start + MSET_CHUNK] for start in range(0, len(untagged), MSET_CHUNK)]
        calls: list[tuple[AsyncScript, Sequence[str], Sequence[Any]]] = []
        for chunk in chunks:
            keys = [name for entry in chunk for name in (entry.key, tag_list(entry.key), lease(entry.key))]
            calls.append((self.set_untagged, keys, [arg for entry in chunk for arg in (entry.value, ms(entry.ttl))]))
        calls += [(self._write, *self._write_arguments(entry, ())) for entry in tagged]
        results = await self._run_many(calls)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        rewrites: list[tuple[L2Entry, Sequence[bytes]]] = []
        for chunk, skipped in zip(chunks, results, strict=False):
            rewrites += [(chunk[position - 1], ()) for position in skipped]
        for entry, result in zip(tagged, results[len(chunks) :], strict=True):
            if isinstance(result, list):
                rewrites.append((entry, result))
        for entry, stored_tags in rewrites:
            await self.write(entry, stored_tags)

    @staticmethod
    def _write_arguments(entry: L2Entry, known: Sequence[str]) -> tuple[list[str], list[Any]]:
        tags = list(dict.fromkeys(entry.tags))
        extra = [tag for tag in known if tag not in tags]
        keys = [entry.key, tag_list(entry.key), lease(entry.key), *map(tag_index, tags + extra)]
        return keys, [entry.value, ms(entry.ttl), len(tags), *tags, *extra]

    async def write(self, entry: L2Entry, stored_tags: Sequence[bytes], token: int | None = None) -> bool:
        """WRITE (with `token`, SET_LEASED) until every stored tag is known; False when the lease refused it."""
        known: dict[str, None] = {}
        marks: list[str] = []
        if token is not None:
            namespace = namespace_of(entry.key)
            marks = [prefix_mark(namespace), *([prefix_mark("")] if namespace else [])]
            marks += map(tag_mark, dict.fromkeys(entry.tags))
        for _ in range(_ATTEMPTS):
            known.update(dict.fromkeys(tag.decode() for tag in stored_tags))
            keys, args = self._write_arguments(entry, list(known))
            if token is None:
                result = await self._run(self._write, keys, args)
            else:
                result = await self._run(self._set_leased, [*keys, *marks], [*args, str(token)])
            if not isinstance(result, list):
                return bool(result == 0)
            stored_tags = result
        raise BackendError(f"tags of {entry.key!r} kept changing during set")

    async def incr(self, key: str, by: int, ttl: float) -> int:
        return int(await self._run(self._incr, [key, lease(key)], [by, ms(ttl)]))

    async def get_or_lease(self, key: str, lease_ttl: float) -> Lease:
        result = await self._run(self._get_or_lease, [key, lease(key), LEASE_COUNTER], [ms(lease_ttl)])
        if isinstance(result, bytes):
            return Lease(result)
        return Lease(None, int(result), False) if result else Lease(None, None, True)

    async def delete(self, key: str) -> bool:
        return bool(await self._with_stored_tags("delete", self._delete, key, []) == 1)

    async def expire(self, key: str, ttl: float) -> bool:
        return bool(await self._with_stored_tags("expire", self._expire, key, [ms(ttl)]))

    async def _with_stored_tags(self, operation: str, script: AsyncScript, key: str, args: list[Any]) -> Any:
        known: dict[str, None] = {}
        for _ in range(_ATTEMPTS):
            keys = [key, tag_list(key), lease(key), *map(tag_index, known)]
            result = await self._run(script, keys, [*args, *known])
            if not isinstance(result, list):
                return result
            known.update(dict.fromkeys(tag.decode() for tag in result))
        raise BackendError(f"tags of {key!r} kept changing during {operation}")
