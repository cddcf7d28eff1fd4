"""What the differential tests of the primitives share.

Each ``test_differential_*`` module has its own actions, tasks and
controller; they share what this module holds: the hypothesis settings and
the asyncio libraries of the in-process tests, the :class:`Run` action, the
:class:`Trace`, the ways of weighing the actions (:func:`weighted`), of
letting the tasks run (:func:`let_tasks_run`), of choosing the task an action
concerns (:func:`pick_cyclic`, :func:`pick_to_cancel`), of telling tasks by
name (:class:`Names`), and of running a program and comparing traces
(:func:`run_program`, :func:`assert_same_trace`), and the asyncio oracle:
the locks of Python 3.13, on every Python (:func:`asyncio_locks_313`, the
``locks`` fixture), and the ``acquire_nowait()`` they lack
(:func:`acquire_nowait_asyncio`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import os
import random
import re
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar

import pytest
from hypothesis import note, settings
from hypothesis import strategies as st

from libs import LIBS, EagerAsyncioLib, Lib
from upstream.suites import pyenv_root

# Derandomized, so that every run (CI included) tries the same programs.
SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None)

# Loop iterations of a full "let everything run": far more than any program
# of these tests needs to come to a standstill (about two per hand-off of a
# semaphore's permit).
SETTLE_ITERATIONS = 50

# asyncio, uvloop and anyio on asyncio, and from Python 3.12 asyncio with eager
# tasks, which reach the primitive inside create_task(), the oracle's as well.
# (The tests of trio's semantics take trio and anyio on trio by the family
# marker: see conftest.)
ASYNCIO_LIBS = [lib for lib in LIBS if lib.family == "asyncio"]
if sys.version_info >= (3, 12):
    ASYNCIO_LIBS.append(EagerAsyncioLib())


@dataclass(frozen=True)
class Run:
    """Let the other tasks run: ``iterations`` loop iterations under asyncio,
    or (None) until everything has settled.  Under trio, always the latter."""

    iterations: int | None


class Trace:
    """What happened during one run, in order.

    Controller entries (an action, its outcome and the state right after it)
    are strings; the events of the tasks between two controller entries are
    kept in a list, in the order they happened.  Unless *ordered*, as under
    trio, where the tasks of a batch run in random order, :meth:`result`
    sorts each such list.
    """

    def __init__(self, ordered: bool = True) -> None:
        self.ordered = ordered
        self.entries: list[str | list[str]] = []

    def step(self, text: str) -> None:
        self.entries.append(text)

    def event(self, text: str) -> None:
        if not self.entries or isinstance(self.entries[-1], str):
            self.entries.append([])
        group = self.entries[-1]
        assert isinstance(group, list)
        group.append(text)

    def result(self) -> list[str | list[str]]:
        if self.ordered:
            return self.entries
        return [entry if isinstance(entry, str) else sorted(entry) for entry in self.entries]


class _InSpawnOrder(random.Random):
    """What trio draws a batch's order from, drawing none: each batch runs in
    the order its tasks were spawned (woken, without hypothesis's plugin)."""

    # trio runs a batch from its end, after sorting it by spawn order and
    # shuffling it (with hypothesis's plugin), or reversing it half the time.
    def shuffle(self, x: Any) -> None:
        x.reverse()

    def random(self) -> float:
        return 0.0


@contextlib.contextmanager
def trio_batch_order(program: Any, *, spawn_order: bool) -> Iterator[None]:
    """Have trio run each batch of woken tasks in an order drawn from
    *program*, the same in every run of it, or else in spawn order."""
    # Tasks woken together need not commute (one gives a borrower's token
    # back, which another was about to take), and trio runs a batch in a
    # random order, from a generator (its private ``_r``, which its hypothesis
    # plugin registers) that hypothesis seeds once per example, not per run:
    # the oracle's run and loopsync's drew different orders.
    import trio._core._run as trio_run

    generator = getattr(trio_run, "_r", None)
    if generator is None:  # another trio: the orders stay random
        yield
    elif spawn_order:
        trio_run._r = _InSpawnOrder()
        try:
            yield
        finally:
            trio_run._r = generator
    else:
        generator.seed(zlib.crc32(repr(program).encode()))
        yield


def run_program(
    lib: Lib,
    program: Any,
    start: Callable[[Trace], Any],
    *,
    ordered: bool | None = None,
    spawn_order: bool = False,
) -> list[str | list[str]]:
    """Run *program* under *lib* on the controller that ``start(trace)`` makes
    (inside the run), and return the trace, which ends with how each task
    finished; it is ordered under asyncio unless *ordered* says otherwise.
    Under trio, see :func:`trio_batch_order`."""
    trace = Trace(ordered=lib.family == "asyncio" if ordered is None else ordered)

    async def main() -> None:
        controller = start(trace)
        async with lib.task_group() as group:
            await controller.run(program, group)
        for worker in controller.workers:
            # (An asyncio task cancelled before it started never runs at all.)
            outcome = worker.handle.outcome if worker.phase != "spawned" else "never started"
            trace.step(f"{worker.name} finished: {worker.phase}, {outcome}")

    if lib.family == "trio":
        with trio_batch_order(program, spawn_order=spawn_order):
            lib.run(main)
    else:
        lib.run(main)
    return trace.result()


def assert_same_trace(expected: list[str | list[str]], actual: list[str | list[str]]) -> None:
    """Assert that loopsync's trace is the oracle's; hypothesis shows both
    for the program it reports."""
    note(f"oracle trace:   {expected}")
    note(f"loopsync trace: {actual}")
    assert actual == expected


T = TypeVar("T")


def weighted(*choices: tuple[int, st.SearchStrategy[T]]) -> st.SearchStrategy[T]:
    """Draw from the strategies of *choices*, ``(weight, strategy)`` pairs, in
    proportion to their weights; hypothesis shrinks towards the first."""
    # Not st.one_of() with a strategy repeated: it keeps one of each, and
    # st.builds() and st.integers() give the same object for the same arguments.
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


class Pickable(Protocol):
    """A controller's record of one task, as the pick functions read it."""

    phase: str  # "spawned", then the primitive's phases, then "done"
    cancelled: bool


W = TypeVar("W", bound=Pickable)


def pick_cyclic(candidates: Sequence[W], k: int) -> W | None:
    """The *k*-th of *candidates*, cyclically, or None if there are none."""
    return candidates[k % len(candidates)] if candidates else None


def pick_to_cancel(workers: Sequence[W], k: int, phase: str | None) -> W | None:
    """The task a ``Cancel(k, phase)`` action cancels: the *k*-th, cyclically,
    of those not done nor cancelled yet that are in *phase* (any if None)."""
    return pick_cyclic(
        [
            w
            for w in workers
            if w.phase != "done" and not w.cancelled and (phase is None or w.phase == phase)
        ],
        k,
    )


class Names:
    """Tells tasks by the names the test gave them, in what a primitive shows
    (a lock's owner, a limiter's borrowers, the task in an error message);
    a borrower that is a string shows as its repr."""

    def __init__(self) -> None:
        self.tasks: list[tuple[Any, str]] = []

    def add(self, task: Any, name: str) -> None:
        self.tasks.append((task, name))

    def of(self, who: object) -> str:
        if isinstance(who, str):
            return repr(who)
        for known, name in self.tasks:
            if known is who:
                return name
        return "None" if who is None else "an unknown task"

    def in_text(self, text: str) -> str:
        for task, name in self.tasks:
            text = text.replace(str(task), name)
        return text


async def let_tasks_run(lib: Lib, iterations: int | None) -> str:
    """Let the other tasks run as :class:`Run` says, and describe what was done."""
    if lib.family == "trio":
        await lib.settle()
        return "settle"
    for _ in range(SETTLE_ITERATIONS if iterations is None else iterations):
        await asyncio.sleep(0)
    return "settle" if iterations is None else f"run {iterations} iteration(s)"


# -- the asyncio oracle ---------------------------------------------------------


class OracleWouldBlock(Exception):
    """What :func:`acquire_nowait_asyncio` raises: asyncio has no WouldBlock."""


def acquire_nowait_asyncio(primitive: Any) -> None:
    """``acquire_nowait()`` of an asyncio lock or semaphore, which has none:
    its ``acquire()``, if that would not suspend; else raise
    :exc:`OracleWouldBlock`."""
    coro = primitive.acquire()
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()  # its waiter leaves the queue, as a cancelled one would
    raise OracleWouldBlock


ORACLE_VERSION = (3, 13)

# The name the oracle module is loaded under: inside the asyncio package, so
# that its relative imports (``from . import exceptions, mixins``) resolve to
# the running asyncio.
_ORACLE_MODULE = "asyncio._loopsync_oracle_locks"


def _find_locks_313() -> Path | None:
    """``asyncio/locks.py`` of the newest Python 3.13 that pyenv installed."""
    major, minor = ORACLE_VERSION
    versions = pyenv_root() / "versions"
    relative = Path(f"lib/python{major}.{minor}/asyncio/locks.py")
    found: dict[int, Path] = {}
    if versions.is_dir():
        for prefix in versions.iterdir():
            match = re.fullmatch(rf"{major}\.{minor}\.(\d+)", prefix.name)
            if match and (prefix / relative).is_file():
                found[int(match[1])] = prefix / relative
    return found[max(found)] if found else None


@functools.cache
def _load_locks_313() -> ModuleType | str:
    """The oracle module, or why it cannot be had."""
    if sys.version_info[:2] >= ORACLE_VERSION:
        return asyncio.locks
    path = _find_locks_313()
    if path is None:
        return (
            f"the oracle is asyncio's locks of Python {ORACLE_VERSION[0]}.{ORACLE_VERSION[1]}, "
            f"and none is installed under {pyenv_root() / 'versions'}"
        )
    spec = importlib.util.spec_from_file_location(_ORACLE_MODULE, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def asyncio_locks_313() -> ModuleType:
    """The ``asyncio.locks`` module of Python 3.13, the asyncio oracle.

    On Python 3.13 and later it is the running asyncio's own; on an older
    Python it is the file of an installed Python 3.13 (found through pyenv),
    run against the running asyncio.  If there is none, the calling test is
    skipped, or fails under ``CI=true``, as the upstream suites do.
    """
    module = _load_locks_313()
    if isinstance(module, str):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{module} (CI=true: every oracle must be there)", pytrace=False)
        pytest.skip(module)
    return module
