"""Shared fixtures: the real Redis and PostgreSQL servers every machine of this project runs.

A server that is down is started with the machine's standard command first. If it
still cannot be reached, the tests that need it are skipped outside CI and fail in
CI (CI=true), where a missing server is an error, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cluster_servers import RedisClusterServers

REDIS_URL = os.environ.get("CACHETIER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_DSN = os.environ.get("CACHETIER_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _start_command(name: str) -> list[str] | None:
    if name == "Redis" and shutil.which("redis-server"):
        return ["bash", ".ci/start-services", "redis"]
    if name == "PostgreSQL" and shutil.which("pg_ctlcluster"):
        return ["bash", ".ci/start-services", "postgres"]
    return None


def _require(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    command = _start_command(name)
    if command is not None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        subprocess.run(command, cwd=root, check=False, capture_output=True, timeout=60)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not _reachable(host, port):
            time.sleep(0.2)
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


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A throwaway 6-node Redis Cluster (3 primaries, 3 replicas) shared by the session (see `cluster_servers`)."""
    from cluster_servers import RedisClusterServers

    with RedisClusterServers() as servers:
        yield servers
