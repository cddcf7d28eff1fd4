"""Semaphore and BoundedSemaphore under every library."""

from __future__ import annotations

import asyncio
import copy
import math
import pickle
from decimal import Decimal

import pytest
import trio

import loopsync
from libs import Lib


async def acquire_and_log(sem: loopsync.Semaphore, log: list[str], name: str) -> None:
    await sem.acquire()
    log.append(name)


# -- construction and bad input ------------------------------------------------


def test_defaults() -> None:
    sem = loopsync.Semaphore()
    assert sem.value == 1
    assert sem.max_value is None
    assert not sem.locked()
    bounded = loopsync.BoundedSemaphore(3)
    assert bounded.value == bounded.max_value == 3


@pytest.mark.parametrize("cls", [loopsync.Semaphore, loopsync.BoundedSemaphore])
def test_negative_value_is_a_value_error(cls: type[loopsync.Semaphore]) -> None:
    with pytest.raises(ValueError, match=r"^Semaphore initial value must be >= 0$"):
        cls(-1)


@pytest.mark.parametrize("cls", [loopsync.Semaphore, loopsync.BoundedSemaphore])
async def test_a_negative_value_is_refused_in_the_running_library_s_words(
    lib: Lib, cls: type[loopsync.Semaphore]
) -> None:
    native = trio.Semaphore if lib.family == "trio" else asyncio.Semaphore
    with pytest.raises(ValueError, match="initial value must be >= 0") as expected:
        native(-1)
    with pytest.raises(ValueError, match=f"^{expected.value}$"):
        cls(-1)


@pytest.mark.parametrize("cls", [loopsync.Semaphore, loopsync.BoundedSemaphore])
@pytest.mark.parametrize("value", [1.0, "1", None, 2.5, -math.inf, Decimal("Infinity")])
def test_non_integer_value_is_a_type_error(cls: type[loopsync.Semaphore], value: object) -> None:
    with pytest.raises(TypeError, match=f"must be an integer, not {type(value).__name__}"):
        cls(value)  # type: ignore[arg-type]


def test_integer_like_values_are_accepted() -> None:
    class Three:
        def __index__(self) -> int:
            return 3

    sem = loopsync.Semaphore(Three())  # type: ignore[arg-type]
    assert sem.value == 3
    assert type(sem.value) is int


def test_trio_s_and_anyio_s_name_of_the_value_is_accepted() -> None:
    sem = loopsync.Semaphore(initial_value=3, max_value=5)
    assert (sem.value, sem.max_value) == (3, 5)
    assert loopsync.Semaphore(initial_value=1).value == 1
    with pytest.raises(ValueError, match=r"^Semaphore initial value must be >= 0$"):
        loopsync.Semaphore(initial_value=-1)
    with pytest.raises(TypeError, match=r"must be an integer, not NoneType$"):
        loopsync.Semaphore(initial_value=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [1, 2])
def test_the_value_under_both_its_names_is_a_type_error(value: int) -> None:
    with pytest.raises(TypeError, match=r"^Semaphore\(\) takes value or initial_value, not both$"):
        loopsync.Semaphore(value, initial_value=2)


async def test_an_infinite_value_is_a_semaphore_without_a_limit(lib: Lib) -> None:
    """asyncio's idiom: Semaphore(math.inf) never blocks.  (Its bounded
    semaphore refuses every release, as asyncio's does.)"""
    sem = loopsync.Semaphore(math.inf)
    for _ in range(3):
        await sem.acquire()
    assert sem.value == math.inf
    assert not sem.locked()
    assert repr(sem).endswith("[unlocked, value:inf]>")
    sem.release()
    bounded = loopsync.BoundedSemaphore(math.inf)
    await bounded.acquire()
    with pytest.raises(ValueError, match=r"^BoundedSemaphore released too many times$"):
        bounded.release()


def test_zero_is_locked() -> None:
    sem = loopsync.Semaphore(0)
    assert sem.locked()
    with pytest.raises(loopsync.WouldBlock):
        sem.acquire_nowait()
    assert sem.value == 0


async def test_await_semaphore_is_a_type_error(lib: Lib) -> None:
    sem = loopsync.Semaphore()
    with pytest.raises(TypeError):
        await sem  # type: ignore[misc]
    assert sem.value == 1


def test_bounded_over_release_leaves_counter_unchanged() -> None:
    sem = loopsync.BoundedSemaphore(2)
    sem.acquire_nowait()
    sem.release()
    with pytest.raises(ValueError, match=r"^BoundedSemaphore released too many times$"):
        sem.release()
    assert sem.value == 2
    assert repr(sem).endswith("[unlocked, value:2]>")


def test_unbounded_release_past_initial_value() -> None:
    sem = loopsync.Semaphore(1)
    sem.release()
    sem.release()
    assert sem.value == 3


# -- repr and statistics ---------------------------------------------------------


def test_repr_format() -> None:
    sem = loopsync.Semaphore(2)
    assert repr(sem).startswith("<loopsync.Semaphore object at 0x")
    assert repr(sem).endswith(" [unlocked, value:2]>")
    sem.acquire_nowait()
    sem.acquire_nowait()
    assert repr(sem).endswith(" [locked]>")
    assert repr(loopsync.BoundedSemaphore()).startswith("<loopsync.BoundedSemaphore object at 0x")


async def test_repr_counts_waiters(lib: Lib) -> None:
    sem = loopsync.Semaphore(0)
    async with lib.task_group() as group:
        first = group.start(sem.acquire)
        group.start(sem.acquire)
        await lib.settle()
        assert repr(sem).endswith(" [locked, waiters:2]>")
        assert sem.statistics() == loopsync.SemaphoreStatistics(tasks_waiting=2)
        first.cancel()
        # A cancelled waiter stops counting at once, before its task runs.
        assert repr(sem).endswith(" [locked, waiters:1]>")
        assert sem.statistics().tasks_waiting == 1
        sem.release()
        assert sem.statistics().tasks_waiting == 0
    assert sem.value == 0


def test_statistics_is_a_frozen_value() -> None:
    stats = loopsync.Semaphore().statistics()
    with pytest.raises(AttributeError):
        stats.tasks_waiting = 3  # type: ignore[misc]
    assert stats == loopsync.SemaphoreStatistics(tasks_waiting=0)
    assert stats != loopsync.SemaphoreStatistics(tasks_waiting=1)
    assert stats != (0,)
    assert len({stats, loopsync.SemaphoreStatistics(0)}) == 1
    assert repr(stats) == "SemaphoreStatistics(tasks_waiting=0)"


# -- acquiring and releasing -----------------------------------------------------


@pytest.mark.family("asyncio")
async def test_always_checkpoint_lets_tasks_scheduled_before_run_first(lib: Lib) -> None:
    # Under asyncio a free permit is taken without yielding, unless asked;
    # the option survives copies and pickles.  (Under trio acquire() always
    # yields.)
    log: list[str] = []

    async def note() -> None:
        log.append("other task")

    asked = [
        loopsync.Semaphore(2, always_checkpoint=True),
        loopsync.BoundedSemaphore(2, always_checkpoint=True),
    ]
    for duplicate in (copy.copy, copy.deepcopy, lambda p: pickle.loads(pickle.dumps(p))):
        asked += [duplicate(sem) for sem in asked[:2]]
    for sem, expected in [(sem, ["other task"]) for sem in asked] + [
        (loopsync.Semaphore(2), []),
        (loopsync.BoundedSemaphore(2), []),
    ]:
        async with lib.task_group() as group:
            log.clear()
            group.start(note)
            assert await sem.acquire() is True
            assert log == expected
        async with lib.task_group() as group:
            log.clear()
            group.start(note)
            async with sem:
                assert log == expected
        sem.release()


async def test_acquire_returns_true(lib: Lib) -> None:
    sem = loopsync.Semaphore(2)
    assert await sem.acquire() is True
    assert sem.value == 1
    assert await sem.acquire() is True
    assert sem.locked()
    sem.release()
    sem.release()
    assert sem.value == 2


async def test_async_with(lib: Lib) -> None:
    sem = loopsync.BoundedSemaphore(1)
    async with sem as entered:
        # As asyncio's and trio's (CPython's test_pep492 asserts it).
        assert entered is None
        assert sem.locked()
    assert sem.value == 1
    with pytest.raises(KeyError):
        async with sem:
            raise KeyError
    assert sem.value == 1


async def test_acquire_nowait(lib: Lib) -> None:
    sem = loopsync.Semaphore(1)
    sem.acquire_nowait()
    assert sem.value == 0
    with pytest.raises(loopsync.WouldBlock):
        sem.acquire_nowait()
    sem.release()
    assert sem.value == 1


async def test_waiters_are_served_in_arrival_order(lib: Lib) -> None:
    sem = loopsync.Semaphore(0)
    log: list[str] = []
    async with lib.task_group() as group:
        for name in "abcde":
            await lib.start_queued(group, acquire_and_log, sem, log, name)
        for _ in range(5):
            sem.release()
            await lib.settle()
    assert log == list("abcde")
    assert sem.value == 0


async def test_concurrency_never_exceeds_value(lib: Lib) -> None:
    sem = loopsync.Semaphore(3)
    inside = peak = 0

    async def worker() -> None:
        nonlocal inside, peak
        async with sem:
            inside += 1
            peak = max(peak, inside)
            for _ in range(3):
                await lib.checkpoint()
            inside -= 1

    async with lib.task_group() as group:
        for _ in range(20):
            group.start(worker)
    assert peak == 3
    assert sem.value == 3


async def test_locked_while_tasks_wait_even_with_a_free_permit(lib: Lib) -> None:
    # Arrivals queue behind waiting tasks: a free permit goes to the head of
    # the queue, never to whoever calls acquire() next.
    sem = loopsync.Semaphore(0)
    log: list[str] = []
    async with lib.task_group() as group:
        group.start(acquire_and_log, sem, log, "waiter")
        await lib.settle()
        sem.release()
        assert sem.locked()
        with pytest.raises(loopsync.WouldBlock):
            sem.acquire_nowait()
        group.start(acquire_and_log, sem, log, "newcomer")
        await lib.settle()
        assert log == ["waiter"]
        sem.release()
    assert log == ["waiter", "newcomer"]


async def test_cancelled_waiter_consumes_no_permit(lib: Lib) -> None:
    sem = loopsync.Semaphore(0)
    log: list[str] = []
    async with lib.task_group() as group:
        doomed = await lib.start_queued(group, acquire_and_log, sem, log, "doomed")
        await lib.start_queued(group, acquire_and_log, sem, log, "second")
        doomed.cancel()
        await lib.settle()
        assert doomed.outcome == "cancelled"
        assert sem.statistics().tasks_waiting == 1
        sem.release()
    assert log == ["second"]
    assert sem.value == 0


async def test_cancel_every_waiter_then_release(lib: Lib) -> None:
    sem = loopsync.Semaphore(0)
    async with lib.task_group() as group:
        handles = [group.start(sem.acquire) for _ in range(50)]
        await lib.settle()
        for handle in reversed(handles):
            handle.cancel()
        assert sem.statistics().tasks_waiting == 0
        assert sem.locked()
        sem.release()
        assert not sem.locked()
    assert all(handle.outcome == "cancelled" for handle in handles)
    assert sem.value == 1


async def test_bounded_release_wakes_waiter(lib: Lib) -> None:
    sem = loopsync.BoundedSemaphore(1)
    log: list[str] = []
    await sem.acquire()
    async with lib.task_group() as group:
        group.start(acquire_and_log, sem, log, "waiter")
        await lib.settle()
        sem.release()
        # The permit went to the waiter, so the counter is back at 0 ...
        assert sem.value == 0
        await lib.settle()
        # ... and one more release is allowed, then no more.
        sem.release()
        with pytest.raises(ValueError, match="released too many times"):
            sem.release()
    assert log == ["waiter"]
    assert sem.value == 1
