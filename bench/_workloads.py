"""The workloads: one run of one implementation in one context, checked.

Every workload is a coroutine function ``(ctx, impl, param, give_up_after)``
that runs inside a fresh event loop and returns an :class:`Outcome`: the
measured number and the list of checks it failed.  A run checks its own
result (permits back to their initial value, FIFO order where promised, every
task finished, unique barrier indices), so a broken implementation shows up
as a failure instead of as a fast time.
"""

from __future__ import annotations

import faulthandler
import gc
import math
import os
import re
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from _contexts import Context, TaskGroup
from _impls import BarrierImpl, SemaphoreImpl

__all__ = [
    "STORM_KINDS",
    "BarrierParam",
    "ContendedParam",
    "Outcome",
    "barrier_rounds",
    "contended",
    "import_time",
    "memory_per_waiter",
    "run_in_context",
    "storm",
    "uncontended",
]

perf_counter = time.perf_counter


@dataclass
class Outcome:
    """What one run measured, and every check it failed."""

    value: float
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True if every check passed."""
        return not self.errors


def _check_fifo(arrivals: list[int], acquired: list[int], skip: set[int] | None = None) -> str:
    """Return an error if *acquired* is not *arrivals* (less *skip*) in order, else ''."""
    expected = [i for i in arrivals if not skip or i not in skip]
    if acquired == expected:
        return ""
    if sorted(acquired) != sorted(expected):
        return (
            f"wrong tasks acquired: {len(acquired)} acquired, {len(expected)} expected "
            f"({len(set(acquired) ^ set(expected))} differ)"
        )
    first = next(n for n, (a, b) in enumerate(zip(acquired, expected, strict=True)) if a != b)
    wrong = sum(a != b for a, b in zip(acquired, expected, strict=True))
    return (
        f"FIFO violated: {wrong} of {len(expected)} waiters acquired out of arrival order "
        f"(first at position {first}: task {acquired[first]} before task {expected[first]})"
    )


def _check_final(impl: SemaphoreImpl, sem: Any, value: int, errors: list[str]) -> None:
    """Check that *sem* is back to *value* permits with nobody waiting."""
    if impl.value(sem) != value:
        errors.append(f"permits not restored: value {impl.value(sem)}, expected {value}")
    if impl.waiting(sem):
        errors.append(f"{impl.waiting(sem)} task(s) still counted as waiting")


async def _finish(group: TaskGroup, count: int, give_up_after: float, errors: list[str]) -> bool:
    """Wait for *count* finished tasks; record a failed check if they do not finish."""
    if await group.wait_finished(count, give_up_after):
        return True
    errors.append(f"gave up after {give_up_after:g} s: {group.finished} of {count} tasks finished")
    return False


def _has_at_least(items: list[int], count: int) -> Callable[[], bool]:
    """Return a predicate: does *items* hold at least *count* entries yet?"""
    return lambda: len(items) >= count


async def _drain(
    group: TaskGroup, release: Callable[[], object], acquired: list[int], count: int
) -> bool:
    """Release *count* permits one at a time, each once the last one was taken.

    Untimed clean-up: it keeps each wake-up at the head of the queue (so that a
    peer that scans its queue on release stays linear) and lets every task
    record its acquisition before the next one is woken, so the order seen is
    the order of the hand-offs.  False if a permit was not taken.
    """
    target = len(acquired)
    for _ in range(count):
        release()
        target += 1
        if not await group.run_until(_has_at_least(acquired, target)):
            return False
    return True


async def uncontended(
    ctx: Context, impl: SemaphoreImpl, pairs: int, give_up_after: float
) -> Outcome:
    """Nanoseconds per ``async with sem: pass`` on a free Semaphore(1), one task."""
    sem = impl.make(1)
    start = perf_counter()
    for _ in range(pairs):
        async with sem:
            pass
    elapsed = perf_counter() - start
    errors: list[str] = []
    _check_final(impl, sem, 1, errors)
    return Outcome(elapsed / pairs * 1e9, errors)


@dataclass(frozen=True)
class ContendedParam:
    """A contended hand-off run: *tasks* tasks, *ops* acquisitions each."""

    permits: int
    tasks: int
    ops: int


async def contended(
    ctx: Context, impl: SemaphoreImpl, param: ContendedParam, give_up_after: float
) -> Outcome:
    """Acquisitions per second by tasks that each hold the permit across a yield."""
    sem = impl.make(param.permits)
    done = [0] * param.tasks
    inside = 0
    most_inside = 0
    checkpoint = ctx.checkpoint

    async def worker(i: int) -> None:
        """Acquire and release *param.ops* times, yielding while holding the permit."""
        nonlocal inside, most_inside
        for _ in range(param.ops):
            async with sem:
                inside += 1
                most_inside = max(most_inside, inside)
                await checkpoint()
                inside -= 1
            done[i] += 1

    errors: list[str] = []
    async with ctx.task_group(give_up_after) as group:
        for i in range(param.tasks):
            group.spawn(worker, i)
        start = perf_counter()  # the tasks start when this one waits
        await _finish(group, param.tasks, give_up_after, errors)
        elapsed = perf_counter() - start
    errors += group.errors
    total = sum(done)
    if total != param.tasks * param.ops:
        errors.append(f"{total} acquisitions made, {param.tasks * param.ops} expected")
    if most_inside > param.permits:
        errors.append(f"{most_inside} tasks held a permit at once, limit {param.permits}")
    elif most_inside < min(param.permits, param.tasks):
        errors.append(f"at most {most_inside} tasks held a permit at once, of {param.permits}")
    _check_final(impl, sem, param.permits, errors)
    return Outcome(total / elapsed if elapsed > 0 else math.nan, errors)


_FIRST, _LAST = -1, -2
"""Marks of the sentinel tasks of a release storm."""

STORM_KINDS: tuple[str, ...] = ("cancel-in-order", "cancel-reverse", "cancel-middle", "release")
"""Cancel every waiter in arrival order, in reverse order, the middle half of
them; or release one permit per waiter."""


def _storm_targets(kind: str, arrivals: list[int]) -> list[int]:
    """Return the tasks to cancel, in the order in which they are cancelled."""
    if kind == "cancel-in-order":
        return list(arrivals)
    if kind == "cancel-reverse":
        return arrivals[::-1]
    if kind == "cancel-middle":
        quarter = len(arrivals) // 4
        return arrivals[quarter : len(arrivals) - quarter]
    raise ValueError(kind)


async def storm(
    ctx: Context, impl: SemaphoreImpl, kind_and_waiters: tuple[str, int], give_up_after: float
) -> Outcome:
    """Seconds from the first cancel (or release) until every affected task has finished.

    W tasks block on a Semaphore(0); then either some of them are cancelled
    (see :data:`STORM_KINDS`) or W permits are released.  The tasks left
    waiting after a cancellation storm are released afterwards, untimed, to
    check that they still get their permits in arrival order.

    The tasks record themselves when they resume.  asyncio resumes woken tasks
    in the order they were woken, but trio runs each batch of runnable tasks in
    that order or, at random, in reverse.  So the release storm brackets its
    releases with two events, each waking a sentinel task: the sentinels run
    in the same batch as the waiters and show which way it ran.
    """
    kind, waiters = kind_and_waiters
    sem = impl.make(0)
    acquire = impl.acquire(sem)
    release = sem.release
    arrivals: list[int] = []
    acquired: list[int] = []
    cancelled: list[int] = []
    cancelled_error = ctx.cancelled

    async def waiter(i: int) -> None:
        """Record arrival, block on the semaphore, record the outcome."""
        arrivals.append(i)
        try:
            await acquire()
        except cancelled_error:
            cancelled.append(i)
            raise
        acquired.append(i)

    errors: list[str] = []
    elapsed = math.nan

    async def sentinel(event: Any, mark: int) -> None:
        """Record *mark* once *event* is set."""
        await event.wait()
        acquired.append(mark)

    async with ctx.task_group(give_up_after) as group:
        for i in range(waiters):
            group.spawn(waiter, i)
        if kind == "release":
            first, last = ctx.new_event(), ctx.new_event()
            group.spawn(sentinel, first, _FIRST)
            group.spawn(sentinel, last, _LAST)
        if not await group.run_until(lambda: impl.waiting(sem) >= waiters):
            errors.append(f"only {impl.waiting(sem)} of {waiters} tasks blocked")
            return Outcome(math.nan, errors + group.errors)
        if kind == "release":
            targets: list[int] = []
            start = perf_counter()
            first.set()
            for _ in range(waiters):
                release()
            last.set()
            if await _finish(group, waiters + 2, give_up_after, errors):
                elapsed = perf_counter() - start
            if acquired[-1:] == [_FIRST]:
                acquired.reverse()  # trio ran the batch backwards
            if acquired[:1] != [_FIRST] or acquired[-1:] != [_LAST]:
                errors.append("the waiters did not resume as one batch between the sentinels")
            acquired[:] = [i for i in acquired if i >= 0]
        else:
            targets = _storm_targets(kind, arrivals)
            cancel = group.cancel
            start = perf_counter()
            for i in targets:
                cancel(i)
            if await _finish(group, len(targets), give_up_after, errors):
                elapsed = perf_counter() - start
            if sorted(cancelled) != sorted(targets):
                errors.append(
                    f"{len(cancelled)} tasks ended cancelled, {len(targets)} were cancelled"
                )
            if acquired:
                errors.append(f"{len(acquired)} task(s) acquired with no permit released")
            left = waiters - len(targets)
            if impl.waiting(sem) != left:
                errors.append(f"{impl.waiting(sem)} tasks counted as waiting, {left} are")
            # Untimed: the survivors must still be served, in arrival order.
            if not await _drain(group, release, acquired, left):
                errors.append(f"{len(acquired)} of {left} remaining tasks acquired")
            await _finish(group, waiters, give_up_after, errors)
    errors += group.errors
    if impl.fifo:
        fifo_error = _check_fifo(arrivals, acquired, set(targets))
        if fifo_error:
            errors.append(fifo_error)
    _check_final(impl, sem, 0, errors)
    return Outcome(elapsed, errors)


@dataclass(frozen=True)
class BarrierParam:
    """A barrier run: *parties* tasks passing the barrier *rounds* times."""

    parties: int
    rounds: int


async def barrier_rounds(
    ctx: Context, impl: BarrierImpl, param: BarrierParam, give_up_after: float
) -> Outcome:
    """Seconds per round of *parties* tasks passing a barrier."""
    barrier = impl.make(param.parties)
    wait = impl.waiter(barrier)
    indices: list[list[int]] = [[] for _ in range(param.rounds)]

    async def party() -> None:
        """Pass the barrier once per round, recording the index received."""
        for round_indices in indices:
            round_indices.append(await wait())

    errors: list[str] = []
    elapsed = math.nan
    async with ctx.task_group(give_up_after) as group:
        for _ in range(param.parties):
            group.spawn(party)
        start = perf_counter()
        if await _finish(group, param.parties, give_up_after, errors):
            elapsed = perf_counter() - start
    errors += group.errors
    expected = list(range(param.parties))
    bad = [n for n, got in enumerate(indices) if sorted(got) != expected]
    if bad:
        errors.append(
            f"indices not unique in {len(bad)} of {param.rounds} rounds "
            f"(round {bad[0]}: {sorted(indices[bad[0]])[:10]}...)"
        )
    if impl.n_waiting(barrier):
        errors.append(f"{impl.n_waiting(barrier)} task(s) still counted as waiting")
    if impl.broken(barrier):
        errors.append("barrier is broken")
    return Outcome(elapsed / param.rounds, errors)


async def memory_per_waiter(
    ctx: Context, impl: SemaphoreImpl, waiters: int, give_up_after: float
) -> Outcome:
    """Bytes allocated per task blocked on a Semaphore(0), the task included.

    Measured with :mod:`tracemalloc` from before the tasks are spawned until
    all of them are blocked.  They are then released, untimed, and checked.
    """
    sem = impl.make(0)
    acquire = impl.acquire(sem)
    arrivals: list[int] = []
    acquired: list[int] = []

    async def waiter(i: int) -> None:
        """Record arrival, block on the semaphore, record the outcome."""
        arrivals.append(i)
        await acquire()
        acquired.append(i)

    errors: list[str] = []
    async with ctx.task_group(give_up_after) as group:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(waiters):
                group.spawn(waiter, i)
            settled = await group.run_until(lambda: impl.waiting(sem) >= waiters)
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        if not settled:
            errors.append(f"only {impl.waiting(sem)} of {waiters} tasks blocked")
        if not await _drain(group, sem.release, acquired, waiters):
            errors.append(f"{len(acquired)} of {waiters} tasks acquired")
        await _finish(group, waiters, give_up_after, errors)
    errors += group.errors
    if impl.fifo:
        fifo_error = _check_fifo(arrivals, acquired)
        if fifo_error:
            errors.append(fifo_error)
    _check_final(impl, sem, 0, errors)
    return Outcome((after - before) / waiters, errors)


_IMPORTTIME_LINE = re.compile(r"^import time:\s*(\d+)\s*\|\s*(\d+)\s*\|(\s*)(\S+)\s*$")
FORBIDDEN_IMPORTS = ("asyncio", "trio", "anyio", "uvloop")
"""What ``import loopsync`` must not import: it detects the library at first use."""


def import_time(module: str, env: dict[str, str]) -> Outcome:
    """Milliseconds that ``import module`` takes in a new interpreter (``-X importtime``)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    errors: list[str] = []
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return Outcome(math.nan, [f"import {module} failed: {tail[0]}"])
    cumulative_us = math.nan
    imported: list[str] = []
    for line in proc.stderr.splitlines():
        match = _IMPORTTIME_LINE.match(line)
        if match is None:
            continue
        name = match.group(4)
        imported.append(name)
        if name == module:
            cumulative_us = float(match.group(2))
    if math.isnan(cumulative_us):
        errors.append(f"no importtime line for {module} (already imported at start-up?)")
    if module != "asyncio":
        heavy = sorted(
            {name for name in imported if name.split(".")[0] in FORBIDDEN_IMPORTS} - {module}
        )
        if heavy:
            errors.append(f"import {module} also imported {', '.join(heavy[:5])}")
    return Outcome(cumulative_us / 1000, errors)


def _hung(label: str, seconds: float) -> None:
    """Report a run that hangs, with every thread's traceback, and exit with status 1."""
    print(f"CHECK FAILED: {label}: still running after {seconds:g} s", file=sys.stderr, flush=True)
    faulthandler.dump_traceback(all_threads=True)
    os._exit(1)


def run_in_context(
    ctx: Context,
    workload: Callable[..., Coroutine[Any, Any, Outcome]],
    impl: object,
    param: object,
    give_up_after: float,
    label: str = "",
) -> Outcome:
    """Run one workload in a fresh event loop, garbage collector paused.

    An exception escaping the run is a failed check, not a crash of the
    whole benchmark.  A run that still hangs long after its tasks were given
    up on (tasks that ignore cancellation keep a nursery, or asyncio's
    shutdown, waiting forever) ends the program with status 1, naming the
    run (*label*), instead of hanging it.
    """
    limit = 3 * give_up_after + 10
    watchdog = threading.Timer(
        limit, _hung, (label or f"{ctx.name} {getattr(impl, 'name', impl)}", limit)
    )
    watchdog.daemon = True
    gc.collect()
    gc.disable()
    watchdog.start()
    try:
        return ctx.run(workload, ctx, impl, param, give_up_after)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return Outcome(math.nan, [f"run raised {type(exc).__name__}: {exc}"])
    finally:
        watchdog.cancel()
        gc.enable()
