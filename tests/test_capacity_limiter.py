"""CapacityLimiter under every library, with trio.CapacityLimiter's rules everywhere.

asyncio has no capacity limiter, so the rules are trio's under every library,
but for how acquiring yields: under asyncio it does not when a token is free,
and a token lent to a waiting task that is cancelled before it resumes goes
to the next one.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import math
import pickle
import weakref
from dataclasses import FrozenInstanceError
from typing import Any

import anyio
import anyio.to_thread
import pytest
import trio
import trio.testing

import loopsync
from libs import LIBS, Lib, trio_rule_from

ALREADY_HOLDING = r"^this borrower is already holding one of this CapacityLimiter's tokens$"
NOT_HOLDING = r"^this borrower isn't holding any of this CapacityLimiter's tokens$"


def current_task(lib: Lib) -> object:
    """The running task, as the library of *lib* names it."""
    if lib.family == "trio":
        return trio.lowlevel.current_task()
    return asyncio.current_task()


class Borrower:
    """Borrows a token on behalf of a name, and logs the order it got it in."""

    def __init__(self, limiter: loopsync.CapacityLimiter, lib: Lib) -> None:
        self.limiter = limiter
        self.lib = lib
        self.log: list[str] = []
        self.inside = 0
        self.peak = 0

    async def use(self, name: str, hold_for: int = 1) -> None:
        await self.limiter.acquire_on_behalf_of(name)
        try:
            self.log.append(name)
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            for _ in range(hold_for):
                await self.lib.checkpoint()
        finally:
            self.inside -= 1
            self.limiter.release_on_behalf_of(name)


# -- construction and bad input ------------------------------------------------


@pytest.mark.parametrize("total", [0, 1, 7, math.inf])
def test_total_tokens_is_an_int_or_infinity(total: float) -> None:
    limiter = loopsync.CapacityLimiter(total)
    assert limiter.total_tokens == total
    assert limiter.borrowed_tokens == 0
    assert limiter.available_tokens == total


@pytest.mark.parametrize("total", [1.0, 2.5, "1", None, float("nan"), -math.inf, [1]])
def test_a_total_that_is_not_an_int_or_infinity_is_a_type_error(total: Any) -> None:
    with pytest.raises(TypeError, match=r"^total_tokens must be an int or math\.inf$"):
        loopsync.CapacityLimiter(total)


@pytest.mark.parametrize("total", [-1, -10])
def test_a_negative_total_is_a_value_error(total: int) -> None:
    with pytest.raises(ValueError, match=r"^total_tokens must be >= 0$"):
        loopsync.CapacityLimiter(total)


@pytest.mark.parametrize(
    ("total", "error", "message"),
    [
        (1.0, TypeError, r"^total_tokens must be an int or math\.inf$"),
        ("3", TypeError, r"^total_tokens must be an int or math\.inf$"),
        (-1, ValueError, r"^total_tokens must be >= 0$"),
    ],
)
async def test_a_bad_total_set_later_leaves_the_limiter_unchanged(
    lib: Lib, total: Any, error: type[Exception], message: str
) -> None:
    limiter = loopsync.CapacityLimiter(1)
    await limiter.acquire_on_behalf_of("holder")
    async with lib.task_group() as group:
        waiter = await lib.start_queued(group, limiter.acquire_on_behalf_of, "waiter")
        before = limiter.statistics()
        with pytest.raises(error, match=message):
            limiter.total_tokens = total
        assert limiter.total_tokens == 1
        assert limiter.statistics() == before
        assert not waiter.done
        limiter.release_on_behalf_of("holder")
    assert limiter.statistics().borrowers == ["waiter"]


# -- repr, statistics, copies ------------------------------------------------------


async def test_repr_format(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(2)
    assert repr(limiter).startswith("<loopsync.CapacityLimiter object at 0x")
    assert repr(limiter).endswith(" [borrowed:0/2]>")
    limiter.total_tokens = 1
    await limiter.acquire_on_behalf_of("holder")
    assert repr(limiter).endswith(" [borrowed:1/1]>")
    async with lib.task_group() as group:
        await lib.start_queued(group, limiter.acquire_on_behalf_of, "waiter")
        assert repr(limiter).endswith(" [borrowed:1/1, waiters:1]>")
        limiter.total_tokens = math.inf
        assert repr(limiter).endswith(" [borrowed:2/inf]>")


async def test_statistics_count_the_borrowers_and_the_waiting_tasks(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(1)
    assert limiter.statistics() == loopsync.CapacityLimiterStatistics(
        borrowed_tokens=0, total_tokens=1, borrowers=[], tasks_waiting=0
    )
    await limiter.acquire_on_behalf_of("holder")
    async with lib.task_group() as group:
        first = await lib.start_queued(group, limiter.acquire_on_behalf_of, "first")
        await lib.start_queued(group, limiter.acquire_on_behalf_of, "second")
        stats = limiter.statistics()
        assert stats == loopsync.CapacityLimiterStatistics(
            borrowed_tokens=1, total_tokens=1, borrowers=["holder"], tasks_waiting=2
        )
        # A list, as trio's statistics give, equal to a tuple, as anyio's give.
        assert stats.borrowers == ["holder"]
        assert stats.borrowers == ("holder",)
        assert not stats.borrowers != ("holder",)  # noqa: SIM202 - != itself is under test
        assert stats.borrowers != ("other",)
        assert stats.borrowers != ["holder", "other"]
        first.cancel()
        # A cancelled waiter stops counting at once, before its task runs.
        assert limiter.statistics().tasks_waiting == 1
        limiter.release_on_behalf_of("holder")
    assert limiter.statistics() == loopsync.CapacityLimiterStatistics(
        borrowed_tokens=1, total_tokens=1, borrowers=("second",), tasks_waiting=0
    )


async def test_statistics_are_a_read_only_snapshot(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(2)
    limiter.acquire_on_behalf_of_nowait("a")
    stats = limiter.statistics()
    with pytest.raises(FrozenInstanceError, match=r"^cannot assign to field 'borrowed_tokens'$"):
        stats.borrowed_tokens = 0  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError, match=r"^cannot assign to field 'borrowers'$"):
        stats.borrowers = []  # type: ignore[misc]
    # The borrowers are a copy: the limiter does not change with them, nor
    # they with the limiter.
    stats.borrowers.clear()
    assert limiter.statistics().borrowers == ["a"]
    limiter.acquire_on_behalf_of_nowait("b")
    assert limiter.statistics() != stats
    assert copy.copy(stats) == pickle.loads(pickle.dumps(stats)) == stats
    assert repr(loopsync.CapacityLimiter(3).statistics()) == (
        "CapacityLimiterStatistics(borrowed_tokens=0, total_tokens=3, borrowers=[], "
        "tasks_waiting=0)"
    )


@pytest.mark.parametrize(
    "duplicate",
    [copy.copy, copy.deepcopy, lambda limiter: pickle.loads(pickle.dumps(limiter))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_an_idle_limiter_copies_and_pickles(duplicate: Any) -> None:
    for total in (3, math.inf):
        limiter = loopsync.CapacityLimiter(total)
        limiter.tag = "kept"  # type: ignore[attr-defined]
        copied = duplicate(limiter)
        assert type(copied) is loopsync.CapacityLimiter
        assert copied.total_tokens == total
        assert copied.tag == "kept"
        copied.total_tokens = 1
        assert limiter.total_tokens == total


async def test_a_limiter_with_borrowed_tokens_refuses_to_be_copied(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(1)
    await limiter.acquire_on_behalf_of("holder")
    with pytest.raises(TypeError, match=r"^cannot pickle or copy .* while tokens are borrowed$"):
        pickle.dumps(limiter)
    with pytest.raises(TypeError, match=r"^cannot pickle or copy .* while tokens are borrowed$"):
        copy.copy(limiter)
    limiter.release_on_behalf_of("holder")
    assert pickle.loads(pickle.dumps(limiter)).total_tokens == 1


def test_weak_references() -> None:
    limiter = loopsync.CapacityLimiter(1)
    ref = weakref.ref(limiter)
    assert ref() is limiter
    del limiter
    assert ref() is None


# -- under every library -----------------------------------------------------------


async def test_acquire_lends_a_token_to_the_current_task(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(2)
    assert await limiter.acquire() is None
    assert limiter.borrowed_tokens == 1
    assert limiter.available_tokens == 1
    assert limiter.statistics().borrowers == [current_task(lib)]
    limiter.release()
    assert limiter.borrowed_tokens == 0
    limiter.acquire_nowait()
    assert limiter.statistics().borrowers == [current_task(lib)]
    limiter.release()
    assert limiter.available_tokens == 2


async def test_async_with_binds_none_and_gives_the_token_back_even_on_error(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(1)
    async with limiter as entered:
        assert entered is None
        assert limiter.statistics().borrowers == [current_task(lib)]
    assert limiter.borrowed_tokens == 0
    with pytest.raises(KeyError):
        async with limiter:
            raise KeyError
    assert limiter.borrowed_tokens == 0


class _CountingLimiter(loopsync.CapacityLimiter):
    """A subclass that counts its acquisitions and releases."""

    acquired = released = 0

    async def acquire(self) -> None:
        self.acquired += 1
        await super().acquire()

    def release(self) -> None:
        self.released += 1
        super().release()


async def test_async_with_runs_a_subclass_s_acquire_and_release(lib: Lib) -> None:
    # As anyio's limiter (and trio's, through its mixin), whose __aenter__
    # and __aexit__ call acquire() and release().
    limiter = _CountingLimiter(1)
    async with limiter as entered:
        assert entered is None
        assert limiter.statistics().borrowers == [current_task(lib)]
    assert (limiter.acquired, limiter.released, limiter.borrowed_tokens) == (1, 1, 0)


async def test_tokens_lent_on_behalf_of_a_borrower_are_given_back_by_any_task(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(2)
    job = object()
    await limiter.acquire_on_behalf_of(job)
    limiter.acquire_on_behalf_of_nowait("other job")
    assert limiter.borrowed_tokens == 2
    assert sorted(map(id, limiter.statistics().borrowers)) == sorted(map(id, [job, "other job"]))
    async with lib.task_group() as group:
        group.start(limiter.release_on_behalf_of, job)  # another task
        await lib.settle()
    assert limiter.statistics().borrowers == ["other job"]
    limiter.release_on_behalf_of("other job")
    assert limiter.borrowed_tokens == 0


async def test_a_borrower_already_holding_a_token_is_a_runtime_error(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(3)
    await limiter.acquire()
    await limiter.acquire_on_behalf_of("job")
    before = limiter.statistics()
    with pytest.raises(RuntimeError, match=ALREADY_HOLDING):
        await limiter.acquire()
    with pytest.raises(RuntimeError, match=ALREADY_HOLDING):
        limiter.acquire_nowait()
    with pytest.raises(RuntimeError, match=ALREADY_HOLDING):
        await limiter.acquire_on_behalf_of("job")
    with pytest.raises(RuntimeError, match=ALREADY_HOLDING):
        limiter.acquire_on_behalf_of_nowait("job")
    with pytest.raises(RuntimeError, match=ALREADY_HOLDING):
        async with limiter:
            pass
    assert limiter.statistics() == before
    limiter.release()
    limiter.release_on_behalf_of("job")
    assert limiter.borrowed_tokens == 0


async def test_releasing_for_a_borrower_without_a_token_is_a_runtime_error(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(2)
    with pytest.raises(RuntimeError, match=NOT_HOLDING):
        limiter.release()
    limiter.acquire_on_behalf_of_nowait("job")
    before = limiter.statistics()
    with pytest.raises(RuntimeError, match=NOT_HOLDING):
        limiter.release()  # the current task borrowed nothing
    with pytest.raises(RuntimeError, match=NOT_HOLDING):
        limiter.release_on_behalf_of("stranger")
    assert limiter.statistics() == before
    limiter.release_on_behalf_of("job")
    with pytest.raises(RuntimeError, match=NOT_HOLDING):
        limiter.release_on_behalf_of("job")  # twice
    assert limiter.borrowed_tokens == 0


async def test_acquire_nowait_with_no_free_token_raises_would_block(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(1)
    limiter.acquire_on_behalf_of_nowait("holder")
    before = limiter.statistics()
    for attempt in (limiter.acquire_nowait, lambda: limiter.acquire_on_behalf_of_nowait("b")):
        with pytest.raises(loopsync.WouldBlock) as caught:
            attempt()
        assert isinstance(caught.value, anyio.WouldBlock)
        assert isinstance(caught.value, trio.WouldBlock) == (lib.family == "trio")
    assert limiter.statistics() == before


async def test_borrowers_never_exceed_the_total(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(3)
    borrower = Borrower(limiter, lib)
    async with lib.task_group() as group:
        for number in range(20):
            group.start(borrower.use, str(number), 3)
    assert borrower.peak == 3
    assert len(borrower.log) == 20
    assert limiter.borrowed_tokens == 0


async def test_waiting_tasks_get_tokens_in_arrival_order(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(1)
    borrower = Borrower(limiter, lib)
    limiter.acquire_on_behalf_of_nowait("holder")
    async with lib.task_group() as group:
        for name in "abcde":
            await lib.start_queued(group, borrower.use, name)
        limiter.release_on_behalf_of("holder")
    assert borrower.log == list("abcde")


async def test_a_released_token_is_lent_to_the_first_waiting_task_at_once(lib: Lib) -> None:
    # Not taken past it, by acquire_nowait() or acquire(), even before the
    # task it was lent to has run.
    limiter = loopsync.CapacityLimiter(1)
    borrower = Borrower(limiter, lib)
    limiter.acquire_on_behalf_of_nowait("releaser")
    async with lib.task_group() as group:
        waiter = await lib.start_queued(group, borrower.use, "waiter")
        limiter.release_on_behalf_of("releaser")
        assert limiter.statistics().borrowers == ["waiter"]
        assert limiter.statistics().tasks_waiting == 0
        assert not waiter.done
        with pytest.raises(loopsync.WouldBlock):
            limiter.acquire_on_behalf_of_nowait("releaser")
        await limiter.acquire_on_behalf_of("releaser")
        borrower.log.append("releaser")
        limiter.release_on_behalf_of("releaser")
    assert borrower.log == ["waiter", "releaser"]


async def test_a_token_left_free_while_tasks_wait_is_not_taken_past_them(lib: Lib) -> None:
    # Two tasks waiting for one borrower take two tokens' turns, as in trio,
    # and leave one token free while a third task waits: neither
    # acquire_nowait() nor acquire() takes it past that task.
    limiter = loopsync.CapacityLimiter(2)
    for holder in ("a", "b"):
        limiter.acquire_on_behalf_of_nowait(holder)
    async with lib.task_group() as group:
        for name in ("x", "x", "y"):
            await lib.start_queued(group, limiter.acquire_on_behalf_of, name)
        for holder in ("a", "b"):
            limiter.release_on_behalf_of(holder)
        await lib.settle()
        assert limiter.available_tokens == 1
        assert limiter.statistics().tasks_waiting == 1
        with pytest.raises(loopsync.WouldBlock):
            limiter.acquire_on_behalf_of_nowait("z")
        await lib.start_queued(group, limiter.acquire_on_behalf_of, "z")
        assert limiter.statistics().tasks_waiting == 2
        limiter.release_on_behalf_of("x")
    assert sorted(limiter.statistics().borrowers) == ["y", "z"]


async def test_raising_the_total_lends_the_new_tokens_at_once(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(1)
    limiter.acquire_on_behalf_of_nowait("holder")
    async with lib.task_group() as group:
        waiters = [
            await lib.start_queued(group, limiter.acquire_on_behalf_of, name) for name in "abcd"
        ]
        limiter.total_tokens = 3
        # Lent before any of the tasks has run, in arrival order.
        assert sorted(limiter.statistics().borrowers) == ["a", "b", "holder"]
        assert limiter.statistics().tasks_waiting == 2
        limiter.total_tokens = math.inf
        assert limiter.borrowed_tokens == 5
        assert limiter.statistics().tasks_waiting == 0
        assert limiter.available_tokens == math.inf
    assert all(waiter.outcome == "returned" for waiter in waiters)


async def test_lowering_the_total_takes_no_token_back(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(3)
    for name in "abc":
        limiter.acquire_on_behalf_of_nowait(name)
    limiter.total_tokens = 1
    assert limiter.borrowed_tokens == 3
    assert limiter.available_tokens == -2
    async with lib.task_group() as group:
        waiter = await lib.start_queued(group, limiter.acquire_on_behalf_of, "waiter")
        limiter.release_on_behalf_of("a")
        limiter.release_on_behalf_of("b")
        await lib.settle()
        assert not waiter.done  # one token is still borrowed, of one in all
        limiter.release_on_behalf_of("c")
    assert limiter.statistics().borrowers == ["waiter"]
    assert limiter.available_tokens == 0


async def test_no_token_at_all_makes_every_task_wait_until_the_total_is_raised(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(0)
    with pytest.raises(loopsync.WouldBlock):
        limiter.acquire_nowait()
    async with lib.task_group() as group:
        waiter = await lib.start_queued(group, limiter.acquire_on_behalf_of, "waiter")
        assert not waiter.done
        limiter.total_tokens = 1
        assert limiter.statistics().borrowers == ["waiter"]
    assert waiter.outcome == "returned"


async def test_infinitely_many_tokens_never_make_a_task_wait(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(math.inf)
    for number in range(1000):
        limiter.acquire_on_behalf_of_nowait(number)
    await limiter.acquire()
    assert limiter.borrowed_tokens == 1001
    assert limiter.available_tokens == math.inf


async def test_a_cancelled_waiter_is_lent_no_token(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(1)
    borrower = Borrower(limiter, lib)
    limiter.acquire_on_behalf_of_nowait("holder")
    async with lib.task_group() as group:
        doomed = await lib.start_queued(group, borrower.use, "doomed")
        await lib.start_queued(group, borrower.use, "second")
        doomed.cancel()
        await lib.settle()
        assert doomed.outcome == "cancelled"
        assert limiter.statistics().tasks_waiting == 1
        limiter.release_on_behalf_of("holder")
    assert borrower.log == ["second"]
    assert limiter.borrowed_tokens == 0


async def test_a_cancelled_waiter_keeps_no_hold_on_its_borrower(lib: Lib) -> None:
    # The limiter forgets the borrower of a waiter cancelled in its queue
    # (trio#548): a long-lived limiter does not keep every such borrower.
    class Job:
        pass

    limiter = loopsync.CapacityLimiter(1)
    limiter.acquire_on_behalf_of_nowait("holder")

    async def cancel_waiting(jobs: list[Job]) -> list[str]:
        # The tasks and their tracebacks, which hold the jobs, end with it.
        async with lib.task_group() as group:
            waiting = [
                await lib.start_queued(group, limiter.acquire_on_behalf_of, job) for job in jobs
            ]
            for handle in waiting:
                handle.cancel()
        return [handle.outcome for handle in waiting]

    jobs = [Job() for _ in range(3)]
    refs = [weakref.ref(job) for job in jobs]
    assert await cancel_waiting(jobs) == ["cancelled"] * 3
    del jobs
    await lib.checkpoint()  # asyncio lets the tasks' last exceptions go in its next step
    gc.collect()
    assert [ref() for ref in refs] == [None] * 3
    assert limiter.statistics().borrowers == ["holder"]


async def test_a_token_lent_to_a_waiter_cancelled_before_it_runs(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(1)
    borrower = Borrower(limiter, lib)
    limiter.acquire_on_behalf_of_nowait("holder")
    async with lib.task_group() as group:
        first = await lib.start_queued(group, borrower.use, "first")
        await lib.start_queued(group, borrower.use, "second")
        limiter.release_on_behalf_of("holder")  # lent to "first" ...
        first.cancel()  # ... which is cancelled before it can run
        await lib.settle()
        if lib.cancels_woken_tasks:
            # asyncio: the token is given back and lent to the next task.
            assert borrower.log == ["second"]
        else:
            # trio (and anyio): a woken task is not cancelled; it uses the
            # token and meets the cancellation at its next checkpoint.
            assert borrower.log == ["first", "second"]
    assert first.outcome == "cancelled"
    assert borrower.peak == 1
    assert limiter.borrowed_tokens == 0


def test_one_limiter_under_every_library_in_turn() -> None:
    # Waiting under trio binds nothing; the asyncio runs come last, and after
    # the first, which binds it, only calls that need not wait.
    limiter = loopsync.CapacityLimiter(1)

    async def contend(lib: Lib) -> list[str]:
        borrower = Borrower(limiter, lib)
        await limiter.acquire()
        async with lib.task_group() as group:
            for name in "ab":
                await lib.start_queued(group, borrower.use, name)
            limiter.release()
        return borrower.log

    async def borrow_and_return() -> None:
        async with limiter:
            assert limiter.borrowed_tokens == 1

    order = sorted(LIBS, key=lambda lib: lib.family != "trio")
    first_asyncio = next(lib for lib in order if lib.family == "asyncio")
    for lib in order:
        if lib.family == "asyncio" and lib is not first_asyncio:
            lib.run(borrow_and_return)
        else:
            assert lib.run(contend, lib) == ["a", "b"]
    assert limiter.borrowed_tokens == 0


@pytest.mark.family("asyncio")
def test_a_task_cancelled_waiting_for_a_token_is_freed_without_the_cycle_collector(
    lib: Lib,
) -> None:
    # Its frame kept the task, the default borrower, and the cancellation's
    # traceback kept the frame: a cycle, which only the collector freed.
    limiter = loopsync.CapacityLimiter(1)
    tasks: list[weakref.ref[Any]] = []

    async def wait() -> None:
        tasks.append(weakref.ref(asyncio.current_task()))
        async with limiter:
            pass

    async def main() -> None:
        limiter.acquire_on_behalf_of_nowait("holder")
        # Plain tasks: the test's task groups keep theirs in cycles of their own.
        waiting = [asyncio.create_task(wait()) for _ in range(3)]
        await lib.settle()
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        limiter.release_on_behalf_of("holder")

    gc.collect()
    gc.disable()
    try:
        lib.run(main)
        assert [task() for task in tasks] == [None, None, None]
    finally:
        gc.enable()


# -- asyncio: no yield when a token is free ----------------------------------------


@pytest.mark.family("asyncio")
async def test_a_free_token_is_taken_without_yielding(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(3)
    for coro in (limiter.acquire(), limiter.acquire_on_behalf_of("job")):
        with pytest.raises(StopIteration) as stopped:
            coro.send(None)
        assert stopped.value.value is None
    assert limiter.borrowed_tokens == 2
    limiter.release()
    with pytest.raises(StopIteration):
        limiter.__aenter__().send(None)
    assert limiter.borrowed_tokens == 2


@pytest.mark.family("asyncio")
async def test_the_default_borrower_is_the_asyncio_task(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(2)
    task = asyncio.current_task()
    await limiter.acquire()
    assert limiter.statistics().borrowers == [task]
    # So a borrower of its own may be given back on the task's behalf.
    limiter.release_on_behalf_of(task)
    assert limiter.borrowed_tokens == 0


@pytest.mark.libs("asyncio", "uvloop")
async def test_a_token_lent_to_a_cancelled_waiter_with_nobody_else_waiting_is_freed(
    lib: Lib,
) -> None:
    limiter = loopsync.CapacityLimiter(1)
    limiter.acquire_on_behalf_of_nowait("holder")
    async with lib.task_group() as group:
        waiter = await lib.start_queued(group, limiter.acquire_on_behalf_of, "waiter")
        limiter.release_on_behalf_of("holder")
        assert limiter.statistics().borrowers == ["waiter"]
        waiter.cancel()
        await lib.settle()
    assert waiter.outcome == "cancelled"
    assert limiter.borrowed_tokens == 0
    limiter.acquire_nowait()
    limiter.release()


# -- trio: every acquire is a checkpoint --------------------------------------------


@pytest.mark.family("trio")
async def test_acquiring_is_a_checkpoint_even_with_a_free_token(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(3)
    with trio.testing.assert_checkpoints():
        await limiter.acquire()
    with trio.testing.assert_checkpoints():
        await limiter.acquire_on_behalf_of("job")
    limiter.release()
    with trio.testing.assert_checkpoints():
        async with limiter:
            pass
    assert limiter.statistics().borrowers == ["job"]


@pytest.mark.family("trio")
async def test_a_cancelled_acquire_is_lent_no_token(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(1)
    with trio.CancelScope() as scope:
        scope.cancel()
        await limiter.acquire()
    assert scope.cancelled_caught
    assert limiter.borrowed_tokens == 0
    # The checkpoint comes first, as in trio: before the borrower is checked.
    limiter.acquire_on_behalf_of_nowait("job")
    with trio.CancelScope() as scope:
        scope.cancel()
        await limiter.acquire_on_behalf_of("job")
    assert scope.cancelled_caught
    assert limiter.statistics().borrowers == ["job"]


@pytest.mark.family("trio")
async def test_the_default_borrower_is_the_trio_task(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(1)
    await limiter.acquire()
    assert limiter.statistics().borrowers == [trio.lowlevel.current_task()]
    limiter.release_on_behalf_of(trio.lowlevel.current_task())
    assert limiter.borrowed_tokens == 0


@pytest.mark.family("trio")
@trio_rule_from((0, 32), "total_tokens may be 0")
async def test_agrees_with_trio_s_capacity_limiter(lib: Lib) -> None:
    async def scenario(limiter: Any) -> list[object]:
        seen: list[object] = []

        def observe() -> None:
            stats = limiter.statistics()
            seen.append(
                (
                    stats.borrowed_tokens,
                    stats.total_tokens,
                    sorted(stats.borrowers),
                    stats.tasks_waiting,
                    limiter.available_tokens,
                )
            )

        limiter.acquire_on_behalf_of_nowait("a")
        async with lib.task_group() as group:
            waiters = [
                await lib.start_queued(group, limiter.acquire_on_behalf_of, name) for name in "bcd"
            ]
            observe()
            waiters[0].cancel()
            await lib.settle()
            observe()
            limiter.release_on_behalf_of("a")
            observe()
            limiter.total_tokens = 3
            observe()
            limiter.total_tokens = 0
            observe()
            group.cancel_all()  # none is left waiting, unless tokens were not lent
        for name in "cd":
            limiter.release_on_behalf_of(name)
        observe()
        return seen

    assert await scenario(loopsync.CapacityLimiter(1)) == await scenario(trio.CapacityLimiter(1))


@pytest.mark.family("trio")
async def test_would_block_is_trio_s(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(0)
    try:
        limiter.acquire_nowait()
    except trio.WouldBlock:
        pass
    else:
        pytest.fail("acquire_nowait() did not raise")
    assert limiter.borrowed_tokens == 0


@pytest.mark.libs("trio", "anyio-asyncio", "anyio-trio")
async def test_limits_worker_threads_as_the_library_s_own(lib: Lib) -> None:
    limiter = loopsync.CapacityLimiter(1)
    borrowed_while_running: list[int] = []

    def work() -> int:
        borrowed_while_running.append(limiter.borrowed_tokens)
        return 7

    run_sync: Any = trio.to_thread.run_sync if lib.name == "trio" else anyio.to_thread.run_sync
    assert await run_sync(work, limiter=limiter) == 7
    assert borrowed_while_running == [1]
    assert limiter.statistics() == loopsync.CapacityLimiterStatistics(0, 1, [], 0)
