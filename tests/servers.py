"""Throwaway redis-server processes (and PostgreSQL clusters, `PostgresServer`) for fault, auth, TLS and Sentinel tests.

Usage::

    with RedisServer("--requirepass", "secret") as server:
        url = server.url            # redis://127.0.0.1:<free port>/0
        server.stop()               # the port now refuses connections
        server.restart()            # same port, empty data
        server.pause(); server.resume()  # SIGSTOP / SIGCONT: a hung server

Each server runs the installed ``redis-server`` in its own temporary directory,
on a free loopback port, without persistence. `start()` returns once the
server answers PING (NOAUTH counts as an answer). Import it as ``servers``
(pytest puts ``tests/`` on ``sys.path`` for ``tests/conftest.py``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import pytest

HOST = "127.0.0.1"
START_TIMEOUT = 10.0


def redis_server_binary() -> str:
    """Path of ``redis-server``; skips the calling test when it is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    return binary


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def make_tls_files(directory: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate for 127.0.0.1/localhost; return (cert, key). Skips without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class RedisServer:
    """One redis-server on a free loopback port; `start`/`stop`/`restart` keep the port.

    `args` are extra command-line options (``"--requirepass", "pw"``). With
    `tls=True` the port speaks TLS only, with a fresh self-signed certificate
    (`cert`, also the CA to trust). `sentinel_of` turns it into a Sentinel
    monitoring ``(port, service_name)`` on loopback.
    """

    def __init__(self, *args: str, tls: bool = False, sentinel_of: tuple[int, str] | None = None) -> None:
        self.binary = redis_server_binary()
        self.args = list(args)
        self.port = free_port()
        self.tls = tls
        self.sentinel_of = sentinel_of
        self._tmp = tempfile.TemporaryDirectory(prefix="cachetier-redis-")
        self.dir = Path(self._tmp.name)
        self.cert: Path | None = None
        self.key: Path | None = None
        if tls:
            self.cert, self.key = make_tls_files(self.dir)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def password(self) -> str | None:
        return self.args[self.args.index("--requirepass") + 1] if "--requirepass" in self.args else None

    @property
    def url(self) -> str:
        """``redis://`` (or ``rediss://``) URL of database 0, without credentials."""
        return f"{'rediss' if self.tls else 'redis'}://{HOST}:{self.port}/0"

    def _command(self) -> list[str]:
        if self.sentinel_of is not None:
            master_port, service = self.sentinel_of
            config = self.dir / "sentinel.conf"  # Sentinel rewrites its config file, so it must be its own
            config.write_text(f"port {self.port}\nbind {HOST}\nsentinel monitor {service} {HOST} {master_port} 1\n")
            return [self.binary, str(config), "--sentinel", "--dir", str(self.dir), *self.args]
        command = [self.binary, "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        if self.tls:
            assert self.cert is not None
            assert self.key is not None
            command += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.cert),
                        "--tls-key-file", str(self.key), "--tls-ca-cert-file", str(self.cert),
                        "--tls-auth-clients", "no"]  # fmt: skip
        else:
            command += ["--port", str(self.port)]
        return [*command, *self.args]

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING; raises RuntimeError if it does not."""
        if self.process is not None:
            return self
        log = (self.dir / "redis.log").open("ab")
        self.process = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers_ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server on port {self.port} did not start:\n{tail}")
            time.sleep(0.02)
        return self

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as raw:
                if not self.tls:
                    return self._ping(raw)
                context = ssl.create_default_context(cafile=str(self.cert))
                with context.wrap_socket(raw, server_hostname=HOST) as wrapped:
                    return self._ping(wrapped)
        except OSError:
            return False

    @staticmethod
    def _ping(conn: socket.socket) -> bool:
        conn.sendall(b"*1\r\n$4\r\nPING\r\n")
        reply = conn.recv(64)
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); a no-op when it is not running."""
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): connections open but nothing answers, as with a hung server."""
        assert self.process is not None, "server is not running"
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo `pause` (SIGCONT)."""
        assert self.process is not None, "server is not running"
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> RedisServer:
        """Stop, then start again on the same port (with empty data)."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        with contextlib.suppress(OSError):
            self._tmp.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def postgres_bin_dir() -> Path:
    """Directory of ``initdb`` and ``pg_ctl`` (Debian keeps them off PATH); skips the test when missing."""
    found = shutil.which("initdb") or shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if not candidates:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    return candidates[-1].parent


class PostgresServer:
    """A throwaway PostgreSQL cluster on a free loopback port, run as the ``postgres`` user when we are root.

    `start` runs initdb once (trust auth, no fsync), then ``pg_ctl start -w``; `stop(mode)` is
    ``pg_ctl stop -m fast|immediate`` (immediate is a crash: UNLOGGED tables come back empty);
    `close` stops it and removes its directory. `url` is a DSN for database ``postgres``.
    """

    def __init__(self) -> None:
        self.bin = postgres_bin_dir()
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="cachetier-pg-")
        self.dir = Path(self._tmp.name)
        self.data = self.dir / "data"
        self._initialized = False
        self.running = False
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=60, cwd=self.dir)

    def start(self) -> PostgresServer:
        if not self._initialized:
            self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
            self._initialized = True
        options = f"-p {self.port} -c listen_addresses={HOST} -c unix_socket_directories={self.dir} -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
        )
        self.running = True
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
            self.running = False

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.stop("immediate")
        with contextlib.suppress(OSError):
            self._tmp.cleanup()

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
