"""Barrier under every library."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

import loopsync
from contexts import Handle
from libs import Lib
from loopsync._waitqueue import WaiterQueue

T = TypeVar("T")


def state(barrier: loopsync.Barrier) -> str:
    """The bracketed part of the repr."""
    return repr(barrier).rsplit(" [", 1)[1].rstrip("]>")


# -- construction and bad input ------------------------------------------------


@pytest.mark.parametrize("parties", [0, -1])
def test_parties_below_one_is_a_value_error(parties: int) -> None:
    with pytest.raises(ValueError, match=r"^parties must be > 0$"):
        loopsync.Barrier(parties)


@pytest.mark.parametrize("parties", [2.0, "2", None])
def test_non_integer_parties_is_a_type_error(parties: object) -> None:
    expected = f"parties must be an integer, not {type(parties).__name__}"
    with pytest.raises(TypeError, match=expected):
        loopsync.Barrier(parties)  # type: ignore[arg-type]


def test_non_callable_action_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"^action must be callable or None, not int$"):
        loopsync.Barrier(2, action=3)  # type: ignore[arg-type]


def test_properties_and_repr() -> None:
    barrier = loopsync.Barrier(3)
    assert barrier.parties == 3
    assert barrier.n_waiting == 0
    assert not barrier.broken
    assert repr(barrier).startswith("<loopsync.Barrier object at 0x")
    assert state(barrier) == "filling, waiters:0/3"


async def test_await_barrier_is_a_type_error(lib: Lib) -> None:
    with pytest.raises(TypeError):
        await loopsync.Barrier(1)  # type: ignore[misc]


# -- passing the barrier ---------------------------------------------------------


async def test_one_party_passes_at_once(lib: Lib) -> None:
    barrier = loopsync.Barrier(1)
    for _ in range(3):
        assert await barrier.wait() == 0
    assert state(barrier) == "filling, waiters:0/1"


async def test_parties_are_released_together_with_arrival_indices(lib: Lib) -> None:
    barrier = loopsync.Barrier(3)
    async with lib.task_group() as group:
        first = await lib.start_queued(group, barrier.wait)
        second = await lib.start_queued(group, barrier.wait)
        assert barrier.n_waiting == 2
        assert state(barrier) == "filling, waiters:2/3"
        assert not first.done
        assert await barrier.wait() == 2
        if lib.family == "asyncio":
            # The others have been released but have not resumed yet.
            assert state(barrier) == "draining, waiters:0/3"
            assert barrier.n_waiting == 0
        await lib.settle()
    assert (first.result, second.result) == (0, 1)
    assert state(barrier) == "filling, waiters:0/3"


async def test_async_with_gives_the_index(lib: Lib) -> None:
    barrier = loopsync.Barrier(2)
    indices: list[int] = []

    async def party() -> None:
        async with barrier as index:
            indices.append(index)

    async with lib.task_group() as group:
        await lib.start_queued(group, party)
        await lib.start_queued(group, party)
    assert sorted(indices) == [0, 1]


async def test_many_cycles(lib: Lib) -> None:
    barrier = loopsync.Barrier(4)
    results: list[list[int]] = [[] for _ in range(5)]

    async def party() -> None:
        for cycle in range(5):
            results[cycle].append(await barrier.wait())

    async with lib.task_group() as group:
        for _ in range(4):
            group.start(party)
    assert all(sorted(indices) == [0, 1, 2, 3] for indices in results)
    assert barrier.n_waiting == 0


async def test_arrival_during_the_trip_step_joins_the_next_cycle(lib: Lib) -> None:
    barrier = loopsync.Barrier(2)
    async with lib.task_group() as group:
        first = await lib.start_queued(group, barrier.wait)
        second, third = group.start(barrier.wait), group.start(barrier.wait)
        await lib.settle()
        # One of the two tripped the barrier with "first"; the other arrived
        # while it drained, so it waits for a partner in the next cycle.
        assert sorted(handle.done for handle in (second, third)) == [False, True]
        assert state(barrier) == "filling, waiters:1/2"
        assert await barrier.wait() == 1
    assert first.result == 0
    assert sorted([second.result, third.result]) == [0, 1]


async def test_more_arrivals_during_the_trip_step_than_parties(lib: Lib) -> None:
    barrier = loopsync.Barrier(2)
    async with lib.task_group() as group:
        first = await lib.start_queued(group, barrier.wait)
        late = [group.start(barrier.wait) for _ in range(6)]
        await lib.settle()
        # Three cycles of two went through; one task waits for a partner.
        assert sum(handle.done for handle in late) == 5
        assert barrier.n_waiting == 1
        assert await barrier.wait() == 1
    assert first.result == 0
    assert sorted(handle.result for handle in late) == [0, 0, 0, 1, 1, 1]


@pytest.mark.family("asyncio")
async def test_cancelled_while_blocked_by_draining(lib: Lib) -> None:
    barrier = loopsync.Barrier(2)
    async with lib.task_group() as group:
        first = await lib.start_queued(group, barrier.wait)
        tripper, blocked = group.start(barrier.wait), group.start(barrier.wait)
        await lib.checkpoint()
        # "tripper" tripped the barrier, "blocked" arrived after it, and
        # "first" has not resumed yet.
        assert state(barrier) == "draining, waiters:0/2"
        blocked.cancel()
        await lib.settle()
    assert blocked.outcome == "cancelled"
    assert (first.result, tripper.result) == (0, 1)
    assert state(barrier) == "filling, waiters:0/2"


@pytest.mark.family("asyncio")
async def test_abort_wakes_arrivals_blocked_by_draining(lib: Lib) -> None:
    barrier = loopsync.Barrier(2)
    async with lib.task_group() as group:
        first = await lib.start_queued(group, barrier.wait)
        tripper, blocked = group.start(barrier.wait), group.start(barrier.wait)
        await lib.checkpoint()
        await barrier.abort()
        await lib.settle()
        # Inside the group, which would otherwise wait for a task left blocked.
        assert tripper.result == 1
        # Released by the trip but aborted before it resumed, as in asyncio.
        assert isinstance(first.exception, loopsync.BrokenBarrierError)
        assert isinstance(blocked.exception, loopsync.BrokenBarrierError)
        assert str(blocked.exception) == "Barrier aborted"


# -- reset and abort -------------------------------------------------------------


async def test_reset_while_filling_breaks_current_waiters(lib: Lib) -> None:
    barrier = loopsync.Barrier(3)
    async with lib.task_group() as group:
        waiters = [await lib.start_queued(group, barrier.wait) for _ in range(2)]
        await barrier.reset()
        if lib.family == "asyncio":
            assert state(barrier) == "resetting, waiters:0/3"
        await lib.settle()
        assert state(barrier) == "filling, waiters:0/3"
        for handle in waiters:
            assert handle.outcome == "raised"
            assert isinstance(handle.exception, loopsync.BrokenBarrierError)
            assert str(handle.exception) == "Abort or reset of barrier"
        # The barrier works again after the reset.
        again = await lib.start_queued(group, barrier.wait)
        await lib.start_queued(group, barrier.wait)
        assert await barrier.wait() == 2
    assert again.result == 0


async def test_reset_of_an_empty_barrier(lib: Lib) -> None:
    barrier = loopsync.Barrier(2)
    await barrier.reset()
    assert state(barrier) == "filling, waiters:0/2"


async def test_arrival_while_resetting_waits_for_the_next_cycle(lib: Lib) -> None:
    barrier = loopsync.Barrier(2)
    async with lib.task_group() as group:
        old = await lib.start_queued(group, barrier.wait)
        await barrier.reset()
        new = group.start(barrier.wait)
        await lib.settle()
        assert isinstance(old.exception, loopsync.BrokenBarrierError)
        assert not new.done
        assert barrier.n_waiting == 1
        assert await barrier.wait() == 1
    assert new.result == 0


@pytest.mark.family("asyncio")
async def test_reset_while_draining_breaks_released_parties(lib: Lib) -> None:
    # As in asyncio: a party released by the trip that has not resumed yet
    # when reset() is called gets BrokenBarrierError instead of its index.
    barrier = loopsync.Barrier(2)
    async with lib.task_group() as group:
        first = await lib.start_queued(group, barrier.wait)
        assert await barrier.wait() == 1
        await barrier.reset()
        assert state(barrier) == "resetting, waiters:0/2"
        await lib.settle()
    assert isinstance(first.exception, loopsync.BrokenBarrierError)
    assert state(barrier) == "filling, waiters:0/2"


@pytest.mark.family("asyncio")
async def test_reset_while_draining_lets_blocked_arrivals_in_first(lib: Lib) -> None:
    # As asyncio's reset() does, it wakes the tasks that arrived while the
    # barrier drained, so they get in as soon as the last released task has
    # left, ahead of tasks that arrive after the reset.
    barrier = loopsync.Barrier(2)
    async with lib.task_group() as group:
        first = await lib.start_queued(group, barrier.wait)
        tripper, blocked = group.start(barrier.wait), group.start(barrier.wait)
        await lib.checkpoint()
        await barrier.reset()
        late = group.start(barrier.wait)
        await lib.settle()
    assert isinstance(first.exception, loopsync.BrokenBarrierError)
    assert tripper.result == 1
    assert (blocked.result, late.result) == (0, 1)


async def test_abort_breaks_current_and_future_waiters(lib: Lib) -> None:
    barrier = loopsync.Barrier(3)
    async with lib.task_group() as group:
        waiter = await lib.start_queued(group, barrier.wait)
        await barrier.abort()
        assert barrier.broken
        assert state(barrier) == "broken"
        assert barrier.n_waiting == 0
        await lib.settle()
        assert isinstance(waiter.exception, loopsync.BrokenBarrierError)
        with pytest.raises(loopsync.BrokenBarrierError, match=r"^Barrier aborted$"):
            await barrier.wait()
        await barrier.reset()
        assert not barrier.broken
        await lib.start_queued(group, barrier.wait)
        assert barrier.n_waiting == 1
        await barrier.abort()


async def test_reset_while_broken_with_parties_leaving(lib: Lib) -> None:
    barrier = loopsync.Barrier(3)
    async with lib.task_group() as group:
        waiters = [await lib.start_queued(group, barrier.wait) for _ in range(2)]
        await barrier.abort()
        await barrier.reset()
        await lib.settle()
    assert all(isinstance(h.exception, loopsync.BrokenBarrierError) for h in waiters)
    assert state(barrier) == "filling, waiters:0/3"


# -- cancellation ----------------------------------------------------------------


async def test_cancelled_filler_leaves_without_breaking(lib: Lib) -> None:
    barrier = loopsync.Barrier(3)
    async with lib.task_group() as group:
        first = await lib.start_queued(group, barrier.wait)
        second = await lib.start_queued(group, barrier.wait)
        first.cancel()
        assert barrier.n_waiting == 1  # at once, before the task has run
        await lib.settle()
        assert first.outcome == "cancelled"
        assert not barrier.broken
        third = await lib.start_queued(group, barrier.wait)
        assert await barrier.wait() == 2
    assert (second.result, third.result) == (0, 1)


class CountingQueue(WaiterQueue):
    """A waiter queue that counts how often its waiters are counted."""

    __slots__ = ("sweeps",)

    def __init__(self) -> None:
        super().__init__()
        self.sweeps = 0

    def count_waiting(self) -> int:
        self.sweeps += 1
        return super().count_waiting()


async def test_fillers_timing_out_one_after_another_leave_without_a_sweep(lib: Lib) -> None:
    # A filler cancelled as the last to arrive is dropped at the next arrival;
    # the fillers are only counted one by one when an arrival may trip.
    barrier = loopsync.Barrier(5)
    barrier._fillers = fillers = CountingQueue()
    async with lib.task_group() as group:
        for _ in range(3):
            await lib.start_queued(group, barrier.wait)
        for _ in range(100):
            late = await lib.start_queued(group, barrier.wait)
            late.cancel()
            await lib.settle()
            assert late.outcome == "cancelled"
        # Each cancelled filler, the last to arrive, left the queue at once;
        # otherwise every arrival after the first cancellation would count.
        assert fillers.sweeps == 0
        assert len(barrier._fillers) <= 4
        assert barrier.n_waiting == 3
        last = await lib.start_queued(group, barrier.wait)
        assert await barrier.wait() == 4
    assert fillers.sweeps == 2  # n_waiting counted the fillers once, and the trip once
    assert [handle.result for handle in group.handles if handle.outcome == "returned"] == [
        0,
        1,
        2,
        3,
    ]
    assert last.result == 3


async def test_fillers_timing_out_together_leave_without_a_sweep(lib: Lib) -> None:
    # The first of a batch of cancelled fillers to leave takes the cancelled
    # tail with it, whatever order their tasks leave in.
    barrier = loopsync.Barrier(5)
    barrier._fillers = fillers = CountingQueue()
    async with lib.task_group() as group:
        await lib.start_queued(group, barrier.wait)
        for _ in range(50):
            batch = [await lib.start_queued(group, barrier.wait) for _ in range(3)]
            for late in batch:
                late.cancel()
            await lib.settle()
            assert [late.outcome for late in batch] == ["cancelled"] * 3
            assert len(barrier._fillers) == 1
        assert fillers.sweeps == 0
        for _ in range(3):
            await lib.start_queued(group, barrier.wait)
        assert await barrier.wait() == 4
    returned = [handle.result for handle in group.handles if handle.outcome == "returned"]
    assert sorted(returned) == [0, 1, 2, 3]


async def test_gh_155233_indices_stay_unique_after_a_cancelled_filler(lib: Lib) -> None:
    # asyncio.Barrier gives the next arrival the index of the last one after
    # a filler is cancelled; loopsync numbers the parties that pass.
    barrier = loopsync.Barrier(3)
    async with lib.task_group() as group:
        first = await lib.start_queued(group, barrier.wait)
        second = await lib.start_queued(group, barrier.wait)
        first.cancel()
        await lib.settle()
        third = await lib.start_queued(group, barrier.wait)
        assert await barrier.wait() == 2
    assert sorted([second.result, third.result, 2]) == [0, 1, 2]


@pytest.mark.libs("asyncio", "uvloop")
async def test_released_party_cancelled_before_it_resumes(lib: Lib) -> None:
    # As in asyncio: the party raises CancelledError, the others pass, and the
    # barrier is not broken.
    barrier = loopsync.Barrier(3)
    async with lib.task_group() as group:
        first = await lib.start_queued(group, barrier.wait)
        second = await lib.start_queued(group, barrier.wait)
        assert await barrier.wait() == 2
        first.cancel()
        await lib.settle()
    assert first.outcome == "cancelled"
    assert second.result == 1
    assert state(barrier) == "filling, waiters:0/3"


@pytest.mark.family("asyncio")
async def test_cancelling_a_blocked_arrival_keeps_the_others_in_order(lib: Lib) -> None:
    # asyncio's Condition would wake "b1" for nothing here and queue it again
    # behind "b2"; loopsync keeps the order of arrival.
    barrier = loopsync.Barrier(2)
    async with lib.task_group() as group:
        await lib.start_queued(group, barrier.wait)
        group.start(barrier.wait)  # trips the barrier
        b1, b2, b3 = (group.start(barrier.wait) for _ in range(3))
        await lib.checkpoint()
        assert state(barrier) == "draining, waiters:0/2"
        b3.cancel()
        await lib.settle()
    assert b3.outcome == "cancelled"
    assert (b1.result, b2.result) == (0, 1)


# -- the action ------------------------------------------------------------------


async def test_action_runs_once_per_trip_before_release(lib: Lib) -> None:
    calls: list[int] = []
    barrier = loopsync.Barrier(3, action=lambda: calls.append(barrier.n_waiting))
    async with lib.task_group() as group:
        for _ in range(6):
            group.start(barrier.wait)
    # Both times, the action ran while the other two parties still waited.
    assert calls == [2, 2]


async def test_an_action_returning_something_to_await_breaks_the_barrier(lib: Lib) -> None:
    # Awaited by nobody, its work never ran: a barrier that tripped as if it
    # had, with only a "never awaited" warning from the garbage collector.
    done: list[str] = []

    async def announce() -> None:
        done.append("announced")

    barrier = loopsync.Barrier(2, action=lambda: announce())
    async with lib.task_group() as group:
        other = await lib.start_queued(group, barrier.wait)
        with pytest.raises(
            TypeError, match=r"^action returned a coroutine, which a barrier cannot await$"
        ):
            await barrier.wait()
    assert isinstance(other.exception, loopsync.BrokenBarrierError)
    assert barrier.broken
    assert done == []


async def test_an_action_that_cancels_a_waiting_party_leaves_the_barrier_usable(lib: Lib) -> None:
    # The trip counted the parties leaving before the action ran: one it
    # cancelled never left by the trip, and the barrier drained for good.
    to_cancel: list[Handle] = []

    def cancel_once() -> None:
        while to_cancel:
            to_cancel.pop().cancel()

    barrier = loopsync.Barrier(3, action=cancel_once)
    async with lib.task_group() as group:
        parties = [await lib.start_queued(group, barrier.wait) for _ in range(2)]
        to_cancel.append(parties[0])
        assert await barrier.wait() == 2
        await lib.settle()
        assert parties[0].outcome == "cancelled"
        assert parties[1].result == 0
        next_cycle = [group.start(barrier.wait) for _ in range(3)]
    assert sorted(party.result for party in next_cycle) == [0, 1, 2]
    assert repr(barrier).endswith("[filling, waiters:0/3]>")


needs_eager_tasks = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="asyncio starts tasks eagerly from Python 3.12"
)


def start_eagerly(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Run *coro* as a new task right now, up to its first suspension."""
    loop = asyncio.get_running_loop()
    return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg, unused-ignore]


# trio starts no task before its parent yields: an action cannot re-enter there.
@needs_eager_tasks
@pytest.mark.family("asyncio")
@pytest.mark.parametrize("update", ["abort", "reset"])
async def test_an_abort_or_reset_started_by_the_action_outlasts_the_trip(
    lib: Lib, update: str
) -> None:
    # The trip went on after the action as if nothing had happened, and set
    # the barrier draining over the abort: the abort was lost.
    updates: list[asyncio.Task[None]] = []
    barrier = loopsync.Barrier(
        3, action=lambda: updates.append(start_eagerly(getattr(barrier, update)()))
    )
    async with lib.task_group() as group:
        others = [await lib.start_queued(group, barrier.wait) for _ in range(2)]
        assert await barrier.wait() == 2
        assert updates[0].done()
        await lib.settle()
    assert all(isinstance(other.exception, loopsync.BrokenBarrierError) for other in others)
    assert barrier.broken is (update == "abort")
    assert state(barrier) == ("broken" if update == "abort" else "filling, waiters:0/3")


@needs_eager_tasks
@pytest.mark.family("asyncio")
@pytest.mark.parametrize("parties", [1, 3])
async def test_an_arrival_started_by_the_action_waits_for_the_next_cycle(
    lib: Lib, parties: int
) -> None:
    # It arrived while the trip was under way, found the others still
    # filling, and tripped the barrier a second time with them.
    trips: list[None] = []
    late: list[asyncio.Task[int]] = []

    def action() -> None:
        trips.append(None)
        if len(trips) == 1:
            late.append(start_eagerly(barrier.wait()))

    barrier = loopsync.Barrier(parties, action=action)
    async with lib.task_group() as group:
        first = [await lib.start_queued(group, barrier.wait) for _ in range(parties - 1)]
        assert await barrier.wait() == parties - 1
        assert not late[0].done()
        assert len(trips) == 1
        await lib.settle()
        assert sorted(party.result for party in first) == list(range(parties - 1))
        next_cycle = [group.start(barrier.wait) for _ in range(parties - 1)]
    indices = [await late[0], *(party.result for party in next_cycle)]
    assert sorted(indices) == list(range(parties))


@needs_eager_tasks
@pytest.mark.family("asyncio")
async def test_a_reset_started_by_the_action_reopens_the_barrier_once_the_trip_is_done(
    lib: Lib,
) -> None:
    # The reset reopened the barrier at once, and the same task's next
    # arrival tripped it again: the action ran inside itself.
    calls: list[None] = []
    depth = deepest = 0
    later: list[asyncio.Task[int]] = []

    async def reset_then_arrive() -> int:
        await barrier.reset()
        return await barrier.wait()

    def action() -> None:
        nonlocal depth, deepest
        calls.append(None)
        depth += 1
        deepest = max(deepest, depth)
        if len(calls) == 1:
            later.append(start_eagerly(reset_then_arrive()))
        depth -= 1

    barrier = loopsync.Barrier(1, action=action)
    assert await barrier.wait() == 0
    assert state(barrier) == "filling, waiters:0/1"
    assert await later[0] == 0
    assert (len(calls), deepest) == (2, 1)


async def test_failing_action_breaks_the_barrier(lib: Lib) -> None:
    def fail() -> None:
        raise KeyError("action failed")

    barrier = loopsync.Barrier(2, action=fail)
    async with lib.task_group() as group:
        other = await lib.start_queued(group, barrier.wait)
        with pytest.raises(KeyError, match="action failed"):
            await barrier.wait()
        await lib.settle()
        # Checked inside the group, which would otherwise wait for the other
        # task forever if the barrier were not broken.
        assert barrier.broken
        assert isinstance(other.exception, loopsync.BrokenBarrierError)
