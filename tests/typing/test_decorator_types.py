"""Call sites mypy must accept: `cache_method` keeps the decorated functions' types.

Checked by `mypy tests/typing/test_decorator_types.py`; the functions below are
never called (no cache is created when this module is imported).
"""

from __future__ import annotations

from typing import assert_type

from cachetier.integrations.decorators import cache_class, cache_method


@cache_method(ttl=60, tags=["user:{user_id}"])
async def load_user(user_id: int, *, fields: str = "all") -> dict[str, str]:
    return {"id": str(user_id), "fields": fields}


@cache_method(key="square:{x}")
def square(x: float) -> float:
    return x * x


@cache_method()
async def no_arguments() -> list[int]:
    return []


class Service:
    @cache_method(namespace="svc")
    async def get(self, item_id: int) -> str:
        return str(item_id)

    @cache_method()
    def total(self, a: int, b: int = 0) -> int:
        return a + b

    @cache_method()
    @classmethod
    async def build(cls, size: int) -> Service:
        return cls()

    @staticmethod
    @cache_method()
    def scale(size: int) -> int:
        return size * 2


@cache_class(namespace="users", default_ttl=300)
class Users:
    async def get(self, user_id: int) -> int:
        return user_id


@cache_class(namespace="userService", default_ttl=3600, tags=["users"], key_by="tenant_id")
class Search:
    tenant_id = "acme"

    @cache_method(key_generator=lambda query, limit: f"search:{query}:{limit}")
    async def search(self, query: str, limit: int) -> list[str]:
        return [query] * limit

    @cache_method(key_by=lambda service: service.tenant_id)
    def count(self, query: str) -> int:
        return len(query)


async def async_call_sites(service: Service) -> None:
    assert_type(await load_user(1), dict[str, str])
    assert_type(await load_user(user_id=1, fields="name"), dict[str, str])
    assert_type(await load_user.invalidate(1), bool)
    assert_type(await load_user.refresh(1, fields="x"), dict[str, str])
    assert_type(await no_arguments(), list[int])
    assert_type(await service.get(1), str)
    assert_type(await service.get.invalidate(item_id=1), bool)
    assert_type(await service.get.refresh(1), str)
    assert_type(await Service.get(service, 1), str)
    assert_type(await Service.build(3), Service)
    assert_type(await service.build(3), Service)
    assert_type(await Service.build.invalidate(3), bool)
    assert_type(await Users().get(1), int)
    assert_type(await Search().search("a", 2), list[str])
    name: str = load_user.__name__
    assert name


def sync_call_sites(service: Service) -> None:
    assert_type(square(2.0), float)
    assert_type(square.invalidate(2.0), bool)
    assert_type(square.refresh(x=2.0), float)
    assert_type(service.total(1, b=2), int)
    assert_type(service.total.invalidate(1), bool)
    assert_type(Service.scale(2), int)
    assert_type(Service.scale.invalidate(2), bool)
    assert_type(Search().count("a"), int)


async def rejected_call_sites(service: Service) -> None:
    await load_user("1")  # type: ignore[arg-type]
    square(2.0, 3.0)  # type: ignore[call-arg]
    await service.get.invalidate("x")  # type: ignore[arg-type]
    service.total(1, c=2)  # type: ignore[call-arg]
