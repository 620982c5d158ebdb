"""The cache-aside handle returned by `CacheManager.cache_aside`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cachetier.api_types import Loader

if TYPE_CHECKING:
    from cachetier.manager import CacheManager

_T = TypeVar("_T")


class CacheAside(Generic[_T]):
    """One key bound to its loader, so call sites don't repeat key, TTL and tags."""

    __slots__ = ("_cache", "key", "loader", "namespace", "tags", "ttl", "type")

    def __init__(
        self,
        cache: CacheManager,
        key: str,
        loader: Loader[_T],
        *,
        ttl: float | None,
        tags: tuple[str, ...],
        namespace: str | None,
        type: Any = None,
    ) -> None:
        self._cache = cache
        self.key = key
        self.loader = loader
        self.ttl = ttl
        self.tags = tags
        self.namespace = namespace
        self.type = type  # values come back as this type (see `CacheManager.get`)

    async def get(self) -> _T:
        """The cached value, loading and storing it on a miss (single-flight)."""
        value: _T = await self._cache.get(
            self.key, self.loader, ttl=self.ttl, tags=self.tags, namespace=self.namespace, type=self.type
        )
        return value

    async def refresh(self) -> _T:
        """Reload and store unconditionally."""
        value: _T = await self._cache.refresh(
            self.key, self.loader, ttl=self.ttl, tags=self.tags, namespace=self.namespace, type=self.type
        )
        return value

    async def invalidate(self) -> bool:
        return await self._cache.delete(self.key, namespace=self.namespace)
