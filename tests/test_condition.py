"""Condition under every library: asyncio.Condition's rules under asyncio,
trio.Condition's under trio.

Under asyncio a notified task is woken and takes the lock again itself, and a
notified task that is cancelled notifies another one in its place
(gh-112202); under trio a notified task moves to the lock's queue without
being woken, and only the task holding the lock may wait or notify.
"""

from __future__ import annotations

import asyncio
import copy
import fractions
import math
import pickle
import sys
import threading
from dataclasses import FrozenInstanceError
from typing import Any

import anyio
import pytest
import trio
import trio.testing

import loopsync
from libs import LIBS, Lib


def current_task(lib: Lib) -> object:
    """The running task, as the library of *lib* names it."""
    if lib.family == "trio":
        return trio.lowlevel.current_task()
    return asyncio.current_task()


class Waiters:
    """Tasks that wait on a condition once each, and the order they return in."""

    def __init__(self, cond: Any) -> None:
        self.cond = cond
        self.log: list[str] = []

    async def wait(self, name: str) -> None:
        async with self.cond:
            await self.cond.wait()
            self.log.append(name)


async def notify(cond: Any, n: int = 1) -> None:
    """Notify *n* tasks, holding the lock only while doing so."""
    async with cond:
        cond.notify(n)


# -- construction, repr, statistics ---------------------------------------------


def test_a_new_condition_makes_its_own_lock() -> None:
    cond = loopsync.Condition()
    assert type(cond.lock) is loopsync.Lock
    assert not cond.locked()
    assert loopsync.Condition().lock is not cond.lock
    assert cond.statistics() == loopsync.ConditionStatistics(
        tasks_waiting=0,
        lock_statistics=loopsync.LockStatistics(locked=False, owner=None, tasks_waiting=0),
    )


async def test_a_condition_shares_the_lock_it_is_given(lib: Lib) -> None:
    lock = loopsync.Lock()
    cond = loopsync.Condition(lock)
    other = loopsync.Condition(lock)
    assert cond.lock is other.lock is lock
    await lock.acquire()
    assert cond.locked()
    assert other.locked()
    assert cond.statistics().lock_statistics == lock.statistics()
    cond.release()
    assert not lock.locked()
    async with other:
        assert lock.locked()
        assert cond.locked()
    assert not lock.locked()
    cond.acquire_nowait()
    assert other.locked()
    lock.release()
    assert not cond.locked()


class _LockSubclass(loopsync.Lock):
    pass


def test_a_subclass_of_loopsync_lock_is_accepted() -> None:
    lock = _LockSubclass()
    assert loopsync.Condition(lock).lock is lock


@pytest.mark.family("asyncio")
async def test_a_condition_calls_its_lock_s_own_methods_as_asyncio_s_does(lib: Lib) -> None:
    """A subclass's acquire(), locked() and release() are the ones a
    condition calls, where asyncio's condition calls them; its ``async with``
    is not: a condition's calls acquire() and release()."""

    def traced(base: type[Any], log: list[str]) -> Any:
        class Traced(base):  # type: ignore[misc, valid-type]
            async def __aenter__(self) -> None:
                log.append("__aenter__")
                await super().__aenter__()

            async def __aexit__(self, *exc_info: Any) -> None:
                log.append("__aexit__")
                await super().__aexit__(*exc_info)

            async def acquire(self) -> bool:
                log.append("acquire")
                result: bool = await super().acquire()
                return result

            def locked(self) -> bool:
                log.append("locked")
                result: bool = super().locked()
                return result

            def release(self) -> None:
                log.append("release")
                super().release()

        return Traced()

    async def run(lock_class: type[Any], condition_class: type[Any]) -> list[str]:
        log: list[str] = []
        cond = condition_class(traced(lock_class, log))

        async def waiter() -> None:
            async with cond:
                log.append("-- wait")
                await cond.wait()
                log.append("-- woken")

        async with lib.task_group() as group:
            await lib.start_queued(group, waiter)
            async with cond:
                log.append("-- notify")
                cond.notify()
        return log

    expected = await run(asyncio.Lock, asyncio.Condition)
    assert "locked" in expected
    assert await run(loopsync.Lock, loopsync.Condition) == expected


@pytest.mark.family("asyncio")
async def test_notify_all_calls_a_subclass_s_own_notify_as_asyncio_s_does(lib: Lib) -> None:
    async def run(condition_class: type[Any]) -> tuple[list[float], int]:
        class Counting(condition_class):  # type: ignore[misc, valid-type]
            def notify(self, n: float = 1) -> None:
                calls.append(n)
                super().notify(n)

        calls: list[float] = []
        cond = Counting()
        woken = 0

        async def waiter() -> None:
            nonlocal woken
            async with cond:
                await cond.wait()
                woken += 1

        async with lib.task_group() as group:
            for _ in range(2):
                await lib.start_queued(group, waiter)
            async with cond:
                cond.notify_all()
        return calls, woken

    expected = await run(asyncio.Condition)
    assert expected == ([2], 2)
    assert await run(loopsync.Condition) == expected


@pytest.mark.family("asyncio")
async def test_wait_takes_an_always_checkpoint_lock_back_as_its_acquire_does(lib: Lib) -> None:
    # wait() takes the lock back as the lock's acquire() would: one made with
    # always_checkpoint=True yields once even when it is free, so a task
    # scheduled after the notified one runs before wait() returns.
    async def note(log: list[str]) -> None:
        log.append("other task")

    for lock, expected in (
        (loopsync.Lock(always_checkpoint=True), ["other task", "woken"]),
        (loopsync.Lock(), ["woken", "other task"]),
    ):
        waiters = Waiters(loopsync.Condition(lock))
        async with lib.task_group() as group:
            await lib.start_queued(group, waiters.wait, "woken")
            await notify(waiters.cond)
            group.start(note, waiters.log)
        assert waiters.log == expected


async def test_a_wait_in_a_cancelled_anyio_scope_takes_a_checkpointing_lock_back(
    lib: Lib,
) -> None:
    # anyio delivers a scope's cancellation at each yield until the task
    # leaves the scope: under asyncio, the re-acquire of a lock that always
    # checkpoints was cancelled at once, tried again, and never ended.
    for lock in (loopsync.Lock(always_checkpoint=True), loopsync.Lock()):
        cond = loopsync.Condition(lock)
        async with cond:
            with anyio.CancelScope() as scope:
                scope.cancel()
                await cond.wait()
            assert scope.cancelled_caught
            assert lock.locked()
        assert not lock.locked()


@pytest.mark.parametrize(
    "make_lock",
    [
        asyncio.Lock,
        trio.Lock,
        threading.Lock,
        loopsync.Semaphore,
        loopsync.BoundedSemaphore,
        lambda: loopsync.Condition(),
        lambda: "lock",
    ],
    ids=[
        "asyncio.Lock",
        "trio.Lock",
        "threading.Lock",
        "Semaphore",
        "BoundedSemaphore",
        "Condition",
        "str",
    ],
)
def test_a_lock_other_than_a_loopsync_lock_is_a_type_error(make_lock: Any) -> None:
    lock = make_lock()
    with pytest.raises(TypeError, match=r"^Condition's lock must be a loopsync\.Lock, not \w"):
        loopsync.Condition(lock)


def test_a_semaphore_refused_as_lock_is_left_unchanged() -> None:
    sem = loopsync.Semaphore(1)
    with pytest.raises(TypeError, match=r"must be a loopsync\.Lock, not loopsync\.Semaphore$"):
        loopsync.Condition(sem)  # type: ignore[arg-type]
    assert sem.value == 1
    assert sem.statistics().tasks_waiting == 0


class _UnprintableLock:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_a_refused_lock_is_named_by_its_class_not_its_repr() -> None:
    # A repr may raise, or be megabytes long: the message names the class.
    with pytest.raises(TypeError, match=r"^Condition's lock must be a loopsync\.Lock, not list$"):
        loopsync.Condition(list(range(10**6)))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r", not test_condition\._UnprintableLock$"):
        loopsync.Condition(_UnprintableLock())  # type: ignore[arg-type]


async def test_repr_format(lib: Lib) -> None:
    cond = loopsync.Condition()
    assert repr(cond).startswith("<loopsync.Condition object at 0x")
    assert repr(cond).endswith(" [unlocked]>")
    waiters = Waiters(cond)
    async with lib.task_group() as group:
        await lib.start_queued(group, waiters.wait, "a")
        assert repr(cond).endswith(" [unlocked, waiters:1]>")
        async with cond:
            assert repr(cond).endswith(" [locked, waiters:1]>")
            cond.notify()
            assert repr(cond).endswith(" [locked]>")
    assert repr(cond).endswith(" [unlocked]>")


def test_statistics_are_read_only_values() -> None:
    stats = loopsync.Condition().statistics()
    with pytest.raises(FrozenInstanceError, match=r"^cannot assign to field 'tasks_waiting'$"):
        stats.tasks_waiting = 1  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError, match=r"^cannot assign to field 'locked'$"):
        stats.lock_statistics.locked = True  # type: ignore[misc]
    same = loopsync.ConditionStatistics(
        tasks_waiting=0, lock_statistics=loopsync.LockStatistics(False, None, 0)
    )
    assert stats == same
    assert hash(stats) == hash(same)
    assert stats != loopsync.ConditionStatistics(
        tasks_waiting=0, lock_statistics=loopsync.LockStatistics(True, None, 0)
    )
    assert copy.copy(stats) == pickle.loads(pickle.dumps(stats)) == stats
    assert repr(stats) == (
        "ConditionStatistics(tasks_waiting=0, lock_statistics="
        "LockStatistics(locked=False, owner=None, tasks_waiting=0))"
    )


async def test_a_condition_with_waiting_tasks_refuses_to_be_copied(lib: Lib) -> None:
    # Its lock is free while its tasks wait: the condition itself refuses.
    cond = loopsync.Condition()
    async with lib.task_group() as group:
        await lib.start_queued(group, Waiters(cond).wait, "waiter")
        assert not cond.locked()
        for duplicate in (copy.copy, pickle.dumps):
            with pytest.raises(
                TypeError, match=r"^cannot pickle or copy <loopsync\.Condition .*waiters:1\]> "
            ):
                duplicate(cond)
        await notify(cond)
    assert not pickle.loads(pickle.dumps(cond)).locked()


# -- under every library -----------------------------------------------------------


async def test_acquire_returns_true_and_async_with_binds_none(lib: Lib) -> None:
    cond = loopsync.Condition()
    assert await cond.acquire() is True
    assert cond.locked()
    cond.release()
    assert not cond.locked()
    async with cond as entered:
        assert entered is None
        assert cond.locked()
    assert not cond.locked()
    with pytest.raises(KeyError):
        async with cond:
            raise KeyError
    assert not cond.locked()
    cond.acquire_nowait()
    assert cond.lock.locked()
    cond.release()


async def test_notify_wakes_the_waiting_tasks_in_arrival_order(lib: Lib) -> None:
    cond = loopsync.Condition()
    waiters = Waiters(cond)
    async with lib.task_group() as group:
        for name in "abcd":
            await lib.start_queued(group, waiters.wait, name)
        await notify(cond)
        await lib.settle()
        assert waiters.log == ["a"]
        await notify(cond, 2)
        await lib.settle()
        assert waiters.log == ["a", "b", "c"]
        assert cond.statistics().tasks_waiting == 1
        await notify(cond, 5)  # more than are waiting
    assert waiters.log == list("abcd")
    assert not cond.locked()


async def test_notify_all_wakes_every_waiting_task(lib: Lib) -> None:
    cond = loopsync.Condition()
    waiters = Waiters(cond)
    async with lib.task_group() as group:
        for name in "abc":
            await lib.start_queued(group, waiters.wait, name)
        async with cond:
            cond.notify_all()
            assert cond.statistics().tasks_waiting == 0
    assert waiters.log == list("abc")


async def test_notify_with_nobody_waiting_is_not_remembered(lib: Lib) -> None:
    cond = loopsync.Condition()
    waiters = Waiters(cond)
    async with cond:
        cond.notify()
        cond.notify(3)
        cond.notify_all()
    async with lib.task_group() as group:
        late = await lib.start_queued(group, waiters.wait, "late")
        assert not late.done
        async with cond:
            cond.notify(0)
        await lib.settle()
        assert not late.done
        await notify(cond)
    assert waiters.log == ["late"]


async def test_wait_releases_the_lock_and_returns_true_holding_it_again(lib: Lib) -> None:
    cond = loopsync.Condition()
    seen: list[object] = []

    async def wait() -> None:
        async with cond:
            seen.append(await cond.wait())
            seen.append(cond.locked())
            # The owner under trio; asyncio's locks have none.
            owner = current_task(lib) if lib.family == "trio" else None
            seen.append(cond.lock.statistics().owner is owner)

    async with lib.task_group() as group:
        await lib.start_queued(group, wait)
        # Released while it waits: this task can take the lock.
        assert not cond.locked()
        assert await cond.acquire() is True
        cond.notify()
        await lib.settle()
        assert seen == []  # it cannot return before it has the lock again
        cond.release()
    assert seen == [True, True, True]
    assert not cond.locked()


async def test_wait_for_checks_the_predicate_first_and_after_each_wake_up(lib: Lib) -> None:
    cond = loopsync.Condition()
    items: list[int] = []
    calls = 0
    returned: list[object] = []

    def ready() -> list[int]:
        nonlocal calls
        calls += 1
        return items if len(items) >= 2 else []

    async def consume() -> None:
        async with cond:
            returned.append(await cond.wait_for(ready))

    async with lib.task_group() as group:
        await lib.start_queued(group, consume)
        assert calls == 1
        for item in (1, 2):
            async with cond:
                items.append(item)
                cond.notify()
            await lib.settle()
    assert calls == 3
    assert returned == [[1, 2]]
    assert returned[0] is items  # the predicate's own value


async def test_wait_for_with_a_true_predicate_does_not_wait(lib: Lib) -> None:
    cond = loopsync.Condition()
    async with cond:
        assert await cond.wait_for(lambda: "ready") == "ready"
        assert cond.locked()
        assert cond.statistics().tasks_waiting == 0


async def test_wait_for_lets_the_predicate_s_exception_through_holding_the_lock(lib: Lib) -> None:
    cond = loopsync.Condition()

    def broken() -> bool:
        raise ZeroDivisionError

    async with cond:
        with pytest.raises(ZeroDivisionError):
            await cond.wait_for(broken)
        assert cond.locked()


async def test_a_cancelled_wait_takes_the_lock_again_before_it_raises(lib: Lib) -> None:
    cond = loopsync.Condition()
    seen: list[object] = []

    async def wait() -> None:
        async with cond:
            try:
                await cond.wait()
            finally:
                seen.append(cond.locked())
                if lib.family == "trio":
                    seen.append(cond.lock.statistics().owner is trio.lowlevel.current_task())

    async with lib.task_group() as group:
        waiter = await lib.start_queued(group, wait)
        await cond.acquire()
        waiter.cancel()
        await lib.settle()
        # Cancelled, but it waits for the lock before it leaves wait().
        assert not waiter.done
        assert seen == []
        assert cond.statistics().tasks_waiting == 0
        cond.release()
    assert waiter.outcome == "cancelled"
    assert seen == ([True, True] if lib.family == "trio" else [True])
    assert not cond.locked()


async def test_a_waiter_cancelled_before_notify_is_passed_over(lib: Lib) -> None:
    cond = loopsync.Condition()
    waiters = Waiters(cond)
    async with lib.task_group() as group:
        doomed = await lib.start_queued(group, waiters.wait, "doomed")
        await lib.start_queued(group, waiters.wait, "second")
        doomed.cancel()
        assert cond.statistics().tasks_waiting == 1
        await notify(cond)
        await lib.settle()
        assert waiters.log == ["second"]
    assert doomed.outcome == "cancelled"


async def test_notified_tasks_queue_for_the_lock_behind_tasks_already_there(lib: Lib) -> None:
    cond = loopsync.Condition()
    log: list[str] = []

    async def wait() -> None:
        async with cond:
            await cond.wait()
            log.append("notified")

    async def take_lock() -> None:
        async with cond.lock:
            log.append("queued first")

    async with lib.task_group() as group:
        await lib.start_queued(group, wait)
        await cond.acquire()
        await lib.start_queued(group, take_lock)
        cond.notify()
        await lib.settle()
        cond.release()
    assert log == ["queued first", "notified"]


async def test_a_bounded_buffer_with_producers_and_consumers(lib: Lib) -> None:
    # Two conditions on one lock, with a capacity limiter and an event: the
    # primitives used together, as an application would.
    lock = loopsync.Lock()
    not_full, not_empty = loopsync.Condition(lock), loopsync.Condition(lock)
    limiter = loopsync.CapacityLimiter(2)
    done = loopsync.Event()
    buffer: list[int] = []
    consumed: list[int] = []
    inside = peak = 0

    async def produce(start: int) -> None:
        for item in range(start, start + 10):
            async with not_full:
                await not_full.wait_for(lambda: len(buffer) < 3)
                buffer.append(item)
                not_empty.notify()

    async def consume() -> None:
        nonlocal inside, peak
        while True:
            async with not_empty:
                await not_empty.wait_for(lambda: buffer or done.is_set())
                if not buffer:
                    return
                item = buffer.pop(0)
                not_full.notify()
            async with limiter:
                inside += 1
                peak = max(peak, inside)
                await lib.checkpoint()
                consumed.append(item)
                inside -= 1

    async with lib.task_group() as group:
        for _ in range(3):
            group.start(consume)
        producers = [group.start(produce, start) for start in (0, 100)]
        while not all(producer.done for producer in producers):
            await lib.checkpoint()
        while buffer:
            await lib.checkpoint()
        async with not_empty:
            done.set()
            not_empty.notify_all()
    assert sorted(consumed) == [*range(10), *range(100, 110)]
    assert peak <= 2
    assert not lock.locked()


def test_one_condition_under_every_library_in_turn() -> None:
    # Waiting under trio binds nothing; the asyncio runs come last, and after
    # the first, which binds it, only calls that need not wait.
    cond = loopsync.Condition()

    async def wait_and_notify(lib: Lib) -> list[str]:
        waiters = Waiters(cond)
        async with lib.task_group() as group:
            await lib.start_queued(group, waiters.wait, "a")
            await notify(cond)
        return waiters.log

    async def notify_nobody() -> None:
        async with cond:
            cond.notify_all()

    order = sorted(LIBS, key=lambda lib: lib.family != "trio")
    first_asyncio = next(lib for lib in order if lib.family == "asyncio")
    for lib in order:
        if lib.family == "asyncio" and lib is not first_asyncio:
            lib.run(notify_nobody)
        else:
            assert lib.run(wait_and_notify, lib) == ["a"]
    assert not cond.locked()


# -- asyncio: asyncio.Condition of Python 3.13 -------------------------------------


@pytest.mark.family("asyncio")
async def test_wait_and_notify_without_the_lock_are_runtime_errors(lib: Lib) -> None:
    cond = loopsync.Condition()
    before = cond.statistics()
    with pytest.raises(RuntimeError, match=r"^cannot wait on un-acquired lock$"):
        await cond.wait()
    with pytest.raises(RuntimeError, match=r"^cannot wait on un-acquired lock$"):
        await cond.wait_for(lambda: False)
    with pytest.raises(RuntimeError, match=r"^cannot notify on un-acquired lock$"):
        cond.notify()
    with pytest.raises(RuntimeError, match=r"^cannot notify on un-acquired lock$"):
        cond.notify_all()
    assert cond.statistics() == before


@pytest.mark.family("asyncio")
async def test_any_task_may_notify_while_the_lock_is_held(lib: Lib) -> None:
    # asyncio's locks have no owner: held by anyone is enough.
    cond = loopsync.Condition()
    waiters = Waiters(cond)
    async with lib.task_group() as group:
        await lib.start_queued(group, waiters.wait, "a")
        holder = group.start(cond.acquire)
        await lib.settle()
        assert holder.outcome == "returned"
        cond.notify()
        cond.release()
    assert waiters.log == ["a"]


@pytest.mark.family("asyncio")
async def test_notified_tasks_are_woken_before_they_ask_for_the_lock(lib: Lib) -> None:
    cond = loopsync.Condition()
    waiters = Waiters(cond)
    async with lib.task_group() as group:
        for name in "abc":
            await lib.start_queued(group, waiters.wait, name)
        async with cond:
            cond.notify(2)
            stats = cond.statistics()
            assert stats.tasks_waiting == 1
            assert stats.lock_statistics.tasks_waiting == 0
            await lib.settle()
            # Woken, they queue for the lock this task holds.
            assert cond.statistics().lock_statistics.tasks_waiting == 2
        await lib.settle()
        assert waiters.log == ["a", "b"]
        await notify(cond)
    assert waiters.log == ["a", "b", "c"]


@pytest.mark.family("asyncio")
async def test_gh_112202_a_notified_waiter_that_is_cancelled_passes_the_notification_on(
    lib: Lib,
) -> None:
    # Cancelled while the notifier still holds the lock.  (anyio delivers
    # the cancellation only once the woken task waits for the lock.)
    cond = loopsync.Condition()
    waiters = Waiters(cond)
    async with lib.task_group() as group:
        tasks = [await lib.start_queued(group, waiters.wait, name) for name in "abc"]
        async with cond:
            cond.notify()
            tasks[0].cancel()
            await lib.settle()
        await lib.settle()
        assert tasks[0].outcome == "cancelled"
        assert waiters.log == ["b"]
        assert cond.statistics().tasks_waiting == 1
        await notify(cond)
    assert waiters.log == ["b", "c"]


@pytest.mark.libs("asyncio", "uvloop")
async def test_every_notification_reaches_a_task_that_is_not_cancelled(lib: Lib) -> None:
    # The two notified tasks are cancelled before they run, once the lock is
    # free again: each passes its notification on, to the one task left.
    cond = loopsync.Condition()
    waiters = Waiters(cond)
    async with lib.task_group() as group:
        tasks = [await lib.start_queued(group, waiters.wait, name) for name in "abc"]
        await notify(cond, 2)
        tasks[0].cancel()
        tasks[1].cancel()
        await lib.settle()
    assert [task.outcome for task in tasks] == ["cancelled", "cancelled", "returned"]
    assert waiters.log == ["c"]
    assert not cond.locked()


@pytest.mark.skipif(sys.version_info < (3, 13), reason="gh-112202 is fixed in asyncio from 3.13")
@pytest.mark.libs("asyncio", "uvloop")
async def test_cancelled_notified_waiters_agree_with_asyncio_condition(lib: Lib) -> None:
    # Two notified tasks are cancelled before they run: asyncio before 3.13
    # loses both notifications, and the other two tasks wait on.
    async def scenario(cond: Any) -> list[object]:
        log: list[str] = []

        async def wait(name: str) -> None:
            async with cond:
                await cond.wait()
                log.append(name)

        tasks = []
        for name in "abcd":
            tasks.append(asyncio.ensure_future(wait(name)))
            await asyncio.sleep(0)
        async with cond:
            cond.notify(2)
        tasks[0].cancel()
        tasks[1].cancel()
        for _ in range(5):
            await asyncio.sleep(0)
        seen: list[object] = [list(log)]
        async with cond:
            cond.notify_all()
        await asyncio.gather(*tasks, return_exceptions=True)
        return [*seen, log, [task.cancelled() for task in tasks]]

    ours = await scenario(loopsync.Condition())
    assert ours == [["c", "d"], ["c", "d"], [True, True, False, False]]
    assert ours == await scenario(asyncio.Condition())


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout() is new in 3.11")
@pytest.mark.libs("asyncio", "uvloop")
async def test_a_timed_out_wait_holds_the_lock_and_leaves_cancelling_untouched(
    lib: Lib,
) -> None:
    cond = loopsync.Condition()
    task = asyncio.current_task()
    assert task is not None
    async with cond:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0):
                await cond.wait()
        assert cond.locked()
        assert cond.statistics().tasks_waiting == 0
    assert task.cancelling() == 0
    assert not cond.locked()


# -- trio: trio.Condition ----------------------------------------------------------


@pytest.mark.family("trio")
async def test_wait_and_notify_need_the_lock_held_by_this_task(lib: Lib) -> None:
    cond = loopsync.Condition()

    async def refused() -> None:
        before = cond.statistics()
        with pytest.raises(RuntimeError, match=r"^must hold the lock to wait$"):
            await cond.wait()
        with pytest.raises(RuntimeError, match=r"^must hold the lock to wait$"):
            await cond.wait_for(lambda: False)
        with pytest.raises(RuntimeError, match=r"^must hold the lock to notify$"):
            cond.notify()
        with pytest.raises(RuntimeError, match=r"^must hold the lock to notify$"):
            cond.notify_all()
        assert cond.statistics() == before

    await refused()  # nobody holds it
    async with lib.task_group() as group:
        leave = lib.new_event()

        async def hold() -> None:
            async with cond:
                await leave.wait()

        await lib.start_queued(group, hold)
        await refused()  # another task holds it
        leave.set()
    assert not cond.locked()


@pytest.mark.family("trio")
async def test_notify_moves_the_tasks_to_the_lock_s_queue(lib: Lib) -> None:
    def observe(cond: Any) -> tuple[int, bool, object, int]:
        stats = cond.statistics()
        lock_stats = stats.lock_statistics
        return (stats.tasks_waiting, lock_stats.locked, lock_stats.owner, lock_stats.tasks_waiting)

    me = trio.lowlevel.current_task()
    seen = []
    for cond in (loopsync.Condition(), trio.Condition()):
        waiters = Waiters(cond)
        async with lib.task_group() as group:
            for name in "abc":
                await lib.start_queued(group, waiters.wait, name)
            async with cond:
                cond.notify(2)
                seen.append(observe(cond))
                await lib.settle()
                # Moved, not woken: they are still not running.
                assert waiters.log == []
            await lib.settle()
            seen.append(observe(cond))
            await notify(cond)
        assert waiters.log == ["a", "b", "c"]
    assert seen[0] == seen[2] == (1, True, me, 2)
    assert seen[1] == seen[3] == (1, False, None, 0)


@pytest.mark.family("trio")
async def test_a_notified_waiter_cancelled_in_the_lock_queue_keeps_its_notification(
    lib: Lib,
) -> None:
    # As trio's own: the cancelled task takes the lock again and raises; the
    # notification is not passed on.
    results = []
    for cond in (loopsync.Condition(), trio.Condition()):
        waiters = Waiters(cond)
        async with lib.task_group() as group:
            tasks = [await lib.start_queued(group, waiters.wait, name) for name in "abc"]
            async with cond:
                cond.notify()
                tasks[0].cancel()
                await lib.settle()
            await lib.settle()
            results.append((tasks[0].outcome, list(waiters.log), cond.statistics().tasks_waiting))
            await notify(cond, 2)
    assert results[0] == results[1] == ("cancelled", [], 2)


async def test_a_wait_whose_lock_refuses_to_be_released_keeps_nothing(lib: Lib) -> None:
    class RefusingLock(loopsync.Lock):
        refuse = True

        def release(self) -> None:
            if self.refuse:
                raise OSError("refused")
            super().release()

    lock = RefusingLock()
    cond = loopsync.Condition(lock)
    async with lib.task_group() as group:
        await cond.acquire()
        for _ in range(3):
            with pytest.raises(OSError, match=r"^refused$"):
                await cond.wait()
        # Under trio the task was recorded as waiting before the release, and
        # one record (and the task) was kept per refused wait, for good.
        assert cond._waiting_tasks == {}
        assert cond.statistics().tasks_waiting == 0
        lock.refuse = False
        cond.release()

        async def wait() -> bool:
            async with cond:
                return await cond.wait()

        waiter = await lib.start_queued(group, wait)
        async with cond:
            cond.notify()
    assert waiter.result is True
    assert not cond.locked()


@pytest.mark.family("trio")
async def test_wait_raises_broken_resource_error_when_the_lock_s_owner_exits(lib: Lib) -> None:
    async def scenario(cond: Any) -> tuple[str, type[BaseException] | None, bool]:
        owner: list[object] = []

        async def wait() -> None:
            await cond.acquire()
            await cond.wait()  # never returns: the lock breaks meanwhile

        async def notify_and_exit(leave: Any) -> None:
            owner.append(trio.lowlevel.current_task())
            await cond.acquire()
            cond.notify()
            await leave.wait()  # exits still holding the lock

        # Bounded: a waiter the broken lock did not wake would wait forever.
        with trio.fail_after(5):
            async with lib.task_group() as group:
                leave = lib.new_event()
                waiter = await lib.start_queued(group, wait)
                await lib.start_queued(group, notify_and_exit, leave)
                leave.set()
        message = f"Owner of this lock exited without releasing: {owner[0]}"
        return (waiter.outcome, type(waiter.exception), str(waiter.exception) == message)

    ours = await scenario(loopsync.Condition())
    assert ours == ("raised", trio.BrokenResourceError, True)
    assert ours == await scenario(trio.Condition())


@pytest.mark.family("trio")
async def test_a_cancelled_wait_finding_the_lock_broken_raises_from_none_as_trio_s_does(
    lib: Lib,
) -> None:
    # Cancelled, it takes the lock back, which broke meanwhile: trio's raises
    # BrokenResourceError from None, so a traceback shows the break alone.
    async def scenario(cond: Any) -> tuple[type[BaseException] | None, bool]:
        async def wait() -> None:
            await cond.acquire()
            await cond.wait()

        async with lib.task_group() as group:
            waiter = await lib.start_queued(group, wait)
            # Returns holding the lock, which wait() released: the lock breaks.
            await lib.start_queued(group, cond.acquire)
            waiter.cancel()
        assert waiter.exception is not None
        return type(waiter.exception), waiter.exception.__suppress_context__

    ours = await scenario(loopsync.Condition())
    assert ours == (trio.BrokenResourceError, True)
    assert ours == await scenario(trio.Condition())


@pytest.mark.family("trio")
async def test_notify_compares_a_count_with_the_tasks_still_waiting_as_trio_s_does(
    lib: Lib,
) -> None:
    # A count that is not an int passes trio's only if it exceeds the tasks
    # waiting, which a task cancelled from the middle of the queue is not.
    async def scenario(cond: Any) -> tuple[int, int]:
        async def wait() -> None:
            async with cond:
                await cond.wait()

        async with lib.task_group() as group:
            waiters = [await lib.start_queued(group, wait) for _ in range(3)]
            waiters[1].cancel()
            await lib.settle()
            async with cond:
                cond.notify(fractions.Fraction(5, 2))
                moved = cond.statistics().lock_statistics.tasks_waiting
        return moved, cond.statistics().tasks_waiting

    ours = await scenario(loopsync.Condition())
    assert ours == (2, 0)
    assert ours == await scenario(trio.Condition())


@pytest.mark.family("trio")
async def test_a_cancelled_wait_with_trio_s_move_on_after_holds_the_lock_again(lib: Lib) -> None:
    cond = loopsync.Condition()
    async with cond:
        with trio.move_on_after(0) as scope:
            await cond.wait()
        assert scope.cancelled_caught
        assert cond.lock.statistics().owner is trio.lowlevel.current_task()
        assert cond.statistics().tasks_waiting == 0
    assert not cond.locked()


class _LeOnly:
    """A count that has only the comparison asyncio's notify() makes."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __le__(self, other: int) -> bool:
        return self.value <= other


class _StrictEq(_LeOnly):
    """A count that refuses to be compared for equality with an int."""

    def __eq__(self, other: object) -> bool:
        raise TypeError("compared for equality")

    __hash__ = object.__hash__


@pytest.mark.parametrize("waiting", [0, 2])
async def test_notify_takes_and_refuses_the_counts_the_library_s_own_does(
    lib: Lib, waiting: int
) -> None:
    """trio's notify() takes math.inf for all and refuses other floats, and
    non-numbers, even with no task waiting; asyncio's compares *n* only with
    tasks waiting.  A refused notify() changes nothing."""
    native = trio.Condition if lib.family == "trio" else asyncio.Condition
    # The first two: asyncio's compares a count only as `woken >= n` (loopsync
    # asked `n == 1` and `n >= len(waiters)` too, and refused them).
    counts = [_StrictEq(0), _LeOnly(1), None, "2", math.nan, 2.5, 1.0, 0.5, -1, 0, math.inf, 1]

    async def run(cond: Any) -> list[object]:
        outcomes: list[object] = []
        waiters = Waiters(cond)
        async with lib.task_group() as group:
            for name in "ab"[:waiting]:
                await lib.start_queued(group, waiters.wait, name)
            for n in counts:
                async with cond:
                    try:
                        cond.notify(n)  # type: ignore[arg-type]
                    except Exception as exc:
                        outcomes.append((n, type(exc), str(exc)))
                await lib.settle()
                outcomes.append(list(waiters.log))
            async with cond:
                cond.notify_all()
        return outcomes

    expected = await run(native())
    assert await run(loopsync.Condition()) == expected
    refused = [outcome[1] for outcome in expected if isinstance(outcome, tuple)]
    if lib.family == "trio":
        assert refused == [TypeError] * 4 + [ValueError] * 4
    else:
        assert refused == [TypeError, TypeError] * (waiting > 0)
