"""What type checkers see of the public API, as a user's code uses it.

Never run: ``mypy --strict`` checks it (``.ci/run``), and an ``assert_type``
that fails fails the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from typing import Literal

from typing_extensions import assert_type

import loopsync


class CountingLock(loopsync.Lock):
    """A subclass written the way typeshed's asyncio.Lock requires."""

    acquisitions = 0

    async def acquire(self) -> Literal[True]:
        CountingLock.acquisitions += 1
        return await super().acquire()


async def uses_every_primitive() -> None:
    lock, condition = loopsync.Lock(), loopsync.Condition()
    semaphore, event = loopsync.Semaphore(2), loopsync.Event()
    async with lock as entered, semaphore as taken, condition as held:
        assert_type(entered, None)
        assert_type(taken, None)
        assert_type(held, None)
        assert_type(await condition.wait_for(lambda: [1]), list[int])
        assert_type(await condition.wait(), Literal[True])
    assert_type(await lock.acquire(), Literal[True])
    assert_type(await CountingLock().acquire(), Literal[True])
    assert_type(await semaphore.acquire(), Literal[True])
    assert_type(await loopsync.BoundedSemaphore().acquire(), Literal[True])
    assert_type(await event.wait(), Literal[True])
    assert_type(await condition.acquire(), Literal[True])
    async with loopsync.Barrier(1) as index:
        assert_type(index, int)
    together = await asyncio.gather(event.wait(), semaphore.acquire(), loopsync.Barrier(1).wait())
    assert_type(together, tuple[Literal[True], Literal[True], int])
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(lock)
        await stack.enter_async_context(condition)
        await stack.enter_async_context(loopsync.CapacityLimiter(1))
    owner = lock.statistics().owner
    if owner is not None:
        print(owner.name)  # a trio task, which has a name
    # Frozen dataclasses, as anyio's statistics are.
    assert_type(dataclasses.replace(lock.statistics(), locked=True), loopsync.LockStatistics)
    # The counts the docs promise beyond ints: a semaphore without a limit,
    # and trio's notify of every waiter.
    assert_type(loopsync.Semaphore(math.inf).value, int)
    async with condition:
        condition.notify(math.inf)
    match loopsync.CapacityLimiter(1).statistics():
        case loopsync.CapacityLimiterStatistics(borrowed, total, borrowers, waiting):
            assert_type((borrowed, total, borrowers, waiting), tuple[int, float, list[object], int])


def refuses_what_fails_at_run_time(lock: loopsync.Lock) -> None:
    # Each ignore must be needed (--strict warns of unused ones): the type
    # checker refuses what raises at run time.
    statistics = lock.statistics()
    statistics.locked = False  # type: ignore[misc]
    loopsync.LockStatistics(locked=True)  # type: ignore[call-arg]
    assert_type(statistics.tasks_waiting, int)
    print(statistics.owner.name)  # type: ignore[union-attr]
    print(loopsync.CapacityLimiter(1).statistics().borrowers[0].name)  # type: ignore[attr-defined]


async def refuses_what_a_session_fails_on() -> None:
    import loopsync.redis

    async with loopsync.redis.Session("redis://127.0.0.1") as session:  # type: ignore[arg-type]
        assert_type(session, loopsync.redis.Session)
