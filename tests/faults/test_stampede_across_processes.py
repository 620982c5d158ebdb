"""1,000 concurrent misses of one key over 4 processes run the loader once (the L2 lease is the flight)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from linearizability import Backend
from servers import RedisServer
from stampede_workers import loader_calls

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _namespace() -> str:
    return f"herd{uuid.uuid4().hex[:10]}"


def test_redis(tmp_path: Path) -> None:
    with RedisServer() as server:
        calls = loader_calls(Backend("redis", server.url, _namespace()), 4, 250)
    print(f"redis: {calls} loader call(s) for 1,000 misses over 4 processes")
    assert calls == 1


def test_postgres(postgres_dsn: str) -> None:
    backend = Backend("postgres", postgres_dsn, _namespace(), table=f"herd_{uuid.uuid4().hex[:8]}")
    calls = loader_calls(backend, 4, 250)
    print(f"postgres: {calls} loader call(s) for 1,000 misses over 4 processes")
    assert calls == 1


def test_sqlite(tmp_path: Path) -> None:
    calls = loader_calls(Backend("sqlite", str(tmp_path / "herd.db"), _namespace()), 4, 250)
    print(f"sqlite: {calls} loader call(s) for 1,000 misses over 4 processes")
    assert calls == 1
