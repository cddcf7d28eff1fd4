"""Regression tests named after bugs that shipped in asyncio, trio and anyio.

Almost all of them are one bug class: a waiter is woken (handed a permit) and
cancelled before it runs, and the permit is lost or given out twice.
"""

from __future__ import annotations

import pytest

import loopsync
from libs import Lib


class Critical:
    """Counts the tasks inside a critical section and remembers the most."""

    def __init__(self, sem: loopsync.Semaphore, lib: Lib) -> None:
        self.sem = sem
        self.lib = lib
        self.log: list[str] = []
        self.inside = 0
        self.peak = 0

    async def use(self, name: str, hold_for: int = 1) -> None:
        async with self.sem:
            self.log.append(name)
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            try:
                for _ in range(hold_for):
                    await self.lib.checkpoint()
            finally:
                self.inside -= 1


async def test_python_asyncio_270_woken_waiter_cancelled_before_it_runs(lib: Lib) -> None:
    sem = loopsync.Semaphore(0)
    critical = Critical(sem, lib)
    async with lib.task_group() as group:
        first = await lib.start_queued(group, critical.use, "first")
        await lib.start_queued(group, critical.use, "second")
        sem.release()  # hands the permit to "first" ...
        first.cancel()  # ... which is cancelled before it can run
        await lib.settle()
        if lib.cancels_woken_tasks:
            # asyncio: the hand-off is undone and the permit moves on.
            assert critical.log == ["second"]
        else:
            # trio (and anyio): a woken task is not cancelled; it takes the
            # permit and meets the cancellation at its next checkpoint.
            assert critical.log == ["first", "second"]
    assert first.outcome == "cancelled"
    assert sem.value == 1
    assert critical.peak == 1


async def test_bpo_27585_no_deadlock_when_next_owner_is_cancelled(lib: Lib) -> None:
    lock = loopsync.Semaphore(1)
    critical = Critical(lock, lib)
    await lock.acquire()
    async with lib.task_group() as group:
        next_owner = await lib.start_queued(group, critical.use, "next")
        await lib.start_queued(group, critical.use, "after")
        lock.release()
        next_owner.cancel()
        await lib.settle()
        assert "after" in critical.log
        assert not lock.locked()
        await lock.acquire()  # would hang if the permit had been lost
        lock.release()
    assert lock.value == 1


async def test_bpo_32734_cancel_and_release_in_one_iteration_leave_one_holder(lib: Lib) -> None:
    lock = loopsync.Semaphore(1)
    critical = Critical(lock, lib)
    await lock.acquire()
    async with lib.task_group() as group:
        waiters = [await lib.start_queued(group, critical.use, name, 3) for name in "abc"]
        waiters[0].cancel()
        lock.release()
        await lib.settle()
    assert critical.log == ["b", "c"]
    assert critical.peak == 1
    assert lock.value == 1


async def test_gh_90155_releasing_task_cannot_jump_the_queue(lib: Lib) -> None:
    sem = loopsync.Semaphore(1)
    log: list[str] = []

    async def waiter() -> None:
        async with sem:
            log.append("waiter")

    await sem.acquire()
    async with lib.task_group() as group:
        group.start(waiter)
        await lib.settle()
        sem.release()
        with pytest.raises(loopsync.WouldBlock):
            sem.acquire_nowait()
        await sem.acquire()  # waits for the waiter to go first
        log.append("releaser")
        sem.release()
    assert log == ["waiter", "releaser"]
    assert sem.value == 1


async def test_gh_90155_acquire_after_cancelled_hand_off_does_not_hang(lib: Lib) -> None:
    sem = loopsync.Semaphore(1)
    await sem.acquire()
    async with lib.task_group() as group:
        waiter = group.start(sem.acquire)
        await lib.settle()
        sem.release()
        waiter.cancel()
        await lib.settle()
        if lib.cancels_woken_tasks:
            assert waiter.outcome == "cancelled"
        else:
            assert waiter.outcome == "returned"  # it got the permit before the cancel
            sem.release()
        # Every later acquire() must get through.
        for _ in range(3):
            await sem.acquire()
            sem.release()
    assert sem.value == 1


async def test_gh_97545_each_release_hands_one_permit_to_one_waiter(lib: Lib) -> None:
    sem = loopsync.Semaphore(0)
    log: list[int] = []

    async def acquirer(number: int) -> None:
        await sem.acquire()
        log.append(number)

    count = 100
    async with lib.task_group() as group:
        for number in range(count):
            await lib.start_queued(group, acquirer, number)
        for released in range(1, count + 1):
            sem.release()
            # Handed over directly: no waiter is woken only to find nothing.
            assert sem.statistics().tasks_waiting == count - released
            assert sem.value == 0
        if lib.family == "asyncio":
            # All of them resume in the very next loop iteration, not one per
            # iteration (the 27x slowdown of gh-97545).
            await lib.checkpoint()
            assert len(log) == count
    if lib.family == "asyncio":
        assert log == list(range(count))
    else:
        # trio shuffles tasks woken together; the permits still went in order.
        assert sorted(log) == list(range(count))


async def test_gh_111693_a_finished_wait_wakes_every_waiter_permits_allow(lib: Lib) -> None:
    sem = loopsync.Semaphore(0)
    log: list[str] = []

    async def acquirer(name: str) -> None:
        await sem.acquire()
        log.append(name)

    async with lib.task_group() as group:
        group.start(acquirer, "a")
        await lib.settle()
        # Started before "a" is woken, so that under asyncio they run first in
        # the next iteration, and queue behind its pending hand-off.
        group.start(acquirer, "b")
        group.start(acquirer, "c")
        sem.release()  # handed to "a", which has not run yet
        sem.release()
        sem.release()  # two permits free
        if lib.family == "asyncio":
            await lib.checkpoint()
            # "b" and "c" queued, then "a" resumed: it wakes both, not just one.
            assert sem.statistics().tasks_waiting == 0
        await lib.settle()
    assert sorted(log) == ["a", "b", "c"]
    assert sem.value == 0


@pytest.mark.libs("asyncio", "uvloop")
async def test_gh_111693_a_cancelled_hand_off_is_passed_on(lib: Lib) -> None:
    sem = loopsync.Semaphore(0)
    log: list[str] = []

    async def acquirer(name: str) -> None:
        await sem.acquire()
        log.append(name)

    async with lib.task_group() as group:
        a, _, _ = [await lib.start_queued(group, acquirer, name) for name in "abc"]
        sem.release()
        sem.release()  # "a" and "b" are handed a permit each
        a.cancel()  # "a" gives its permit back; it must reach "c"
        await lib.settle()
    assert log == ["b", "c"]
    assert a.outcome == "cancelled"
    assert sem.value == 0


async def test_anyio_1145_cancelled_waiter_does_not_strand_the_next(lib: Lib) -> None:
    sem = loopsync.Semaphore(1)
    critical = Critical(sem, lib)
    await sem.acquire()
    async with lib.task_group() as group:
        first = await lib.start_queued(group, critical.use, "first")
        await lib.start_queued(group, critical.use, "second")
        first.cancel()  # the task's cleanup runs later ...
        sem.release()  # ... so this release must skip it right now
        await lib.settle()
        assert critical.log == ["second"]
        group.start(critical.use, "third")
        await lib.settle()
    assert critical.log == ["second", "third"]
    assert first.outcome == "cancelled"
    assert sem.value == 1
    assert sem.statistics().tasks_waiting == 0
