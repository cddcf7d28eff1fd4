"""The workloads: one run of one implementation in one context, checked.

Every workload is a coroutine function ``(ctx, impl, param, give_up_after)``
that runs inside a fresh event loop and returns an :class:`Outcome`: the
measured number and the list of checks it failed.  A run checks its own
result (permits back to their initial value, locks and limiters free again,
FIFO order where promised, every task finished or woken, unique barrier
indices), so a broken implementation shows up as a failure instead of as a
fast time.
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
from _impls import BarrierImpl, PrimitiveImpl, SemaphoreImpl

__all__ = [
    "CANCEL_KINDS",
    "STORM_KINDS",
    "BarrierParam",
    "ContendedParam",
    "Outcome",
    "WakeParam",
    "barrier_rounds",
    "condition_notify_all",
    "condition_ping_pong",
    "contended",
    "event_set",
    "import_time",
    "memory_per_waiter",
    "primitive_memory",
    "primitive_storm",
    "run_in_context",
    "storm",
    "uncontended",
    "with_contended",
    "with_uncontended",
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
    """Release *count* permits one at a time, each once the last one was
    taken; False if a permit was not taken."""
    # Untimed clean-up: it keeps each wake-up at the head of the queue (so
    # that a peer that scans its queue on release stays linear) and lets every
    # task record its acquisition before the next one is woken, so the order
    # seen is the order of the hand-offs.
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


async def _hand_off(
    ctx: Context, primitive: Any, param: ContendedParam, give_up_after: float, errors: list[str]
) -> float:
    """Run *param.tasks* tasks that each take *primitive* with ``async with``
    *param.ops* times, holding it across a yield; check the acquisitions and
    the concurrency, and return the acquisitions per second."""
    done = [0] * param.tasks
    inside = 0
    most_inside = 0
    checkpoint = ctx.checkpoint

    async def worker(i: int) -> None:
        """Acquire and release *param.ops* times, yielding while holding the permit."""
        nonlocal inside, most_inside
        for _ in range(param.ops):
            async with primitive:
                inside += 1
                most_inside = max(most_inside, inside)
                await checkpoint()
                inside -= 1
            done[i] += 1

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
    return total / elapsed if elapsed > 0 else math.nan


async def contended(
    ctx: Context, impl: SemaphoreImpl, param: ContendedParam, give_up_after: float
) -> Outcome:
    """Acquisitions per second by tasks that each hold the permit across a yield."""
    sem = impl.make(param.permits)
    errors: list[str] = []
    rate = await _hand_off(ctx, sem, param, give_up_after, errors)
    _check_final(impl, sem, param.permits, errors)
    return Outcome(rate, errors)


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


_SETTLE_ROUNDS = 5
"""Scheduling rounds in which a task that reached a wait blocks in it (anyio's
condition yields once first)."""


async def memory_per_waiter(
    ctx: Context, impl: SemaphoreImpl, waiters: int, give_up_after: float
) -> Outcome:
    """Bytes allocated per task blocked on a Semaphore(0), the task included.

    Measured with :mod:`tracemalloc` from before the tasks are spawned until
    all of them are blocked.  They are then released, untimed, and checked.
    As in :func:`primitive_memory`, nothing counts the waiters until the
    memory is read.
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
            await group.run_until(_has_at_least(arrivals, waiters))
            for _ in range(_SETTLE_ROUNDS):
                await ctx.checkpoint()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        if impl.waiting(sem) < waiters:
            errors.append(f"only {impl.waiting(sem)} of {waiters} tasks blocked when measured")
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


# Locks, capacity limiters, events and conditions.


def _check_free(impl: PrimitiveImpl, primitive: Any, errors: list[str]) -> None:
    """Check that *primitive* is not held and that nobody waits on it."""
    if impl.held(primitive):
        errors.append("still held at the end")
    if impl.waiting(primitive):
        errors.append(f"{impl.waiting(primitive)} task(s) still counted as waiting")


async def with_uncontended(
    ctx: Context, impl: PrimitiveImpl, pairs: int, give_up_after: float
) -> Outcome:
    """Nanoseconds per ``async with primitive: pass`` on a free lock or limiter, one task."""
    primitive = impl.make()
    start = perf_counter()
    for _ in range(pairs):
        async with primitive:
            pass
    elapsed = perf_counter() - start
    errors: list[str] = []
    _check_free(impl, primitive, errors)
    return Outcome(elapsed / pairs * 1e9, errors)


async def with_contended(
    ctx: Context, impl: PrimitiveImpl, param: ContendedParam, give_up_after: float
) -> Outcome:
    """Acquisitions per second by tasks that each hold the lock across a yield."""
    primitive = impl.make()
    errors: list[str] = []
    rate = await _hand_off(ctx, primitive, param, give_up_after, errors)
    _check_free(impl, primitive, errors)
    return Outcome(rate, errors)


CANCEL_KINDS: tuple[str, ...] = tuple(kind for kind in STORM_KINDS if kind != "release")
"""The storms run on locks, limiters, events and conditions."""


def _blocking_waiter(
    impl: PrimitiveImpl,
    primitive: Any,
    arrivals: list[int],
    acquired: list[int],
    cancelled: list[int],
    cancelled_error: type[BaseException],
    let_go: list[bool],
) -> Callable[[int], Coroutine[Any, Any, None]]:
    """Return the function of a task that blocks on *primitive* once,
    recording its arrival, then its cancellation or, once through, itself
    in *acquired*."""
    # On a lock or limiter (held by the task running the workload) it waits in
    # ``async with``; on an event, in ``wait()``; on a condition, in ``wait()``
    # inside ``async with`` (so it is through with the lock held again), until
    # *let_go* holds True: a condition may wake a task spuriously (asyncio's of
    # Python 3.13, and loopsync's under asyncio, notify another task in place
    # of one cancelled).  One frame of its own, so that bytes per waiter
    # compare the primitives only.
    if impl.kind == "Event":
        wait = impl.waiter(primitive)

        async def event_waiter(i: int) -> None:
            """Record arrival, wait for the event, record the outcome."""
            arrivals.append(i)
            try:
                await wait()
            except cancelled_error:
                cancelled.append(i)
                raise
            acquired.append(i)

        return event_waiter
    if impl.kind == "Condition":
        wait = impl.waiter(primitive)

        async def condition_waiter(i: int) -> None:
            """Take the lock, record arrival, wait until let go, record the outcome."""
            async with primitive:
                arrivals.append(i)
                try:
                    while not let_go:
                        await wait()
                except cancelled_error:
                    cancelled.append(i)
                    raise
                acquired.append(i)

        return condition_waiter

    async def lock_waiter(i: int) -> None:
        """Record arrival, take the lock or token, record the outcome."""
        arrivals.append(i)
        try:
            async with primitive:
                acquired.append(i)
        except cancelled_error:
            cancelled.append(i)
            raise

    return lock_waiter


async def _hold(impl: PrimitiveImpl, primitive: Any) -> None:
    """Take a lock or limiter, so that the tasks that come next block on it."""
    if impl.kind in ("Lock", "CapacityLimiter"):
        await impl.acquire(primitive)()


async def _let_go(impl: PrimitiveImpl, primitive: Any, let_go: list[bool]) -> None:
    """Let every task still blocked on *primitive* through: release the lock
    or token (each task passes it on as it leaves), set the event, or notify
    every waiter of the condition, *let_go* made true."""
    if impl.kind == "Event":
        primitive.set()
    elif impl.kind == "Condition":
        async with primitive:
            let_go.append(True)
            primitive.notify_all()
    else:
        impl.release(primitive)()


def _check_order(
    impl: PrimitiveImpl, arrivals: list[int], acquired: list[int], skip: set[int], ordered: bool
) -> str:
    """Return an error if the tasks let through are not those expected, or
    (if *ordered*, and where promised) not in arrival order; else ''."""
    if ordered and impl.fifo and impl.kind != "Event":
        return _check_fifo(arrivals, acquired, skip)
    # An event promises no order, and trio may run a woken batch backwards.
    expected = sorted(i for i in arrivals if i not in skip)
    if sorted(acquired) != expected:
        return f"{len(acquired)} tasks let through, {len(expected)} expected"
    return ""


def _all_waiting(impl: PrimitiveImpl, primitive: Any, count: int) -> Callable[[], bool]:
    """Return a predicate: are *count* tasks blocked on *primitive*?"""
    return lambda: impl.waiting(primitive) >= count


async def _until_blocked(
    group: TaskGroup, impl: PrimitiveImpl, primitive: Any, count: int, arrived: Callable[[], int]
) -> bool:
    """Let the tasks run until *count* of them are blocked on *primitive*;
    False if they never are."""
    # On a condition, under trio (and under anyio's lock, which yields once it
    # has taken the lock), the tasks pass its lock on one at a time before
    # they wait, one per scheduling round; and loopsync's statistics() count
    # the waiters one by one.  So the tasks are first let run until
    # *arrived()* (how many reached the wait) says all of them are about to
    # block.
    return await group.run_until(
        lambda: arrived() >= count, max_rounds=count + 1000
    ) and await group.run_until(_all_waiting(impl, primitive, count))


async def primitive_storm(
    ctx: Context, impl: PrimitiveImpl, kind_and_waiters: tuple[str, int], give_up_after: float
) -> Outcome:
    """Seconds from the first cancel until every cancelled task has finished.

    W tasks block on a held lock or limiter, an event or a condition (see
    :func:`_blocking_waiter`); then some of them are cancelled, as
    :data:`CANCEL_KINDS` says.  Untimed, the tasks left are then let through
    (see :func:`_let_go`), to check that they still are, in arrival order
    where that is promised.
    """
    kind, waiters = kind_and_waiters
    primitive = impl.make()
    arrivals: list[int] = []
    acquired: list[int] = []
    cancelled: list[int] = []
    let_go: list[bool] = []
    waiter = _blocking_waiter(impl, primitive, arrivals, acquired, cancelled, ctx.cancelled, let_go)
    errors: list[str] = []
    elapsed = math.nan
    await _hold(impl, primitive)
    async with ctx.task_group(give_up_after) as group:
        for i in range(waiters):
            group.spawn(waiter, i)
        if not await _until_blocked(group, impl, primitive, waiters, arrivals.__len__):
            errors.append(f"only {impl.waiting(primitive)} of {waiters} tasks blocked")
            await _let_go(impl, primitive, let_go)
            return Outcome(math.nan, errors + group.errors)
        targets = _storm_targets(kind, arrivals)
        cancel = group.cancel
        start = perf_counter()
        for i in targets:
            cancel(i)
        if await _finish(group, len(targets), give_up_after, errors):
            elapsed = perf_counter() - start
        if sorted(cancelled) != sorted(targets):
            errors.append(f"{len(cancelled)} tasks ended cancelled, {len(targets)} were cancelled")
        if acquired:
            errors.append(f"{len(acquired)} task(s) got through before they were let")
        left = waiters - len(targets)
        # Tasks woken spuriously (see _blocking_waiter) wait again.
        await group.run_until(lambda: impl.waiting(primitive) >= left)
        if impl.waiting(primitive) != left:
            errors.append(f"{impl.waiting(primitive)} tasks counted as waiting, {left} are")
        # Untimed: the survivors must still get through.
        await _let_go(impl, primitive, let_go)
        await _finish(group, waiters, give_up_after, errors)
    errors += group.errors
    # A task woken spuriously waits again, behind those that were not.
    order_error = _check_order(
        impl, arrivals, acquired, set(targets), ordered=impl.kind != "Condition"
    )
    if order_error:
        errors.append(order_error)
    _check_free(impl, primitive, errors)
    return Outcome(elapsed, errors)


async def primitive_memory(
    ctx: Context, impl: PrimitiveImpl, waiters: int, give_up_after: float
) -> Outcome:
    """Bytes allocated per task blocked on a held lock or limiter, an event or
    a condition, the task included.

    Measured with :mod:`tracemalloc` from before the tasks are spawned until
    all of them are blocked.  They are then let through, untimed, and checked.
    Until the memory is read, nothing asks the primitive how many tasks wait:
    statistics() allocate, and what they free is kept in the interpreter's
    free lists, which tracemalloc counts.  So the tasks are let run until all
    of them reached the wait, and a few rounds more; a check then asks.
    """
    primitive = impl.make()
    arrivals: list[int] = []
    acquired: list[int] = []
    let_go: list[bool] = []
    waiter = _blocking_waiter(impl, primitive, arrivals, acquired, [], ctx.cancelled, let_go)
    errors: list[str] = []
    await _hold(impl, primitive)
    async with ctx.task_group(give_up_after) as group:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(waiters):
                group.spawn(waiter, i)
            await group.run_until(_has_at_least(arrivals, waiters), max_rounds=waiters + 1000)
            for _ in range(_SETTLE_ROUNDS):
                await ctx.checkpoint()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        if impl.waiting(primitive) < waiters:
            errors.append(
                f"only {impl.waiting(primitive)} of {waiters} tasks blocked when measured"
            )
        await _let_go(impl, primitive, let_go)
        await _finish(group, waiters, give_up_after, errors)
    errors += group.errors
    order_error = _check_order(impl, arrivals, acquired, set(), ordered=True)
    if order_error:
        errors.append(order_error)
    _check_free(impl, primitive, errors)
    return Outcome((after - before) / waiters, errors)


@dataclass(frozen=True)
class WakeParam:
    """A wake-up run: *waiters* tasks woken at once, *rounds* times."""

    waiters: int
    rounds: int


def _woken(woken: list[int], r: int, n: int) -> Callable[[], bool]:
    """Return a predicate: have *n* tasks been woken in round *r*?"""
    return lambda: woken[r] >= n


async def event_set(
    ctx: Context, impl: PrimitiveImpl, param: WakeParam, give_up_after: float
) -> Outcome:
    """Seconds from one ``set()`` until every task it woke has resumed.

    *param.waiters* tasks wait on one event per round; the clock runs from
    just before ``set()`` until the last of them records that it resumed, so
    that waking the task running the workload is not counted.  The median
    run's time per round is reported.
    """
    events = [impl.make() for _ in range(param.rounds)]
    waits = [impl.waiter(event) for event in events]
    n = param.waiters
    woken = [0] * param.rounds
    ended = [math.nan] * param.rounds

    async def waiter() -> None:
        """Wait on each round's event in turn; the last one woken stops the clock."""
        for r, wait in enumerate(waits):
            await wait()
            woken[r] += 1
            if woken[r] == n:
                ended[r] = perf_counter()

    errors: list[str] = []
    total = 0.0
    async with ctx.task_group(give_up_after) as group:
        for _ in range(n):
            group.spawn(waiter)
        for r, event in enumerate(events):
            if not await group.run_until(_all_waiting(impl, event, n)):
                errors.append(f"round {r}: only {impl.waiting(event)} of {n} tasks waiting")
                break
            start = perf_counter()
            event.set()
            if not await group.run_until(_woken(woken, r, n)):
                errors.append(f"round {r}: {woken[r]} of {n} tasks woken")
                break
            total += ended[r] - start
        if errors:
            for event in events:
                event.set()
        await _finish(group, n, give_up_after, errors)
    errors += group.errors
    for r, event in enumerate(events):
        if woken[r] != n:
            errors.append(f"round {r}: {woken[r]} of {n} tasks woken")
            break
        if impl.waiting(event):
            errors.append(f"round {r}: {impl.waiting(event)} task(s) still counted as waiting")
            break
    return Outcome(total / param.rounds, errors)


async def condition_notify_all(
    ctx: Context, impl: PrimitiveImpl, param: WakeParam, give_up_after: float
) -> Outcome:
    """Seconds from one ``notify_all()`` until every task it woke holds the lock again.

    *param.waiters* tasks wait on one condition, round after round; the
    clock runs from just before ``notify_all()`` (the lock held) until the
    last of them records, with the lock held again, that it resumed.  Under
    trio the lock passes from task to task, one per scheduling batch.
    """
    cond = impl.make()
    wait = impl.waiter(cond)
    n = param.waiters
    arrived = [0] * param.rounds
    woken = [0] * param.rounds
    ended = [math.nan] * param.rounds

    async def waiter() -> None:
        """Wait to be notified, once per round; the last one through stops the clock."""
        for r in range(param.rounds):
            async with cond:
                arrived[r] += 1
                await wait()
                woken[r] += 1
                if woken[r] == n:
                    ended[r] = perf_counter()

    errors: list[str] = []
    total = 0.0
    async with ctx.task_group(give_up_after) as group:
        for _ in range(n):
            group.spawn(waiter)
        for r in range(param.rounds):
            if not await _until_blocked(group, impl, cond, n, lambda r=r: arrived[r]):
                errors.append(f"round {r}: only {impl.waiting(cond)} of {n} tasks waiting")
                break
            async with cond:
                start = perf_counter()
                cond.notify_all()
            if not await group.run_until(_woken(woken, r, n), max_rounds=n + 1000):
                errors.append(f"round {r}: {woken[r]} of {n} tasks woken")
                break
            total += ended[r] - start
        if errors:
            group.cancel_all()
        await _finish(group, n, give_up_after, errors)
    errors += group.errors
    _check_free(impl, cond, errors)
    return Outcome(total / param.rounds, errors)


async def condition_ping_pong(
    ctx: Context, impl: PrimitiveImpl, exchanges: int, give_up_after: float
) -> Outcome:
    """Seconds per item passed from a producer to a consumer through a
    one-item slot, each waiting on the same condition for the other."""
    cond = impl.make()
    wait = impl.waiter(cond)
    slot: list[int] = []
    received: list[int] = []

    async def producer() -> None:
        """Put each item in the slot once it is empty."""
        for item in range(exchanges):
            async with cond:
                while slot:
                    await wait()
                slot.append(item)
                cond.notify()

    async def consumer() -> None:
        """Take each item from the slot once it is there."""
        for _ in range(exchanges):
            async with cond:
                while not slot:
                    await wait()
                received.append(slot.pop())
                cond.notify()

    errors: list[str] = []
    elapsed = math.nan
    async with ctx.task_group(give_up_after) as group:
        group.spawn(producer)
        group.spawn(consumer)
        start = perf_counter()
        if await _finish(group, 2, give_up_after, errors):
            elapsed = perf_counter() - start
    errors += group.errors
    if received != list(range(exchanges)):
        errors.append(f"{len(received)} items received of {exchanges}, or out of order")
    _check_free(impl, cond, errors)
    return Outcome(elapsed / exchanges, errors)


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
