"""Inside anyio-based code, on either anyio backend."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest

import loopsync
from libs import Lib

pytestmark = pytest.mark.libs("anyio-asyncio", "anyio-trio")


async def test_move_on_after_leaves_the_queue(lib: Lib) -> None:
    sem = loopsync.Semaphore(0)
    with anyio.move_on_after(0) as scope:
        await sem.acquire()
    assert scope.cancelled_caught
    assert sem.statistics().tasks_waiting == 0
    sem.release()
    assert not sem.locked()


async def test_fail_after_raises_timeout(lib: Lib) -> None:
    sem = loopsync.BoundedSemaphore(1)
    await sem.acquire()
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0):
            await sem.acquire()
    sem.release()
    assert sem.value == 1


async def test_shielded_scope_keeps_waiting(lib: Lib) -> None:
    sem = loopsync.Semaphore(0)
    log: list[str] = []
    outer = anyio.CancelScope()

    async def shielded_acquire() -> None:
        with outer:
            with anyio.CancelScope(shield=True):
                await sem.acquire()
                log.append("acquired despite the cancel")
            await anyio.lowlevel.checkpoint()
            log.append("never")

    async with anyio.create_task_group() as group:
        group.start_soon(shielded_acquire)
        await anyio.wait_all_tasks_blocked()
        outer.cancel()
        await anyio.wait_all_tasks_blocked()
        assert sem.statistics().tasks_waiting == 1
        sem.release()
    assert log == ["acquired despite the cancel"]
    assert outer.cancelled_caught
    assert sem.value == 0


async def test_timeouts_under_load_lose_no_permit(lib: Lib) -> None:
    sem = loopsync.Semaphore(3)
    done = 0

    async def worker(index: int) -> None:
        nonlocal done
        # Every other worker gives up at its first wait.
        with anyio.move_on_after(0 if index % 2 else math.inf):
            async with sem:
                for _ in range(2):
                    await anyio.lowlevel.checkpoint()
                done += 1

    async with anyio.create_task_group() as group:
        for index in range(40):
            group.start_soon(worker, index)
    assert done >= 20
    assert sem.value == 3
    assert sem.statistics().tasks_waiting == 0


async def test_cancelling_a_task_group_of_waiters(lib: Lib) -> None:
    sem = loopsync.Semaphore(0)
    barrier = loopsync.Barrier(5)
    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(sem.acquire)
        for _ in range(3):
            group.start_soon(barrier.wait)
        await anyio.wait_all_tasks_blocked()
        group.cancel_scope.cancel()
    assert sem.statistics().tasks_waiting == 0
    assert barrier.n_waiting == 0
    assert not barrier.broken
    sem.release()
    assert sem.value == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: loopsync.Lock(always_checkpoint=True),
        lambda: loopsync.Semaphore(1, always_checkpoint=True),
    ],
)
async def test_always_checkpoint_takes_nothing_in_a_cancelled_scope(lib: Lib, make: Any) -> None:
    # As anyio's own lock and semaphore: cancelled before it takes anything.
    primitive = make()
    for scope in (anyio.move_on_after(0), anyio.CancelScope()):
        with scope:
            scope.cancel()
            async with primitive:
                pytest.fail("the body ran in a cancelled scope")
        assert scope.cancelled_caught
        assert not primitive.locked()


@pytest.mark.libs("asyncio", "uvloop", "anyio-asyncio")  # under trio anyio's is trio's checkpoint
@pytest.mark.parametrize(
    ("native", "ours", "taken"),
    [
        (anyio.Lock, lambda: loopsync.Lock(always_checkpoint=True), lambda lock: lock.locked()),
        (
            lambda: anyio.Semaphore(1),
            lambda: loopsync.Semaphore(1, always_checkpoint=True),
            lambda semaphore: semaphore.value == 0,
        ),
    ],
    ids=["Lock", "Semaphore"],
)
async def test_always_checkpoint_holds_a_scope_s_cancellation_back_as_anyio_s(
    lib: Lib, native: Any, ours: Any, taken: Any
) -> None:
    # A scope cancelled while its task yields in acquire() is held back, and
    # delivered again once the yield ends, as by anyio's own: the other tasks
    # see the same schedule (it came one loop iteration early).
    async def schedule(primitive: Any) -> list[str]:
        log: list[str] = []
        scope = anyio.CancelScope()

        async def hold() -> None:
            with scope:
                async with primitive:
                    log.append("taken")
                    try:
                        await anyio.Event().wait()  # where the cancellation comes
                    except anyio.get_cancelled_exc_class():
                        log.append("cancelled")
                        raise
            log.append(f"left the scope, taken: {taken(primitive)}")

        async def cancel_then_step() -> None:
            scope.cancel()
            for step in range(3):
                await anyio.lowlevel.checkpoint()
                log.append(f"step {step}, taken: {taken(primitive)}")

        async with anyio.create_task_group() as group:
            group.start_soon(hold)
            group.start_soon(cancel_then_step)
        return log

    assert await schedule(ours()) == await schedule(native())


async def _semaphore_handing_one_permit_over_frees_another(
    semaphore: Any, log: list[object]
) -> None:
    async def releasing() -> None:
        await semaphore.acquire()
        await semaphore.acquire()
        semaphore.release()  # handed to the waiting task, which has not resumed
        semaphore.release()  # free
        try:
            semaphore.acquire_nowait()
            log.append(("taken at once", semaphore.value))
        except anyio.WouldBlock:
            log.append(("refused", semaphore.value))

    async def waiting() -> None:
        await anyio.lowlevel.checkpoint()
        await semaphore.acquire()
        log.append("handed over")
        semaphore.release()

    async with anyio.create_task_group() as group:
        group.start_soon(releasing)
        group.start_soon(waiting)


async def _semaphore_acquired_in_a_cancelled_scope_during_a_hand_over(
    semaphore: Any, log: list[object]
) -> None:
    scope = anyio.CancelScope()

    async def releasing() -> None:
        semaphore.acquire_nowait()
        await anyio.lowlevel.checkpoint()
        semaphore.release()  # handed to the waiting task, which has not resumed
        scope.cancel()  # the cancelled task is in acquire()'s yield

    async def cancelled() -> None:
        with scope:
            await semaphore.acquire()
            semaphore.release()  # free, while the hand-over is pending
            try:
                await semaphore.acquire()
                log.append("taken in a cancelled scope")
            except anyio.get_cancelled_exc_class():
                log.append("cancelled")
                raise
        log.append(("cancelled caught", scope.cancelled_caught, semaphore.value))

    async def waiting() -> None:
        await semaphore.acquire()
        log.append("handed over")
        semaphore.release()

    async with anyio.create_task_group() as group:
        for task in (releasing, cancelled, waiting):
            group.start_soon(task)


async def _lock_released_with_a_cancelled_task_first_in_line(lock: Any, log: list[object]) -> None:
    scopes = [anyio.CancelScope(), anyio.CancelScope()]

    async def holding_then_waiting() -> None:
        with scopes[0]:
            async with lock:
                await anyio.lowlevel.checkpoint()
            try:
                async with lock:
                    log.append("taken again")
            except anyio.get_cancelled_exc_class():
                log.append("cancelled waiting again")
                raise

    async def cancelled_first_in_line() -> None:
        await anyio.lowlevel.checkpoint()
        with scopes[1]:
            await lock.acquire()

    async def releasing() -> None:
        await lock.acquire()
        scopes[1].cancel()
        lock.release()  # past the cancelled task, to the next one at once
        scopes[0].cancel()
        try:
            lock.acquire_nowait()
            log.append("taken by another at once")
            lock.release()
        except anyio.WouldBlock:
            log.append("refused")

    async with anyio.create_task_group() as group:
        for task in (holding_then_waiting, releasing, cancelled_first_in_line):
            group.start_soon(task)


@pytest.mark.libs("asyncio", "uvloop", "anyio-asyncio")  # under trio anyio's is trio's checkpoint
@pytest.mark.parametrize(
    ("native", "ours", "program"),
    [
        (
            lambda: anyio.Semaphore(2),
            lambda: loopsync.Semaphore(2, always_checkpoint=True),
            _semaphore_handing_one_permit_over_frees_another,
        ),
        (
            lambda: anyio.Semaphore(2),
            lambda: loopsync.Semaphore(2, always_checkpoint=True),
            _semaphore_acquired_in_a_cancelled_scope_during_a_hand_over,
        ),
        (
            anyio.Lock,
            lambda: loopsync.Lock(always_checkpoint=True),
            _lock_released_with_a_cancelled_task_first_in_line,
        ),
    ],
    ids=["free permit during a hand-over", "cancelled scope during a hand-over", "cancelled head"],
)
async def test_always_checkpoint_hands_over_as_anyio_s(
    lib: Lib, native: Any, ours: Any, program: Any
) -> None:
    # anyio hands a permit or the lock over for good, past the waiters
    # already cancelled: a free permit is free, and a lock released goes to
    # the next live waiter at once, where asyncio's wait for the woken or
    # cancelled task to run.
    native_log: list[object] = []
    our_log: list[object] = []
    await program(native(), native_log)
    await program(ours(), our_log)
    assert our_log == native_log
