"""Measure the CPU time of httpcore's async HTTP/1.1 connection pool with
httpcore's own synchronization and with loopsync's.

Usage::

    python tests/clients/bench_httpcore.py [--tasks 100] [--requests 10]
        [--connections 10] [--network yielding|mock] [--repeat 1]

*tasks* tasks each send *requests* requests, one after the other, through
one ``AsyncConnectionPool(max_connections=connections)`` whose network is
httpcore's ``AsyncMockBackend``: nothing leaves the process.  ``mock`` reads
never yield, as in httpcore's own tests; ``yielding`` reads yield once to
the event loop first, as a socket waiting for its response would.

Three variants of httpcore run it, each in a process of its own (from the
sdist ``run_httpcore.py`` fetches), under asyncio and under trio:

- ``httpcore``: httpcore's own ``_synchronization`` (anyio's primitives
  under asyncio, trio's under trio);
- ``loopsync``: ``httpcore_synchronization.py`` with plain loopsync
  primitives (``ALWAYS_CHECKPOINT = False``: a free lock is taken without
  yielding under asyncio);
- ``loopsync+cp``: the same with ``ALWAYS_CHECKPOINT = True``, which the
  module ships with.

Prints the CPU time (``time.process_time()``) of each variant, measured
in its own process around ``asyncio.run()`` or ``trio.run()``, its ratio to
httpcore's (from the same round with ``--repeat``), and how many times per
request a request found the connection it had been assigned taken and
queued again: under asyncio a count that does not vary from run to run
(trio shuffles its run queue), and the same for two variants that schedule
the pool's tasks alike.

``mock`` makes a poor yardstick for the locks: with nothing else yielding,
locks that never yield when free let each task send all its requests before
the next task starts, so no request ever waits.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = {
    # name: (replaced, ALWAYS_CHECKPOINT)
    "httpcore": (False, None),
    "loopsync": (True, False),
    "loopsync+cp": (True, True),
}
BACKENDS = ("asyncio", "trio")

BODY = b"Hello, world!"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n" + BODY
URL = "http://example.com/"


# -- the measured process ---------------------------------------------------------


def measure(
    backend: str,
    variant: str,
    *,
    tasks: int,
    requests: int,
    connections: int,
    network: str,
) -> dict[str, Any]:
    """Run the workload once under *backend*; return its CPU time and counts.

    Runs in a process whose working directory is a copy of httpcore's sdist,
    so that ``import httpcore`` imports that copy.
    """
    import httpcore

    synchronization = importlib.import_module("httpcore._synchronization")
    replaced, always_checkpoint = VARIANTS[variant]
    if replaced != ("loopsync" in vars(synchronization)):
        raise RuntimeError(f"{variant}: httpcore imported {synchronization.__file__}")
    if always_checkpoint is not None:
        synchronization.ALWAYS_CHECKPOINT = always_checkpoint

    pool_module = importlib.import_module("httpcore._async.connection_pool")
    retries = 0
    clear_connection = pool_module.AsyncPoolRequest.clear_connection

    def counting_clear_connection(self: Any) -> None:
        nonlocal retries
        retries += 1
        clear_connection(self)

    pool_module.AsyncPoolRequest.clear_connection = counting_clear_connection

    if backend == "trio":
        import trio

        pause = trio.lowlevel.checkpoint
    else:
        import asyncio

        async def pause() -> None:
            await asyncio.sleep(0)

    class YieldingStream(httpcore.AsyncMockStream):
        async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
            await pause()
            return await super().read(max_bytes, timeout)

    class YieldingBackend(httpcore.AsyncMockBackend):
        async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
            return YieldingStream(list(self._buffer))

    total = tasks * requests
    network_backend_type = YieldingBackend if network == "yielding" else httpcore.AsyncMockBackend
    answered = 0

    async def client(pool: httpcore.AsyncConnectionPool) -> None:
        nonlocal answered
        for _ in range(requests):
            response = await pool.request("GET", URL)
            if response.status != 200 or response.content != BODY:
                raise AssertionError(f"unexpected response {response}")
            answered += 1

    async def main() -> None:
        # Each connection gets a copy: enough responses for every request.
        network_backend = network_backend_type([RESPONSE] * total)
        async with httpcore.AsyncConnectionPool(
            max_connections=connections, network_backend=network_backend
        ) as pool:
            if backend == "trio":
                async with trio.open_nursery() as nursery:
                    for _ in range(tasks):
                        nursery.start_soon(client, pool)
            else:
                await asyncio.gather(*(client(pool) for _ in range(tasks)))

    cpu, wall = time.process_time(), time.perf_counter()
    if backend == "trio":
        trio.run(main)
    else:
        asyncio.run(main())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if answered != total:
        raise AssertionError(f"{answered} of {total} requests answered")
    return {"cpu": cpu, "wall": wall, "retries": retries / total}


# -- the driver -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--requests", type=int, default=10, help="per task")
    parser.add_argument("--connections", type=int, default=10, help="max_connections")
    parser.add_argument("--network", choices=("yielding", "mock"), default="yielding")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each variant")
    parser.add_argument("--version", help="httpcore version (default: installed, or pinned)")
    parser.add_argument("--child", nargs=2, metavar=("BACKEND", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    workload = {
        "tasks": args.tasks,
        "requests": args.requests,
        "connections": args.connections,
        "network": args.network,
    }
    if args.child:
        # The copy of httpcore's sdist that is the working directory, first.
        sys.path.insert(0, os.getcwd())
        print(json.dumps(measure(*args.child, **workload)))
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run_httpcore import Unavailable, copy_tree, prepare, subprocess_env

    try:
        tree = prepare(args.version, tests=False)
    except Unavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"httpcore {tree.name.partition('-')[2]}, Python {sys.version.split()[0]}: "
        f"{args.tasks} tasks x {args.requests} requests, max_connections={args.connections}, "
        f"{args.network} network",
        flush=True,
    )
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="loopsync-httpcore-bench-") as tmp:
        copies = {
            replaced: copy_tree(tree, Path(tmp) / str(replaced), replaced=replaced)
            for replaced in (False, True)
        }
        command = [sys.executable, str(Path(__file__).resolve())]
        for name, value in workload.items():
            command += [f"--{name}", str(value)]
        for _ in range(args.repeat):
            for backend in BACKENDS:
                for variant, (replaced, _always) in VARIANTS.items():
                    done = subprocess.run(
                        [*command, "--child", backend, variant],
                        cwd=copies[replaced],
                        env=subprocess_env(),
                        stdin=subprocess.DEVNULL,
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    if done.returncode:
                        print(f"{backend} {variant} failed:\n{done.stderr}", file=sys.stderr)
                        return 1
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                    results.setdefault((backend, variant), []).append(result)

    print(f"{'backend':<9}{'variant':<13}{'CPU s':>8}{'ratio':>8}{'wall s':>8}{'requeued':>10}")
    for backend in BACKENDS:
        base = [result["cpu"] for result in results[backend, "httpcore"]]
        for variant in VARIANTS:
            for index, result in enumerate(results[backend, variant]):
                ratio = result["cpu"] / base[index]
                print(
                    f"{backend:<9}{variant:<13}{result['cpu']:>8.3f}{ratio:>8.2f}"
                    f"{result['wall']:>8.3f}{result['retries']:>10.2f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
