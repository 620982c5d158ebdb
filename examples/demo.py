"""The README's demo: set, hit, loader, tag invalidation and stats on the embedded default.

Run: python examples/demo.py  (no server needed; set REDIS_URL/CACHE_ENVIRONMENT=production
or DATABASE_URL=postgresql://... to run the same demo on Redis or PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
import time

from cachetier import create_cache, create_health_check


async def load_user(user_id: int) -> dict[str, object]:
    await asyncio.sleep(0.05)  # stands in for a database query
    return {"id": user_id, "name": f"User {user_id}"}


async def main() -> None:
    async with create_cache(namespace="demo") as cache:
        print(f"backend: {cache.adapter_type} ({cache.selection_reason})")
        await cache.clear()

        await cache.set("user:123", {"name": "John"}, ttl=3600, tags=["users", "user:123"])
        print("set user:123 ->", await cache.get("user:123"))

        started = time.perf_counter()
        user = await cache.get("user:7", lambda: load_user(7), ttl=600, tags=["users"])
        print(f"miss, loader ran: {user} in {(time.perf_counter() - started) * 1000:.1f} ms")
        started = time.perf_counter()
        user = await cache.get("user:7", lambda: load_user(7), ttl=600, tags=["users"])
        print(f"hit from L1: {user} in {(time.perf_counter() - started) * 1_000_000:.1f} us")

        removed = await cache.invalidate_by_tag("users")
        print(f"invalidate_by_tag('users') removed {removed} entries; user:123 now -> {await cache.get('user:123')}")

        print("counter:", await cache.increment("page-views"), await cache.increment("page-views", by=10))
        print("stats:", json.dumps((await cache.get_stats()).to_dict(), indent=2, default=str))
        print("health:", await create_health_check(cache)())
        await cache.clear()


if __name__ == "__main__":
    asyncio.run(main())
