"""Event under every library: asyncio.Event's rules under asyncio, trio.Event's under trio.

Under trio it also has clear(), which trio's has not, and refuses to be a truth
value, as trio's does.
"""

from __future__ import annotations

import asyncio
import copy
import pickle
import weakref
from dataclasses import FrozenInstanceError
from typing import Any

import pytest
import trio
import trio.testing

import loopsync
from libs import LIBS, Lib, trio_rule_from

# -- construction, repr, statistics ---------------------------------------------


def test_a_new_event_is_not_set() -> None:
    event = loopsync.Event()
    assert not event.is_set()
    assert event.statistics() == loopsync.EventStatistics(tasks_waiting=0)
    assert repr(event).startswith("<loopsync.Event object at 0x")
    assert repr(event).endswith(" [unset]>")


def test_set_and_clear_work_outside_any_library() -> None:
    event = loopsync.Event()
    event.set()
    assert event.is_set()
    assert repr(event).endswith(" [set]>")
    event.set()  # setting a set event changes nothing
    assert event.is_set()
    event.clear()
    assert not event.is_set()
    event.clear()
    assert not event.is_set()
    # No library runs, so no library's rule applies: an object is true.
    assert bool(event) is True


async def test_repr_and_statistics_count_the_waiting_tasks(lib: Lib) -> None:
    event = loopsync.Event()
    async with lib.task_group() as group:
        first = group.start(event.wait)
        group.start(event.wait)
        await lib.settle()
        assert repr(event).endswith(" [unset, waiters:2]>")
        assert event.statistics() == loopsync.EventStatistics(tasks_waiting=2)
        first.cancel()
        # A cancelled waiter stops counting at once, before its task runs.
        assert repr(event).endswith(" [unset, waiters:1]>")
        assert event.statistics().tasks_waiting == 1
        event.set()
        assert event.statistics().tasks_waiting == 0
        assert repr(event).endswith(" [set]>")


def test_statistics_are_read_only_values() -> None:
    stats = loopsync.Event().statistics()
    with pytest.raises(FrozenInstanceError, match=r"^cannot assign to field 'tasks_waiting'$"):
        stats.tasks_waiting = 1  # type: ignore[misc]
    assert stats == loopsync.EventStatistics(tasks_waiting=0)
    assert stats == loopsync.EventStatistics(0)
    assert hash(stats) == hash(loopsync.EventStatistics(0))
    assert stats != loopsync.EventStatistics(tasks_waiting=1)
    assert stats != loopsync.SemaphoreStatistics(tasks_waiting=0)
    assert copy.copy(stats) == pickle.loads(pickle.dumps(stats)) == stats
    assert repr(stats) == "EventStatistics(tasks_waiting=0)"


# -- copies, pickles, weak references --------------------------------------------


@pytest.mark.parametrize(
    "duplicate",
    [copy.copy, copy.deepcopy, lambda event: pickle.loads(pickle.dumps(event))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_copies_and_pickles_keep_the_flag(duplicate: Any) -> None:
    event = loopsync.Event()
    event.tag = "kept"  # type: ignore[attr-defined]
    assert not duplicate(event).is_set()
    event.set()
    copied = duplicate(event)
    assert type(copied) is loopsync.Event
    assert copied.is_set()
    assert copied.tag == "kept"
    copied.clear()
    assert event.is_set()


async def test_an_event_with_waiting_tasks_refuses_to_be_copied(lib: Lib) -> None:
    event = loopsync.Event()
    async with lib.task_group() as group:
        group.start(event.wait)
        await lib.settle()
        with pytest.raises(
            TypeError, match=r"^cannot pickle or copy <loopsync\.Event .*waiters:1\]>"
        ):
            pickle.dumps(event)
        event.set()
    assert pickle.loads(pickle.dumps(event)).is_set()


def test_weak_references() -> None:
    event = loopsync.Event()
    ref = weakref.ref(event)
    assert ref() is event
    del event
    assert ref() is None


# -- under every library -----------------------------------------------------------


async def test_set_wakes_every_waiting_task(lib: Lib) -> None:
    event = loopsync.Event()
    async with lib.task_group() as group:
        waiters = [group.start(event.wait) for _ in range(5)]
        await lib.settle()
        assert not any(waiter.done for waiter in waiters)
        event.set()
        assert event.is_set()
        await lib.settle()
        assert [waiter.result for waiter in waiters] == [True] * 5


async def test_wait_on_a_set_event_returns_true(lib: Lib) -> None:
    event = loopsync.Event()
    event.set()
    assert await event.wait() is True
    assert await event.wait() is True
    assert event.is_set()


async def test_clear_makes_wait_block_again(lib: Lib) -> None:
    event = loopsync.Event()
    event.set()
    event.clear()
    assert not event.is_set()
    async with lib.task_group() as group:
        waiter = group.start(event.wait)
        await lib.settle()
        assert not waiter.done
        assert event.statistics().tasks_waiting == 1
        event.set()
    assert waiter.result is True


async def test_set_then_clear_before_the_waiters_run_still_releases_them(lib: Lib) -> None:
    event = loopsync.Event()
    async with lib.task_group() as group:
        waiters = [group.start(event.wait) for _ in range(3)]
        await lib.settle()
        event.set()
        event.clear()
        late = group.start(event.wait)  # arrives after the clear: it waits
        await lib.settle()
        assert [waiter.outcome for waiter in waiters] == ["returned"] * 3
        assert not late.done
        assert event.statistics().tasks_waiting == 1
        event.set()
    assert late.result is True


async def test_cancelling_one_waiter_leaves_the_others_waiting(lib: Lib) -> None:
    event = loopsync.Event()
    async with lib.task_group() as group:
        waiters = [group.start(event.wait) for _ in range(3)]
        await lib.settle()
        waiters[1].cancel()
        await lib.settle()
        assert [waiter.outcome for waiter in waiters] == ["running", "cancelled", "running"]
        assert event.statistics().tasks_waiting == 2
        event.set()
    assert [waiter.outcome for waiter in waiters] == ["returned", "cancelled", "returned"]


async def test_thousands_of_waiters_are_all_woken(lib: Lib) -> None:
    # Native tasks, without the per-task cancel scopes of lib.task_group();
    # fewer under trio and anyio, whose tasks take longer to start, so that
    # the test stays quick.
    event = loopsync.Event()
    count = 10_000 if lib.name in ("asyncio", "uvloop") else 3_000
    results: list[bool] = []

    async def wait() -> None:
        results.append(await event.wait())

    if lib.family == "trio":
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(wait)
            await lib.settle()
            assert event.statistics().tasks_waiting == count
            event.set()
            assert event.statistics().tasks_waiting == 0
    else:
        tasks = [asyncio.ensure_future(wait()) for _ in range(count)]
        await lib.settle()
        assert event.statistics().tasks_waiting == count
        event.set()
        assert event.statistics().tasks_waiting == 0
        await asyncio.gather(*tasks)
    assert results == [True] * count


async def test_cancelled_waiters_do_not_pile_up_in_the_queue(lib: Lib) -> None:
    # Ten tasks keep waiting while a thousand come and are cancelled: the
    # queue (read before statistics(), which sweeps it) stays near the size
    # of the live waiters instead of growing with every cancelled one.
    event = loopsync.Event()
    async with lib.task_group() as group:
        live = [group.start(event.wait) for _ in range(10)]
        await lib.settle()
        longest = 0
        for _ in range(20):
            batch = [group.start(event.wait) for _ in range(50)]
            await lib.settle()
            for handle in batch:
                handle.cancel()
            await lib.settle()
            longest = max(longest, len(event._waiters))
        assert longest <= 10 + 50 + 65
        assert event.statistics().tasks_waiting == 10
        event.set()
    assert all(handle.result is True for handle in live)


async def test_events_and_the_library_s_own_primitives_together(lib: Lib) -> None:
    # A relay: each task waits on its loopsync event, then sets a native one,
    # and the next task waits on that one and sets the next loopsync event.
    ours = [loopsync.Event() for _ in range(3)]
    natives = [lib.new_event() for _ in range(3)]
    log: list[int] = []

    async def relay(number: int) -> None:
        await ours[number].wait()
        log.append(number)
        natives[number].set()
        if number + 1 < len(ours):
            await natives[number].wait()
            ours[number + 1].set()

    async with lib.task_group() as group:
        for number in reversed(range(3)):
            group.start(relay, number)
        await lib.settle()
        assert log == []
        ours[0].set()
    assert log == [0, 1, 2]


def test_one_event_under_every_library_in_turn() -> None:
    # Waiting under trio binds nothing; the first asyncio run that waits
    # binds the event, after which other asyncio runs can still set, clear
    # and wait on it while it is set.
    event = loopsync.Event()

    async def wait_for_set(lib: Lib) -> bool:
        event.clear()
        async with lib.task_group() as group:
            waiter = group.start(event.wait)
            await lib.settle()
            assert not waiter.done
            event.set()
        return bool(waiter.result)

    async def set_and_wait() -> bool:
        event.clear()
        event.set()
        return await event.wait()

    order = sorted(LIBS, key=lambda lib: lib.family != "trio")
    first_asyncio = next(lib for lib in order if lib.family == "asyncio")
    for lib in order:
        if lib.family == "asyncio" and lib is not first_asyncio:
            assert lib.run(set_and_wait) is True
        else:
            assert lib.run(wait_for_set, lib) is True


# -- asyncio: asyncio.Event of Python 3.13 -----------------------------------------


@pytest.mark.family("asyncio")
async def test_wait_on_a_set_event_does_not_yield(lib: Lib) -> None:
    event = loopsync.Event()
    event.set()
    coro = event.wait()
    with pytest.raises(StopIteration) as stopped:
        coro.send(None)
    assert stopped.value.value is True


@pytest.mark.family("asyncio")
async def test_an_event_is_true_under_asyncio(lib: Lib) -> None:
    event = loopsync.Event()
    assert bool(event) is True
    event.set()
    assert bool(event) is True


@pytest.mark.libs("asyncio", "uvloop")
async def test_a_woken_waiter_cancelled_before_it_runs_does_not_affect_the_others(
    lib: Lib,
) -> None:
    event = loopsync.Event()
    async with lib.task_group() as group:
        waiters = [group.start(event.wait) for _ in range(3)]
        await lib.settle()
        event.set()
        waiters[0].cancel()
        await lib.settle()
    assert [waiter.outcome for waiter in waiters] == ["cancelled", "returned", "returned"]
    assert event.is_set()


@pytest.mark.libs("asyncio", "uvloop")
async def test_agrees_with_asyncio_event(lib: Lib) -> None:
    async def scenario(event: Any) -> list[object]:
        seen: list[object] = []
        tasks = [asyncio.ensure_future(event.wait()) for _ in range(3)]
        await asyncio.sleep(0)
        tasks[2].cancel()
        event.set()
        event.clear()
        tasks[0].cancel()
        late = asyncio.ensure_future(event.wait())
        await asyncio.sleep(0)
        seen.append([task.cancelled() or task.result() for task in tasks])
        seen.append((late.done(), event.is_set()))
        event.set()
        seen.append(await late)
        return seen

    assert await scenario(loopsync.Event()) == await scenario(asyncio.Event())


# -- trio: trio.Event ---------------------------------------------------------------


@pytest.mark.family("trio")
async def test_wait_is_always_a_checkpoint(lib: Lib) -> None:
    event = loopsync.Event()
    event.set()
    with trio.testing.assert_checkpoints():
        assert await event.wait() is True
    with trio.CancelScope() as scope:
        scope.cancel()
        await event.wait()
    assert scope.cancelled_caught


@pytest.mark.family("trio")
@trio_rule_from((0, 34), "an event is not a truth value")
async def test_an_event_refuses_to_be_a_truth_value_as_trio_s_does(lib: Lib) -> None:
    with pytest.raises(NotImplementedError) as theirs:
        bool(trio.Event())
    event = loopsync.Event()
    for _ in range(2):
        with pytest.raises(NotImplementedError) as ours:
            bool(event)
        assert str(ours.value) == str(theirs.value)
        assert "event.is_set()" in str(ours.value)
        event.set()


@pytest.mark.family("trio")
async def test_statistics_agree_with_trio_s(lib: Lib) -> None:
    ours, theirs = loopsync.Event(), trio.Event()
    async with lib.task_group() as group:
        for event in (ours, theirs):
            group.start(event.wait)
            group.start(event.wait)
        await lib.settle()
        assert ours.statistics().tasks_waiting == theirs.statistics().tasks_waiting == 2
        ours.set()
        theirs.set()
        assert ours.statistics().tasks_waiting == theirs.statistics().tasks_waiting == 0


@pytest.mark.family("trio")
async def test_clear_exists_under_trio(lib: Lib) -> None:
    event = loopsync.Event()
    event.set()
    event.clear()
    with trio.CancelScope() as scope:
        scope.cancel()
        await event.wait()  # blocks again, so the cancelled scope ends it
    assert scope.cancelled_caught
    assert event.statistics().tasks_waiting == 0
