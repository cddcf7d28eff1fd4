"""Instructions per operation, loopsync's primitives against the library's own.

Usage::

    python bench/instructions.py                  # Python running this script
    python bench/instructions.py --python .venv-3.13/bin/python
    python bench/instructions.py --smoke          # a few seconds, no valgrind

Wall times on a shared machine move by tens of percent from one run to the
next; the instructions an interpreter executes do not.  Each case runs in a
new interpreter under valgrind's callgrind twice, once doing a warm-up and
then N operations and once doing the warm-up alone, and the difference
divided by N is what one operation costs, the task switches it causes
included.  Each library runs alone in its interpreter, as in a real program:
an asyncio case never imports trio.

``--smoke`` runs every case once in this process, without valgrind, and
checks its result only.  Exits with status 1 if a case failed.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parent.parent / "src"
LIBRARIES = ("asyncio", "trio")
IMPLEMENTATIONS = ("loopsync", "native")
WAITERS = 100  # tasks woken at once by Event.set() and Condition.notify_all()
CONTENDERS = 10  # tasks taking turns with a lock
PARTIES = 10  # tasks passing a barrier
# What the primitives are made with; trio's Semaphore has no default value.
ARGUMENTS = {"Semaphore": (1,), "Barrier": (PARTIES,)}
LACKING = 3  # a child's exit status when the library lacks the primitive
WARM_UP = 2 * WAITERS  # operations before those measured


class Library:
    """What a workload needs of the library that runs it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.checkpoint: Callable[[], Awaitable[None]]
        self.settle: Callable[[], Awaitable[None]]  # returns once every other task waits
        if name == "trio":
            import trio
            import trio.testing

            self.module: Any = trio
            self.checkpoint = trio.lowlevel.checkpoint
            self.settle = trio.testing.wait_all_tasks_blocked
        else:
            import asyncio

            self.module = asyncio
            self.checkpoint = self.settle = self._sleep_zero

    @staticmethod
    async def _sleep_zero() -> None:
        import asyncio

        await asyncio.sleep(0)

    def lacks(self, primitive: str) -> bool:
        """Return True if the library has no *primitive* (asyncio.Barrier
        came with Python 3.11)."""
        return not hasattr(self.module, primitive)

    def make(self, primitive: str, implementation: str) -> Any:
        if implementation == "loopsync":
            import loopsync

            module: Any = loopsync
        else:
            module = self.module
        return getattr(module, primitive)(*ARGUMENTS.get(primitive, ()))

    async def run_tasks(
        self, count: int, task: Callable[[], Awaitable[None]], then: Callable[[], Awaitable[None]]
    ) -> None:
        """Start *count* copies of *task*, then run *then*; return once all
        are done."""
        if self.name == "trio":
            async with self.module.open_nursery() as nursery:
                for _ in range(count):
                    nursery.start_soon(task)
                await then()
        else:
            tasks = [self.module.create_task(task()) for _ in range(count)]
            await then()
            await self.module.gather(*tasks)

    def run(self, main: Callable[[], Any]) -> None:
        if self.name == "trio":
            self.module.run(main)
        else:
            self.module.run(main())


async def uncontended(library: Library, make: Callable[[], Any], operations: int) -> int:
    primitive = make()
    done = 0
    for _ in range(operations):
        async with primitive:
            done += 1
    return done


async def contended(library: Library, make: Callable[[], Any], operations: int) -> int:
    lock = make()
    done = 0

    async def take_turns() -> None:
        nonlocal done
        for _ in range(operations // CONTENDERS):
            async with lock:
                done += 1
                await library.checkpoint()

    await library.run_tasks(CONTENDERS, take_turns, library.checkpoint)
    return done


async def wake_all(library: Library, make: Callable[[], Any], operations: int) -> int:
    woken = 0
    for _ in range(operations // WAITERS):
        woken += await _wake_waiters(library, make())
    return woken


async def _wake_waiters(library: Library, primitive: Any) -> int:
    """Make WAITERS tasks wait on *primitive*, an event or a condition, and
    wake them all at once; return how many woke."""
    is_event = hasattr(primitive, "set")
    woken = 0

    async def wait() -> None:
        nonlocal woken
        if is_event:
            await primitive.wait()
        else:
            async with primitive:
                await primitive.wait()
        woken += 1

    async def wake() -> None:
        await library.settle()
        if is_event:
            primitive.set()
        else:
            async with primitive:
                primitive.notify_all()

    await library.run_tasks(WAITERS, wait, wake)
    return woken


async def ping_pong(library: Library, make: Callable[[], Any], operations: int) -> int:
    """Pass *operations* items from a producer to a consumer through a
    one-item slot, each waiting on one condition for the other."""
    cond = make()
    slot: list[int] = []
    received = 0

    async def produce() -> None:
        for item in range(operations):
            async with cond:
                while slot:
                    await cond.wait()
                slot.append(item)
                cond.notify()

    async def consume() -> None:
        nonlocal received
        for _ in range(operations):
            async with cond:
                while not slot:
                    await cond.wait()
                slot.pop()
                received += 1
                cond.notify()

    await library.run_tasks(1, consume, produce)
    return received


async def barrier_rounds(library: Library, make: Callable[[], Any], operations: int) -> int:
    barrier = make()
    passed = 0

    async def pass_each_round() -> None:
        nonlocal passed
        for _ in range(operations):
            await barrier.wait()
            passed += 1

    await library.run_tasks(PARTIES, pass_each_round, library.checkpoint)
    return passed // PARTIES


Workload = Callable[[Library, Callable[[], Any], int], Awaitable[int]]


@dataclass(frozen=True)
class Case:
    """One workload: what it does, the primitive it makes, how many
    operations a measured run does, and under which libraries."""

    name: str
    primitive: str
    workload: Workload
    operations: int
    libraries: tuple[str, ...] = LIBRARIES


CASES = (
    Case("uncontended `async with`", "Semaphore", uncontended, 20_000),
    Case("uncontended `async with`", "Lock", uncontended, 20_000),
    Case(f"contended `async with`, {CONTENDERS} tasks, per acquisition", "Lock", contended, 10_000),
    Case(f"`set()` waking {WAITERS} waiters, per waiter", "Event", wake_all, 2_000),
    Case(f"`notify_all()` waking {WAITERS} waiters, per waiter", "Condition", wake_all, 2_000),
    Case("producer/consumer ping-pong, per item", "Condition", ping_pong, 10_000),
    # trio has no barrier.
    Case(
        f"`wait()` by {PARTIES} parties, per round", "Barrier", barrier_rounds, 2_000, ("asyncio",)
    ),
)


def run_case(library_name: str, case: Case, implementation: str, operations: int) -> None:
    """Do WARM_UP operations of *case*, then *operations*, and check that
    each one happened."""
    library = Library(library_name)
    done = []

    async def main() -> None:
        make = lambda: library.make(case.primitive, implementation)  # noqa: E731
        # Imports, first calls and the interpreter's specializing happen in
        # the warm-up, which the run doing no operation does too.
        for count in (WARM_UP, operations):
            done.append(await case.workload(library, make, count))

    library.run(main)
    if done != [WARM_UP, operations]:
        raise AssertionError(f"{case.primitive} {case.name} under {library_name}: {done} done")


def count_instructions(python: str, *args: str) -> int | None:
    """Return the instructions that *python* running this script with *args*
    executes, by callgrind; None if the library lacks the primitive."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         python, __file__, "--child", *args],
        capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # the same hashes, so the same counts
    )  # fmt: skip
    if done.returncode == LACKING:
        return None
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or not found:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_operation(python: str, library: str, index: int, implementation: str) -> float | None:
    case = CASES[index]
    measured, idle = (
        count_instructions(python, library, str(index), implementation, str(operations))
        for operations in (case.operations, 0)
    )
    if measured is None or idle is None:
        return None
    return (measured - idle) / case.operations


def describe(python: str) -> str:
    code = (
        "import platform, importlib.metadata as m;"
        "print(platform.python_implementation(), platform.python_version(),"
        " 'trio', m.version('trio'))"
    )
    return subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def measure(python: str) -> None:
    jobs = [
        (library, index, implementation)
        for library in LIBRARIES
        for index, case in enumerate(CASES)
        if library in case.libraries
        for implementation in IMPLEMENTATIONS
    ]
    # Counting instructions is not disturbed by other processes: use every core.
    with ThreadPoolExecutor() as pool:
        measured = pool.map(lambda job: per_operation(python, *job), jobs)
        counts = dict(zip(jobs, measured, strict=True))
    print(f"Instructions per operation (callgrind), {describe(python)}, {platform.machine()}")
    labels = [f"{case.primitive}, {case.name}" for case in CASES]
    width = max(map(len, labels)) + 2
    print(f"{'workload':<{width}}{'library':<9}{'loopsync':>10}{'native':>10}{'ratio':>7}")
    for library in LIBRARIES:
        for index, label in enumerate(labels):
            if library not in CASES[index].libraries:
                continue
            ours, theirs = (counts[library, index, kind] for kind in IMPLEMENTATIONS)
            if ours is None or theirs is None:
                print(f"{label:<{width}}{library:<9}{'—':>10}{'—':>10}{'—':>7}")
                continue
            print(f"{label:<{width}}{library:<9}{ours:>10.0f}{theirs:>10.0f}{ours / theirs:>7.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="check every case once, no valgrind")
    mode.add_argument("--child", nargs=4, metavar=("LIBRARY", "CASE", "IMPLEMENTATION", "N"),
                      help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--python", default=sys.executable, help="the interpreter to measure")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(SRC))
    if args.child:
        library, index, implementation, operations = args.child
        case = CASES[int(index)]
        if Library(library).lacks(case.primitive):
            return LACKING
        run_case(library, case, implementation, int(operations))
        return 0
    if args.smoke:
        runs = 0
        for case in CASES:
            for library in case.libraries:
                if Library(library).lacks(case.primitive):
                    continue
                for implementation in IMPLEMENTATIONS:
                    run_case(library, case, implementation, WARM_UP)
                    runs += 1
        print(f"instructions: {runs} runs checked")
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    measure(args.python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
