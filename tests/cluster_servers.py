"""A throwaway Redis Cluster (3 primaries, 3 replicas) from the installed binaries, on free loopback ports.

Usage::

    with RedisClusterServers() as cluster:
        url = cluster.url                # redis+cluster://127.0.0.1:p1,127.0.0.1:p2,.../
        cluster.kill(cluster.primary_ports()[0])   # SIGKILL one node (by pid)

Nodes start in parallel, each in its own temporary directory, without
persistence; ``redis-cli --cluster create`` joins them, and `start()` returns
once every node reports ``cluster_state:ok``. `close()` stops every process by
pid. A missing ``redis-server``/``redis-cli`` skips the test, except in CI
(``CI=true``), where it fails it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import pytest

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
NODE_TIMEOUT_MS = 2000


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; in CI the Redis Cluster tests must run")
        pytest.skip(message)
    return path


def _free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports whose cluster bus port (+10000) is free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((HOST, 0))
            port = int(probe.getsockname()[1])
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bus:
            try:
                bus.bind((HOST, port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def _ask(port: int, *command: str) -> str:
    """One command over a raw socket (RESP), the reply as text; '' when the node does not answer."""
    payload = f"*{len(command)}\r\n" + "".join(f"${len(part.encode())}\r\n{part}\r\n" for part in command)
    try:
        with socket.create_connection((HOST, port), timeout=1) as conn:
            conn.sendall(payload.encode())
            reply = b""
            while not _complete(reply):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                reply += chunk
            return reply.decode(errors="replace")
    except OSError:
        return ""


def _nodes(port: int) -> list[list[str]]:
    """``CLUSTER NODES`` as seen by the node on `port`, one list of fields per node."""
    lines = _ask(port, "CLUSTER", "NODES").splitlines()[1:]
    return [fields for fields in (line.split() for line in lines) if len(fields) >= 8]


def _complete(reply: bytes) -> bool:
    """Whether `reply` holds a whole simple, error or bulk-string reply."""
    header, found, rest = reply.partition(b"\r\n")
    if not found:
        return False
    if not header.startswith(b"$"):
        return True
    return len(rest) >= int(header[1:]) + 2


class RedisClusterServers:
    """Six redis-server processes in cluster mode; the node timeout is `node_timeout_ms`."""

    def __init__(self, *, node_timeout_ms: int = NODE_TIMEOUT_MS) -> None:
        self.server = _binary("redis-server")
        self.cli = _binary("redis-cli")
        self.node_timeout_ms = node_timeout_ms
        self.ports = _free_ports(6)
        self._tmp = tempfile.TemporaryDirectory(prefix="cachetier-cluster-")
        self.dir = Path(self._tmp.name)
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """``redis+cluster://`` URL naming every node (any one would do)."""
        return "redis+cluster://" + ",".join(f"{HOST}:{port}" for port in self.ports) + "/"

    def _start_node(self, port: int) -> subprocess.Popen[bytes]:
        node_dir = self.dir / str(port)
        node_dir.mkdir(exist_ok=True)
        command = [
            self.server, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", str(node_dir), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms), "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        log = (node_dir / "redis.log").open("ab")
        try:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=node_dir)
        finally:
            log.close()

    def start(self) -> RedisClusterServers:
        """Start the six nodes (in parallel), create the cluster, wait until every node says it is ok."""
        for port in self.ports:
            self.processes[port] = self._start_node(port)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            for port in self.ports:
                while not _ask(port, "PING").startswith("+PONG"):
                    self._check(port, deadline)
                    time.sleep(0.02)
            addresses = [f"{HOST}:{port}" for port in self.ports]
            subprocess.run(
                [self.cli, "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"],
                check=True, capture_output=True, timeout=START_TIMEOUT,
            )  # fmt: skip
            for port in self.ports:
                while not self._settled(port):
                    self._check(port, deadline)
                    time.sleep(0.05)
        except BaseException:
            self.close()
            raise
        return self

    def _check(self, port: int, deadline: float) -> None:
        process = self.processes[port]
        if process.poll() is not None or time.monotonic() > deadline:
            tail = (self.dir / str(port) / "redis.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"cluster node on port {port} did not come up:\n{tail}")

    def _settled(self, port: int) -> bool:
        """The node says the cluster is ok, sees 3 replicas, and (if a replica) has synced with its primary."""
        if "cluster_state:ok" not in _ask(port, "CLUSTER", "INFO"):
            return False
        if sum("slave" in fields[2] for fields in _nodes(port)) != 3:
            return False
        replication = _ask(port, "INFO", "replication")
        return "role:master" in replication or "master_link_status:up" in replication

    def primary_ports(self) -> list[int]:
        """Ports of the live primaries that serve slots now (as the first live node sees it)."""
        for port in self.processes:
            nodes = _nodes(port)
            if nodes:
                return [
                    int(fields[1].split("@")[0].rsplit(":", 1)[1])
                    for fields in nodes
                    if "master" in fields[2] and "fail" not in fields[2] and len(fields) > 8
                ]
        return []

    def kill(self, port: int) -> None:
        """SIGKILL the node on `port` (by pid): a crash, as a failover test needs."""
        process = self.processes.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=5)

    def close(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL) and remove the directory."""
        processes, self.processes = self.processes, {}
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        with contextlib.suppress(OSError):
            self._tmp.cleanup()

    def __enter__(self) -> RedisClusterServers:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
