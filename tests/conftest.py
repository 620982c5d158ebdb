"""Shared fixtures: the real Redis and PostgreSQL servers every machine of this project runs.

Outside CI a missing server skips the tests that need it; in CI (CI=true) it fails them,
because `.ci/run` is responsible for starting both before the tests run.
"""

from __future__ import annotations

import os
import socket

import pytest

REDIS_URL = os.environ.get("CACHETIER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_DSN = os.environ.get("CACHETIER_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _require(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; in CI this is a failure (.ci/run should have started it)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the machine's Redis server (127.0.0.1:6379 by default)."""
    _require("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of the machine's PostgreSQL server (database test, user postgres, trust auth)."""
    _require("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_DSN
