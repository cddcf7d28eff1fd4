"""The library-specific part of the examples, in one place.

The example code itself is written once, against :class:`Runtime`: the two
things it needs from an async library, a way to sleep and a way to run a
batch of tasks concurrently and wait for all of them.  Everything else,
including the loopsync primitives, is the same under every library.

:func:`run` starts an event loop of the chosen library and hands the example
a :class:`Runtime` for it.  uvloop and trio are imported only when used, so a
missing one is skipped instead of breaking the others (see :func:`available`).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["LIBRARIES", "Job", "Runtime", "available", "parse_libraries", "run"]

LIBRARIES = ("asyncio", "uvloop", "trio")

T = TypeVar("T")
Job = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Runtime:
    """What the examples need from an async library."""

    sleep: Callable[[float], Awaitable[None]]
    """Suspend the current task for the given number of seconds."""
    run_all: Callable[[Iterable[Job]], Awaitable[None]]
    """Start every job as a concurrent task and return when all have finished."""


def available(library: str) -> bool:
    """Return True if *library* can be imported."""
    try:
        importlib.import_module(library)
    except ImportError:
        return False
    return True


def run(library: str, main: Callable[[Runtime], Coroutine[Any, Any, T]]) -> T:
    """Run ``main(runtime)`` in a new event loop of *library* and return its result."""
    if library == "trio":
        import trio

        async def trio_run_all(jobs: Iterable[Job]) -> None:
            async with trio.open_nursery() as nursery:
                for job in jobs:
                    nursery.start_soon(job)

        return trio.run(main, Runtime(trio.sleep, trio_run_all))

    import asyncio

    async def asyncio_run_all(jobs: Iterable[Job]) -> None:
        await asyncio.gather(*(job() for job in jobs))

    coro = main(Runtime(asyncio.sleep, asyncio_run_all))
    if library == "uvloop":
        import uvloop

        return uvloop.run(coro)
    if library == "asyncio":
        return asyncio.run(coro)
    coro.close()
    raise ValueError(f"unknown library {library!r}; expected one of {', '.join(LIBRARIES)}")


def parse_libraries(argv: list[str], supported: tuple[str, ...] = LIBRARIES) -> list[str]:
    """Parse the command line ``[LIBRARY|all]`` of an example; exit on bad usage."""
    parser = argparse.ArgumentParser()
    parser.add_argument("library", nargs="?", choices=[*supported, "all"], default="all")
    choice: str = parser.parse_args(argv).library
    return list(supported) if choice == "all" else [choice]
