"""Lock under every library: asyncio.Lock's rules under asyncio, trio.Lock's under trio.

Under asyncio a lock has no owner, and one released to a waiting task stays
provisionally free until that task resumes; under trio it belongs to the task
that acquired it, passes straight to the next waiting task, and breaks when
its owner exits still holding it (trio#3035).
"""

from __future__ import annotations

import asyncio
import copy
import gc
import pickle
import sys
import weakref
from dataclasses import FrozenInstanceError
from typing import Any

import anyio
import pytest
import trio
import trio.testing

import loopsync
from libs import LIBS, Lib


class Critical:
    """Tasks entering a critical section under a lock, in order, and the
    most of them ever inside at once."""

    def __init__(self, lock: loopsync.Lock, lib: Lib) -> None:
        self.lock = lock
        self.lib = lib
        self.log: list[str] = []
        self.inside = 0
        self.peak = 0

    async def use(self, name: str, hold_for: int = 1) -> None:
        async with self.lock:
            self.log.append(name)
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            try:
                for _ in range(hold_for):
                    await self.lib.checkpoint()
            finally:
                self.inside -= 1


async def hold_until(lock: loopsync.Lock, leave: Any) -> None:
    """Hold *lock* until the native event *leave* is set."""
    async with lock:
        await leave.wait()


async def acquire_and_release(lock: loopsync.Lock) -> None:
    await lock.acquire()
    lock.release()


# -- construction, repr, statistics ---------------------------------------------


def test_a_new_lock_is_free() -> None:
    lock = loopsync.Lock()
    assert not lock.locked()
    assert lock.statistics() == loopsync.LockStatistics(locked=False, owner=None, tasks_waiting=0)


async def test_repr_format(lib: Lib) -> None:
    lock = loopsync.Lock()
    assert repr(lock).startswith("<loopsync.Lock object at 0x")
    assert repr(lock).endswith(" [unlocked]>")
    lock.acquire_nowait()
    assert repr(lock).endswith(" [locked]>")
    lock.release()
    assert repr(lock).endswith(" [unlocked]>")


async def test_repr_and_statistics_count_the_waiting_tasks(lib: Lib) -> None:
    lock = loopsync.Lock()
    await lock.acquire()
    async with lib.task_group() as group:
        first = await lib.start_queued(group, lock.acquire)
        await lib.start_queued(group, lock.acquire)
        assert repr(lock).endswith(" [locked, waiters:2]>")
        assert lock.statistics().tasks_waiting == 2
        first.cancel()
        # A cancelled waiter stops counting at once, before its task runs.
        assert repr(lock).endswith(" [locked, waiters:1]>")
        assert lock.statistics().tasks_waiting == 1
        await lib.settle()
        group.cancel_all()
    assert lock.statistics().tasks_waiting == 0
    assert lock.locked()
    lock.release()


def test_statistics_are_read_only_values() -> None:
    stats = loopsync.Lock().statistics()
    with pytest.raises(FrozenInstanceError, match=r"^cannot assign to field 'locked'$"):
        stats.locked = True  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError, match=r"^cannot delete field 'owner'$"):
        del stats.owner
    same = loopsync.LockStatistics(locked=False, owner=None, tasks_waiting=0)
    assert stats == same
    assert hash(stats) == hash(same)
    assert stats != loopsync.LockStatistics(locked=True, owner=None, tasks_waiting=0)
    assert stats != (False, None, 0)
    assert copy.copy(stats) == pickle.loads(pickle.dumps(stats)) == stats
    assert repr(stats) == "LockStatistics(locked=False, owner=None, tasks_waiting=0)"


# -- copies, pickles, weak references --------------------------------------------


_DUPLICATES = [copy.copy, copy.deepcopy, lambda lock: pickle.loads(pickle.dumps(lock))]


@pytest.mark.parametrize("duplicate", _DUPLICATES, ids=["copy", "deepcopy", "pickle"])
def test_an_idle_lock_copies_and_pickles(duplicate: Any) -> None:
    lock = loopsync.Lock(always_checkpoint=True)
    lock.name = "kept"  # type: ignore[attr-defined]
    copied = duplicate(lock)
    assert type(copied) is loopsync.Lock
    assert copied is not lock
    assert copied.name == "kept"
    assert copied._always_checkpoint
    assert not copied.locked()
    assert not duplicate(loopsync.Lock())._always_checkpoint


@pytest.mark.parametrize("duplicate", _DUPLICATES, ids=["copy", "deepcopy", "pickle"])
async def test_a_held_lock_refuses_to_be_copied(lib: Lib, duplicate: Any) -> None:
    # It is released under the rules of the library it was taken under
    # (under trio, by its owner), which a copy could not keep.
    lock = loopsync.Lock()
    async with lock:
        with pytest.raises(
            TypeError, match=r"^cannot pickle or copy <loopsync\.Lock .* \[locked\]>"
        ):
            duplicate(lock)
        assert lock.locked()
    assert not duplicate(lock).locked()


async def _wait_once(lock: loopsync.Lock) -> None:
    """Make a task wait on *lock* once, under asyncio (which binds it)."""
    await lock.acquire()
    waiter = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0)
    lock.release()
    await waiter
    lock.release()


def test_a_copy_is_bound_to_no_loop() -> None:
    lock = loopsync.Lock()
    asyncio.run(_wait_once(lock))
    for copied in (copy.copy(lock), pickle.loads(pickle.dumps(lock))):
        asyncio.run(_wait_once(copied))
        assert not copied.locked()
    with pytest.raises(RuntimeError, match=r"is bound to a different event loop$"):
        asyncio.run(_wait_once(lock))


async def test_a_lock_released_to_a_waiting_task_refuses_to_be_copied(lib: Lib) -> None:
    lock = loopsync.Lock()
    await lock.acquire()
    async with lib.task_group() as group:
        await lib.start_queued(group, acquire_and_release, lock)
        with pytest.raises(TypeError, match=r"^cannot pickle or copy <loopsync\.Lock .*"):
            pickle.dumps(lock)
        lock.release()
        # asyncio: handed to the task, which has not resumed; trio: its owner.
        with pytest.raises(TypeError, match=r"^cannot pickle or copy <loopsync\.Lock .*"):
            copy.copy(lock)
    assert lock.statistics().tasks_waiting == 0
    assert not pickle.loads(pickle.dumps(lock)).locked()


def test_weak_references_and_new_attributes() -> None:
    lock = loopsync.Lock()
    lock.purpose = "one writer"  # type: ignore[attr-defined]
    ref = weakref.ref(lock)
    assert ref() is lock
    assert ref().purpose == "one writer"  # type: ignore[union-attr]
    del lock
    assert ref() is None


# -- under every library -----------------------------------------------------------


async def test_acquire_returns_true_and_release_frees(lib: Lib) -> None:
    lock = loopsync.Lock()
    assert await lock.acquire() is True
    assert lock.locked()
    lock.release()
    assert not lock.locked()
    assert await lock.acquire() is True
    lock.release()


async def test_async_with_binds_none_and_releases_even_on_error(lib: Lib) -> None:
    lock = loopsync.Lock()
    async with lock as entered:
        assert entered is None
        assert lock.locked()
    assert not lock.locked()
    with pytest.raises(KeyError):
        async with lock:
            raise KeyError
    assert not lock.locked()


class _CountingLock(loopsync.Lock):
    """A subclass that counts its acquisitions and releases."""

    acquired = released = 0

    async def acquire(self) -> bool:
        self.acquired += 1
        return await super().acquire()

    def release(self) -> None:
        self.released += 1
        super().release()


async def test_async_with_runs_a_subclass_s_acquire_and_release(lib: Lib) -> None:
    # asyncio's __aenter__ and __aexit__ call acquire() and release().
    lock = _CountingLock()
    async with lock as entered:
        assert entered is None
    assert (lock.acquired, lock.released, lock.locked()) == (1, 1, False)


async def test_acquire_nowait_takes_a_free_lock(lib: Lib) -> None:
    lock = loopsync.Lock()
    assert lock.acquire_nowait() is None
    assert lock.locked()
    lock.release()
    assert not lock.locked()


async def test_acquire_nowait_of_a_held_lock_raises_would_block(lib: Lib) -> None:
    lock = loopsync.Lock()
    async with lib.task_group() as group:
        leave = lib.new_event()
        await lib.start_queued(group, hold_until, lock, leave)
        before = lock.statistics()
        with pytest.raises(loopsync.WouldBlock) as caught:
            lock.acquire_nowait()
        # Whatever the library: anyio is imported in this process.
        assert isinstance(caught.value, anyio.WouldBlock)
        assert isinstance(caught.value, trio.WouldBlock) == (lib.family == "trio")
        assert lock.statistics() == before
        leave.set()
    assert not lock.locked()


async def test_release_of_a_lock_never_acquired_is_worded_by_the_caller_s_library(
    lib: Lib,
) -> None:
    lock = loopsync.Lock()
    message = (
        "can't release a Lock you don't own" if lib.family == "trio" else "Lock is not acquired."
    )
    with pytest.raises(RuntimeError) as caught:
        lock.release()
    assert str(caught.value) == message
    # Unchanged: free, and taken as usual.
    assert lock.statistics() == loopsync.LockStatistics(locked=False, owner=None, tasks_waiting=0)
    assert await lock.acquire() is True
    lock.release()


def test_release_of_a_free_lock_outside_any_library_is_asyncio_s_error() -> None:
    with pytest.raises(RuntimeError, match=r"^Lock is not acquired\.$"):
        loopsync.Lock().release()


def test_release_of_a_lock_last_used_under_trio_is_worded_by_asyncio() -> None:
    lock = loopsync.Lock()
    trio.run(_take_and_release, lock)

    async def release() -> None:
        with pytest.raises(RuntimeError, match=r"^Lock is not acquired\.$"):
            lock.release()

    asyncio.run(release())
    assert not lock.locked()


async def test_one_task_at_a_time(lib: Lib) -> None:
    lock = loopsync.Lock()
    critical = Critical(lock, lib)
    async with lib.task_group() as group:
        for number in range(20):
            group.start(critical.use, str(number), 3)
    assert critical.peak == 1
    assert len(critical.log) == 20
    assert not lock.locked()


async def test_waiting_tasks_get_the_lock_in_arrival_order(lib: Lib) -> None:
    lock = loopsync.Lock()
    critical = Critical(lock, lib)
    await lock.acquire()
    async with lib.task_group() as group:
        for name in "abcde":
            await lib.start_queued(group, critical.use, name)
        assert critical.log == []
        lock.release()
    assert critical.log == list("abcde")
    assert not lock.locked()


async def test_a_released_lock_is_not_taken_past_the_task_it_was_released_to(lib: Lib) -> None:
    # Under asyncio the waiter was handed the lock and has not resumed; under
    # trio it owns it already.  Either way the releasing task queues behind it.
    lock = loopsync.Lock()
    critical = Critical(lock, lib)
    await lock.acquire()
    async with lib.task_group() as group:
        await lib.start_queued(group, critical.use, "waiter")
        lock.release()
        with pytest.raises(loopsync.WouldBlock):
            lock.acquire_nowait()
        await lock.acquire()
        critical.log.append("releaser")
        lock.release()
    assert critical.log == ["waiter", "releaser"]
    assert not lock.locked()


async def test_a_cancelled_waiter_does_not_take_the_lock(lib: Lib) -> None:
    lock = loopsync.Lock()
    critical = Critical(lock, lib)
    await lock.acquire()
    async with lib.task_group() as group:
        doomed = await lib.start_queued(group, critical.use, "doomed")
        await lib.start_queued(group, critical.use, "second")
        doomed.cancel()
        await lib.settle()
        assert doomed.outcome == "cancelled"
        assert lock.statistics().tasks_waiting == 1
        lock.release()
    assert critical.log == ["second"]
    assert not lock.locked()


async def test_cancelling_every_waiter_leaves_the_lock_free_to_take(lib: Lib) -> None:
    lock = loopsync.Lock()
    await lock.acquire()
    async with lib.task_group() as group:
        handles = [group.start(lock.acquire) for _ in range(50)]
        await lib.settle()
        for handle in reversed(handles):
            handle.cancel()
        assert lock.statistics().tasks_waiting == 0
        lock.release()
        assert not lock.locked()
        lock.acquire_nowait()
        lock.release()
    assert all(handle.outcome == "cancelled" for handle in handles)


async def test_python_asyncio_270_lock_released_to_a_waiter_cancelled_before_it_runs(
    lib: Lib,
) -> None:
    lock = loopsync.Lock()
    critical = Critical(lock, lib)
    await lock.acquire()
    async with lib.task_group() as group:
        first = await lib.start_queued(group, critical.use, "first")
        await lib.start_queued(group, critical.use, "second")
        lock.release()  # to "first" ...
        first.cancel()  # ... which is cancelled before it can run
        await lib.settle()
        if lib.cancels_woken_tasks:
            # asyncio: the hand-off is undone and the lock moves on.
            assert critical.log == ["second"]
        else:
            # trio (and anyio): a woken task is not cancelled; it takes the
            # lock and meets the cancellation at its next checkpoint.
            assert critical.log == ["first", "second"]
    assert first.outcome == "cancelled"
    assert critical.peak == 1
    assert not lock.locked()


async def test_bpo_27585_no_deadlock_when_the_next_owner_is_cancelled(lib: Lib) -> None:
    lock = loopsync.Lock()
    critical = Critical(lock, lib)
    await lock.acquire()
    async with lib.task_group() as group:
        next_owner = await lib.start_queued(group, critical.use, "next")
        lock.release()
        next_owner.cancel()
        await lib.settle()
        assert next_owner.outcome == "cancelled"
        assert not lock.locked()
        # Would hang if the lock had been lost with the cancelled task.
        await lock.acquire()
        lock.release()
    assert critical.log == ([] if lib.cancels_woken_tasks else ["next"])


async def test_bpo_32734_cancel_and_release_in_one_iteration_leave_one_holder(lib: Lib) -> None:
    lock = loopsync.Lock()
    critical = Critical(lock, lib)
    await lock.acquire()
    async with lib.task_group() as group:
        waiters = [await lib.start_queued(group, critical.use, name, 3) for name in "abc"]
        waiters[0].cancel()
        lock.release()
        await lib.settle()
    assert critical.log == ["b", "c"]
    assert critical.peak == 1
    assert not lock.locked()


async def test_mixed_with_the_library_s_own_primitives(lib: Lib) -> None:
    # A native event tells the holder when to leave; the loopsync lock keeps
    # order among the tasks queued meanwhile.
    lock = loopsync.Lock()
    critical = Critical(lock, lib)
    leave = lib.new_event()
    async with lib.task_group() as group:
        await lib.start_queued(group, hold_until, lock, leave)
        for name in "xyz":
            await lib.start_queued(group, critical.use, name)
        assert lock.statistics().tasks_waiting == 3
        leave.set()
    assert critical.log == list("xyz")


def test_one_lock_under_every_library_in_turn() -> None:
    # trio's waiters belong to no loop, so a lock waited on under trio binds
    # to nothing; the asyncio runs come last, since waiting there binds it.
    lock = loopsync.Lock()

    async def contend(lib: Lib) -> list[str]:
        critical = Critical(lock, lib)
        await lock.acquire()
        async with lib.task_group() as group:
            for name in "ab":
                await lib.start_queued(group, critical.use, name)
            lock.release()
        return critical.log

    order = sorted(LIBS, key=lambda lib: lib.family != "trio")
    first_asyncio = next(lib for lib in order if lib.family == "asyncio")
    for lib in order:
        if lib.family == "asyncio" and lib is not first_asyncio:
            # Bound to the first asyncio loop: only calls that need not wait.
            lib.run(_take_and_release, lock)
        else:
            assert lib.run(contend, lib) == ["a", "b"]
    assert not lock.locked()


async def _take_and_release(lock: loopsync.Lock) -> None:
    async with lock:
        assert lock.locked()


# -- asyncio: asyncio.Lock of Python 3.13 ------------------------------------------


@pytest.mark.family("asyncio")
async def test_a_free_lock_is_taken_without_yielding(lib: Lib) -> None:
    lock = loopsync.Lock()
    for coro, returned in ((lock.acquire(), True), (lock.__aenter__(), None)):
        # The coroutine finishes on its first step: it never suspends.
        with pytest.raises(StopIteration) as stopped:
            coro.send(None)
        assert stopped.value.value is returned
        assert lock.locked()
        lock.release()


@pytest.mark.family("asyncio")
async def test_any_task_may_release_a_lock_it_did_not_acquire(lib: Lib) -> None:
    lock = loopsync.Lock()
    async with lib.task_group() as group:
        taker = group.start(lock.acquire)
        await lib.settle()
        assert taker.outcome == "returned"
        assert lock.statistics() == loopsync.LockStatistics(
            locked=True, owner=None, tasks_waiting=0
        )
    lock.release()  # the task that acquired it is gone
    assert not lock.locked()


@pytest.mark.family("asyncio")
async def test_release_of_an_unlocked_lock_is_a_runtime_error(lib: Lib) -> None:
    lock = loopsync.Lock()
    with pytest.raises(RuntimeError, match=r"^Lock is not acquired\.$"):
        lock.release()
    await lock.acquire()
    lock.release()
    with pytest.raises(RuntimeError, match=r"^Lock is not acquired\.$"):
        lock.release()
    # Unchanged: still free, and taken as usual.
    assert lock.statistics() == loopsync.LockStatistics(locked=False, owner=None, tasks_waiting=0)
    assert await lock.acquire() is True
    assert lock.locked()
    lock.release()


@pytest.mark.family("asyncio")
async def test_locked_is_false_until_the_task_released_to_resumes(lib: Lib) -> None:
    lock = loopsync.Lock()
    await lock.acquire()
    async with lib.task_group() as group:
        waiter = await lib.start_queued(group, lock.acquire)
        lock.release()
        # asyncio's rule: not locked, although acquire() would queue.
        assert not lock.locked()
        assert repr(lock).endswith(" [unlocked]>")
        assert lock.statistics() == loopsync.LockStatistics(
            locked=False, owner=None, tasks_waiting=0
        )
        with pytest.raises(loopsync.WouldBlock):
            lock.acquire_nowait()
        # Releasing it again is releasing an unlocked lock, and changes nothing.
        with pytest.raises(RuntimeError, match=r"^Lock is not acquired\.$"):
            lock.release()
        await lib.settle()
        assert waiter.outcome == "returned"
        assert lock.locked()
    lock.release()
    assert not lock.locked()


@pytest.mark.libs("asyncio", "uvloop")
async def test_locked_agrees_with_asyncio_lock_while_a_hand_off_is_pending(lib: Lib) -> None:
    async def observe(lock: Any) -> list[object]:
        seen: list[object] = []
        await lock.acquire()
        waiter = asyncio.ensure_future(lock.acquire())
        await asyncio.sleep(0)
        seen.append(lock.locked())
        lock.release()
        seen.append(lock.locked())
        newcomer = asyncio.ensure_future(lock.acquire())
        await asyncio.sleep(0)
        seen.append((waiter.done(), newcomer.done(), lock.locked()))
        lock.release()
        await newcomer
        seen.append(lock.locked())
        lock.release()
        return seen

    assert await observe(loopsync.Lock()) == await observe(asyncio.Lock())


@pytest.mark.libs("asyncio", "uvloop")
async def test_a_hand_off_cancelled_with_no_other_waiter_frees_the_lock(lib: Lib) -> None:
    lock = loopsync.Lock()
    await lock.acquire()
    async with lib.task_group() as group:
        waiter = await lib.start_queued(group, lock.acquire)
        lock.release()
        waiter.cancel()
        await lib.settle()
        assert waiter.outcome == "cancelled"
    assert not lock.locked()
    lock.acquire_nowait()
    assert lock.locked()
    lock.release()


@pytest.mark.libs("asyncio", "uvloop")
async def test_handed_off_lock_then_cancelled_agrees_with_asyncio_lock(lib: Lib) -> None:
    # Who gets the lock when the first waiter is cancelled right after a
    # release, and a newcomer arrives meanwhile.
    async def race(lock: Any) -> list[str]:
        log: list[str] = []

        async def enter(name: str) -> None:
            async with lock:
                log.append(name)
                await asyncio.sleep(0)

        await lock.acquire()
        tasks = []
        for name in "abc":
            tasks.append(asyncio.ensure_future(enter(name)))
            await asyncio.sleep(0)
        lock.release()
        tasks[0].cancel()
        tasks.append(asyncio.ensure_future(enter("newcomer")))
        await asyncio.gather(*tasks, return_exceptions=True)
        log.append(str(lock.locked()))
        return log

    expected = ["b", "c", "newcomer", "False"]
    assert await race(loopsync.Lock()) == await race(asyncio.Lock()) == expected


@pytest.mark.family("asyncio")
async def test_other_exception_thrown_into_a_woken_waiter_passes_the_lock_on(lib: Lib) -> None:
    lock = loopsync.Lock()
    await lock.acquire()
    first = lock.acquire()
    first.send(None)  # parked
    async with lib.task_group() as group:
        second = await lib.start_queued(group, lock.acquire)
        lock.release()  # to "first" ...
        with pytest.raises(KeyboardInterrupt):
            first.throw(KeyboardInterrupt)  # ... which never takes it
        await lib.settle()
        assert second.outcome == "returned"
    assert lock.locked()
    assert lock.statistics().tasks_waiting == 0
    lock.release()


@pytest.mark.family("asyncio")
async def test_always_checkpoint_lets_tasks_scheduled_before_run_first(lib: Lib) -> None:
    log: list[str] = []

    async def note() -> None:
        log.append("other task")

    for lock, expected in (
        (loopsync.Lock(always_checkpoint=True), ["other task"]),
        (loopsync.Lock(), []),
    ):
        log.clear()
        async with lib.task_group() as group:
            group.start(note)
            assert await lock.acquire() is True
            assert log == expected
            lock.release()
        async with lib.task_group() as group:
            log.clear()
            group.start(note)
            async with lock:
                assert log == expected


@pytest.mark.libs("anyio-asyncio")
async def test_always_checkpoint_yield_holds_an_anyio_cancellation_back(lib: Lib) -> None:
    # A cancellation of an anyio cancel scope delivered while acquire()
    # yields with the lock taken does not interrupt it: acquire() returns,
    # and the cancellation lands at the task's next checkpoint.
    lock = loopsync.Lock(always_checkpoint=True)
    log: list[str] = []

    async def take() -> None:
        assert await lock.acquire() is True
        try:
            log.append("acquired")
            await lib.checkpoint()
            log.append("not cancelled")
        finally:
            log.append(f"locked={lock.locked()}")
            lock.release()

    async with lib.task_group() as group:
        taker = group.start(take)
        await lib.checkpoint()
        assert lock.locked()  # taken, and yielding
        assert log == []
        taker.cancel()
        await lib.settle()
    assert taker.outcome == "cancelled"
    assert log == ["acquired", "locked=True"]
    assert not lock.locked()


@pytest.mark.libs("asyncio", "uvloop")
async def test_always_checkpoint_yield_cancelled_plainly_gives_the_lock_back(lib: Lib) -> None:
    # asyncio cannot hold back a plain Task.cancel() (put back, it could
    # outlive the timeout that asked for it): acquire() raises it and gives
    # the lock back, to the next task, as anyio's lock does.
    lock = loopsync.Lock(always_checkpoint=True)
    async with lib.task_group() as group:
        taker = group.start(lock.acquire)
        next_task = group.start(lock.acquire)
        await lib.checkpoint()
        assert lock.locked()  # taken, and yielding; next_task waits
        taker.cancel()
        await lib.settle()
    assert taker.outcome == "cancelled"
    assert next_task.outcome == "returned"
    assert lock.locked()


@pytest.mark.libs("asyncio", "uvloop")
async def test_always_checkpoint_keeps_the_cancel_message(lib: Lib) -> None:
    lock = loopsync.Lock(always_checkpoint=True)
    messages: list[tuple[object, ...]] = []

    async def take() -> None:
        try:
            async with lock:
                await asyncio.sleep(0)
        except asyncio.CancelledError as exc:
            messages.append(exc.args)
            raise

    task = asyncio.ensure_future(take())
    await asyncio.sleep(0)
    task.cancel("stop now")
    await asyncio.gather(task, return_exceptions=True)
    assert messages == [("stop now",)]
    assert not lock.locked()


@pytest.mark.libs("anyio-asyncio")
async def test_always_checkpoint_cancellation_stays_in_its_anyio_cancel_scope(lib: Lib) -> None:
    lock = loopsync.Lock(always_checkpoint=True)
    log: list[str] = []
    scope = anyio.CancelScope()

    async def take() -> None:
        with scope:
            async with lock:
                log.append("acquired")
                await anyio.lowlevel.checkpoint()
                log.append("not cancelled")
        log.append(f"left the scope, cancelled_caught={scope.cancelled_caught}")

    async with anyio.create_task_group() as group:
        group.start_soon(take)
        await anyio.lowlevel.checkpoint()
        assert lock.locked()
        scope.cancel()
    assert log == ["acquired", "left the scope, cancelled_caught=True"]
    assert not lock.locked()


_CHECKPOINTING = [
    lambda: loopsync.Lock(always_checkpoint=True),
    lambda: loopsync.Semaphore(1, always_checkpoint=True),
]


@pytest.mark.libs("anyio-asyncio")
@pytest.mark.parametrize("make", _CHECKPOINTING, ids=["Lock", "Semaphore"])
async def test_always_checkpoint_lets_anyio_deliver_its_cancellation_where_it_may(
    lib: Lib, make: Any
) -> None:
    # anyio delivers a cancel scope's cancellation again at each suspension
    # of the task until it leaves the scope, but never in a shielded scope:
    # put back as a plain asyncio cancellation, as it was, it landed in the
    # body's shielded scope, or, with no suspension left in the cancelled
    # scope, after it, on Python 3.11 and 3.12.
    primitive = make()
    log: list[str] = []
    scope = anyio.CancelScope()

    async def take() -> None:
        with scope:
            async with primitive:
                with anyio.CancelScope(shield=True):
                    await anyio.lowlevel.checkpoint()
                log.append("shielded checkpoint passed")
                await anyio.lowlevel.checkpoint()
                log.append("not cancelled")

    async with anyio.create_task_group() as group:
        group.start_soon(take)
        await anyio.lowlevel.checkpoint()  # take() yields in acquire()
        scope.cancel()
    assert log == ["shielded checkpoint passed"]
    assert scope.cancelled_caught

    with anyio.move_on_after(0) as timeout:
        async with primitive:
            log.append("taken")  # as with anyio's own: a cancelled task takes nothing
    assert timeout.cancelled_caught
    await anyio.lowlevel.checkpoint()  # no cancellation left over
    assert log == ["shielded checkpoint passed"]
    assert not primitive.locked()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is new in 3.11")
@pytest.mark.libs("asyncio", "uvloop")
async def test_always_checkpoint_leaves_cancellation_bookkeeping_untouched(lib: Lib) -> None:
    lock = loopsync.Lock(always_checkpoint=True)
    task = asyncio.current_task()
    assert task is not None
    timed_out = False
    try:
        async with asyncio.timeout(0), lock:
            await asyncio.sleep(0)
    except TimeoutError:
        timed_out = True
    assert timed_out
    assert task.cancelling() == 0
    assert not lock.locked()


# -- trio: trio.Lock ----------------------------------------------------------------


@pytest.mark.family("trio")
async def test_acquire_is_a_checkpoint_even_when_the_lock_is_free(lib: Lib) -> None:
    lock = loopsync.Lock()
    with trio.testing.assert_checkpoints():
        await lock.acquire()
    lock.release()
    with trio.testing.assert_checkpoints():
        async with lock:
            pass
    with trio.CancelScope() as scope:
        scope.cancel()
        await lock.acquire()
    assert scope.cancelled_caught
    assert not lock.locked()  # a cancelled acquire() takes nothing


@pytest.mark.family("trio")
async def test_a_lock_goes_with_its_last_reference_under_trio(lib: Lib) -> None:
    # The watch on its owner's exit, which the lock keeps, held the lock: a
    # lock once taken, and a broken one with its dead owner, stayed until a
    # garbage collection.
    held_and_released = loopsync.Lock()
    async with held_and_released:
        pass
    broken = loopsync.Lock()
    async with lib.task_group() as group:
        group.start(broken.acquire)  # and exits holding it
    assert broken.locked()
    refs = [weakref.ref(held_and_released), weakref.ref(broken)]
    gc.disable()
    try:
        del held_and_released, broken
        assert [ref() for ref in refs] == [None, None]
    finally:
        gc.enable()


@pytest.mark.family("trio")
async def test_release_hands_ownership_straight_to_the_next_waiter(lib: Lib) -> None:
    lock = loopsync.Lock()
    tasks: list[object] = []

    async def acquire_and_note() -> None:
        tasks.append(trio.lowlevel.current_task())
        await lock.acquire()
        lock.release()

    await lock.acquire()
    me = trio.lowlevel.current_task()
    assert lock.statistics() == loopsync.LockStatistics(locked=True, owner=me, tasks_waiting=0)
    async with lib.task_group() as group:
        await lib.start_queued(group, acquire_and_note)
        await lib.start_queued(group, acquire_and_note)
        assert lock.statistics() == loopsync.LockStatistics(locked=True, owner=me, tasks_waiting=2)
        lock.release()
        # Before the waiter runs, it owns the lock already.
        assert lock.locked()
        assert lock.statistics() == loopsync.LockStatistics(
            locked=True, owner=tasks[0], tasks_waiting=1
        )
        with pytest.raises(RuntimeError, match=r"^can't release a Lock you don't own$"):
            lock.release()
    assert lock.statistics() == loopsync.LockStatistics(locked=False, owner=None, tasks_waiting=0)


@pytest.mark.family("trio")
async def test_reacquire_by_the_owner_is_a_runtime_error(lib: Lib) -> None:
    lock = loopsync.Lock()
    await lock.acquire()
    before = lock.statistics()
    # Bounded: a lock that let its owner wait for itself would wait forever.
    with (
        anyio.fail_after(5),
        pytest.raises(RuntimeError, match=r"^attempt to re-acquire an already held Lock$"),
    ):
        await lock.acquire()
    with pytest.raises(RuntimeError, match=r"^attempt to re-acquire an already held Lock$"):
        lock.acquire_nowait()
    assert lock.statistics() == before
    lock.release()
    assert not lock.locked()


@pytest.mark.family("trio")
async def test_release_by_a_task_that_does_not_own_the_lock_is_a_runtime_error(lib: Lib) -> None:
    lock = loopsync.Lock()
    async with lib.task_group() as group:
        leave = lib.new_event()
        await lib.start_queued(group, hold_until, lock, leave)
        before = lock.statistics()
        with pytest.raises(RuntimeError, match=r"^can't release a Lock you don't own$"):
            lock.release()
        assert lock.statistics() == before
        leave.set()
    assert not lock.locked()
    # Nobody holds it now: refused all the same.
    with pytest.raises(RuntimeError, match=r"^can't release a Lock you don't own$"):
        lock.release()
    assert not lock.locked()


@pytest.mark.family("trio")
async def test_would_block_is_trio_s(lib: Lib) -> None:
    lock = loopsync.Lock()
    async with lib.task_group() as group:
        leave = lib.new_event()
        await lib.start_queued(group, hold_until, lock, leave)
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            pass
        else:
            pytest.fail("acquire_nowait() did not raise")
        leave.set()


@pytest.mark.family("trio")
async def test_always_checkpoint_changes_nothing_under_trio(lib: Lib) -> None:
    lock = loopsync.Lock(always_checkpoint=True)
    with trio.testing.assert_checkpoints():
        await lock.acquire()
    assert lock.statistics().owner is trio.lowlevel.current_task()
    lock.release()


def _parking_lot_breakers() -> dict[Any, list[Any]]:
    from trio._core._parking_lot import GLOBAL_PARKING_LOT_BREAKER

    return GLOBAL_PARKING_LOT_BREAKER


async def _hold_and_exit(lock: Any, leave: Any, owner: list[object]) -> None:
    owner.append(trio.lowlevel.current_task())
    await lock.acquire()
    await leave.wait()  # then exits, still holding the lock


async def _outcome_of_waiting(lib: Lib, lock: Any) -> tuple[str, type[BaseException] | None]:
    """Start a task acquiring *lock*, let it run until it blocks, and return
    how it ended (cancelled, if it still waits)."""
    async with lib.task_group() as group:
        task = await lib.start_queued(group, lock.acquire)
        group.cancel_all()
    if task.outcome == "returned":
        lock.release()
    return task.outcome, type(task.exception)


async def _break(lib: Lib, lock: Any) -> list[object]:
    """Let the owner of *lock* exit while two tasks wait; return what they
    and later calls see."""
    owner: list[object] = []
    async with lib.task_group() as group:
        leave = lib.new_event()
        holder = await lib.start_queued(group, _hold_and_exit, lock, leave, owner)
        waiters = [await lib.start_queued(group, lock.acquire) for _ in range(2)]
        leave.set()
        await lib.settle()
        group.cancel_all()  # those still waiting, if the lock did not break
    assert holder.outcome == "returned"
    message = f"Owner of this lock exited without releasing: {owner[0]}"
    # From None, as trio's raises it: a traceback shows the break alone.
    seen: list[object] = [
        (
            waiter.outcome,
            type(waiter.exception),
            str(waiter.exception) == message,
            waiter.exception.__suppress_context__,
        )
        for waiter in waiters
    ]
    seen.append(("later acquire", *await _outcome_of_waiting(lib, lock)))
    try:
        lock.acquire_nowait()
    except trio.WouldBlock:
        seen.append("later acquire_nowait would block")
    seen.append(lock.statistics().tasks_waiting)
    seen.append(lock.locked())
    return seen


@pytest.mark.family("trio")
async def test_trio_3035_owner_exiting_without_releasing_breaks_the_lock(lib: Lib) -> None:
    ours = await _break(lib, loopsync.Lock())
    assert not _parking_lot_breakers()
    assert ours == [
        ("raised", trio.BrokenResourceError, True, True),
        ("raised", trio.BrokenResourceError, True, True),
        ("later acquire", "raised", trio.BrokenResourceError),
        "later acquire_nowait would block",
        0,
        True,
    ]
    assert ours == await _break(lib, trio.Lock())
    assert not _parking_lot_breakers()


@pytest.mark.family("trio")
async def test_a_release_where_no_library_runs_is_told_so_and_changes_nothing(lib: Lib) -> None:
    # In a worker thread: the call needs the task to tell the owner, as a
    # lock's acquire_nowait() does there; trio's says it needs async context.
    lock = loopsync.Lock()
    await lock.acquire()
    with pytest.raises(RuntimeError, match="found no async library running"):
        await trio.to_thread.run_sync(lock.release)
    assert lock.statistics().owner is trio.lowlevel.current_task()
    lock.release()
    native = trio.Lock()
    await native.acquire()
    with pytest.raises(RuntimeError, match="must be called from async context"):
        await trio.to_thread.run_sync(native.release)
    native.release()


@pytest.mark.family("trio")
async def test_trio_3035_owner_exiting_with_no_waiter_breaks_later_acquires(lib: Lib) -> None:
    lock = loopsync.Lock()
    async with lib.task_group() as group:
        owner = group.start(lock.acquire)  # returns holding the lock, and exits
    assert owner.outcome == "returned"
    assert await _outcome_of_waiting(lib, lock) == ("raised", trio.BrokenResourceError)
    with pytest.raises(RuntimeError, match=r"^can't release a Lock you don't own$"):
        lock.release()
    assert not _parking_lot_breakers()


@pytest.mark.family("trio")
async def test_passing_the_lock_around_leaves_no_exit_watch_behind(lib: Lib) -> None:
    lock = loopsync.Lock()
    critical = Critical(lock, lib)
    await lock.acquire()
    assert len(_parking_lot_breakers()) == 1  # the owner is watched ...
    async with lib.task_group() as group:
        for name in "abc":
            await lib.start_queued(group, critical.use, name)
        lock.release()
    # ... and nobody once the last owner released it.
    assert not _parking_lot_breakers()
    assert critical.log == list("abc")
    lock.acquire_nowait()
    lock.release()
    assert not _parking_lot_breakers()
