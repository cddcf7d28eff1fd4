"""The queue of parked waiters: FIFO, amortized O(1) cancellation, bounded memory."""

from __future__ import annotations

import contextvars
import gc
import weakref
from typing import Any

import loopsync
from libs import Lib
from loopsync._waitqueue import WaiterQueue


class FakeWaiter:
    """A waiter without a task, for testing the queue alone."""

    def __init__(self, queue: WaiterQueue) -> None:
        self.state = "pending"
        self.value: Any = None
        queue.park(self)  # type: ignore[arg-type]

    def done(self) -> bool:
        return self.state != "pending"

    def set_result(self, value: Any) -> None:
        assert self.state == "pending", "woke a waiter that is done"
        self.state, self.value = "woken", value

    def cancel(self) -> None:
        self.state = "cancelled"


def test_count_waiting_counts_only_waiters_still_waiting_and_drops_those_that_left() -> None:
    queue = WaiterQueue()
    waiters = [FakeWaiter(queue) for _ in range(6)]
    for index in (0, 2, 5):
        waiters[index].cancel()
    queue.note_cancelled(waiters[2])  # its task left; those of 0 and 5 have not yet
    assert len(queue) == 6  # cancelled ones stay until something passes them
    assert queue.count_waiting() == 3
    assert len(queue) == 5
    assert queue.wake_all_numbered() == 3
    assert [waiters[i].value for i in (1, 3, 4)] == [0, 1, 2]


def test_a_waiter_whose_task_leaves_first_is_dropped_at_once() -> None:
    queue = WaiterQueue()
    waiters = [FakeWaiter(queue) for _ in range(2)]
    waiters[0].cancel()
    queue.note_cancelled(waiters[0])
    assert list(queue) == [waiters[1]]


def test_wake_first_in_place_waits_for_a_cancelled_first_waiter_to_leave() -> None:
    # asyncio's Lock: a release that finds the first waiter cancelled wakes
    # nobody; the cancelled task passes the lock on as it leaves.
    queue = WaiterQueue()
    waiters = [FakeWaiter(queue) for _ in range(4)]
    waiters[0].cancel()
    waiters[1].cancel()
    assert queue.has_waiting_in_place()
    assert queue.wake_first_in_place("x") is None
    assert len(queue) == 4
    queue.note_cancelled(waiters[1])  # not first: it keeps the first's place
    assert queue.wake_first_in_place("x") is None
    queue.note_cancelled(waiters[0])
    assert queue.wake_first_in_place("x") is waiters[2]
    assert [w.value for w in waiters] == [None, None, "x", None]
    assert list(queue) == [waiters[3]]


def test_has_waiting_in_place_keeps_cancelled_waiters_whose_tasks_have_not_left() -> None:
    queue = WaiterQueue()
    waiters = [FakeWaiter(queue) for _ in range(2)]
    for waiter in waiters:
        waiter.cancel()
    assert not queue.has_waiting_in_place()
    assert len(queue) == 2
    queue.note_cancelled(waiters[1])
    queue.note_cancelled(waiters[0])
    assert not queue.has_waiting_in_place()
    assert not queue


def test_has_waiting_drops_cancelled_waiters_from_the_front() -> None:
    queue = WaiterQueue()
    waiters = [FakeWaiter(queue) for _ in range(3)]
    waiters[0].cancel()
    waiters[2].cancel()
    assert queue.has_waiting()
    assert len(queue) == 2
    waiters[1].cancel()
    assert not queue.has_waiting()
    assert not queue


def test_wake_first_passes_over_cancelled_waiters() -> None:
    queue = WaiterQueue()
    waiters = [FakeWaiter(queue) for _ in range(3)]
    waiters[0].cancel()
    assert queue.wake_first("x")
    assert [w.value for w in waiters] == [None, "x", None]
    waiters[2].cancel()
    assert not queue.wake_first("y")
    assert not queue


def test_drop_cancelled_tail_keeps_the_rest() -> None:
    queue = WaiterQueue()
    waiters = [FakeWaiter(queue) for _ in range(5)]
    for index in (1, 3, 4):
        waiters[index].cancel()
    queue.drop_cancelled_tail()
    assert len(queue) == 3
    assert queue.count_waiting() == 2


def test_cancelled_waiters_are_swept_out() -> None:
    queue = WaiterQueue()
    live = FakeWaiter(queue)
    for _ in range(10_000):
        waiter = FakeWaiter(queue)
        waiter.cancel()
        queue.note_cancelled(waiter)
        # The queue never holds more than about twice the live waiters, plus
        # a small constant.
        assert len(queue) <= 2 * 1 + 65
    assert queue.count_waiting() == 1
    assert queue.wake_all(1) == 1
    assert live.value == 1


async def test_memory_stays_bounded_while_waiters_time_out(lib: Lib) -> None:
    sem = loopsync.Semaphore(0)
    async with lib.task_group() as group:
        for _ in range(20):
            handles = [group.start(sem.acquire) for _ in range(50)]
            await lib.settle()
            for handle in handles:
                handle.cancel()
            await lib.settle()
        # 1000 waiters gave up while the semaphore stayed locked.
        assert sem.statistics().tasks_waiting == 0
        assert len(sem._waiters) <= 65


def test_a_queue_whose_waiters_all_left_keeps_none() -> None:
    # Those that left from the middle were kept until a sweep, with their
    # tasks (under trio, a task keeps its whole run alive).
    for order in ([1, 2, 0, 3], [0, 3, 1, 2], [2, 1, 3, 0]):
        queue = WaiterQueue()
        waiters = [FakeWaiter(queue) for _ in range(4)]
        for index in order:
            waiters[index].cancel()
            queue.note_cancelled(waiters[index])
        assert not queue
        assert not queue._left


def test_a_queue_emptied_by_wake_ups_keeps_no_waiter_passed_over() -> None:
    queue = WaiterQueue()
    waiters = [FakeWaiter(queue) for _ in range(4)]
    waiters[1].cancel()
    queue.note_cancelled(waiters[1])  # left from the middle
    waiters[0].cancel()  # its task has not left yet: passed over below
    assert queue.wake_first("a") is waiters[2]
    queue.note_cancelled(waiters[0])  # recorded, though passed over already
    assert queue.wake_first_in_place("b") is waiters[3]
    assert not queue
    assert not queue._left


def test_a_queue_emptied_by_moving_its_waiters_keeps_no_waiter_passed_over() -> None:
    # trio's Condition.notify() moves waiters to its lock: the queue kept
    # one passed over before its task left, with that task and its run.
    queue, lock_queue = WaiterQueue(), WaiterQueue()
    waiters = [FakeWaiter(queue) for _ in range(3)]
    waiters[0].cancel()  # its task has not left yet: passed over below
    assert queue.move_first(1, lock_queue) == [waiters[1]]
    queue.note_cancelled(waiters[0])  # recorded, though passed over already
    assert queue.move_first(1, lock_queue) == [waiters[2]]
    assert not queue
    assert not queue._left


async def test_a_condition_keeps_no_waiter_that_left_once_none_waits(lib: Lib) -> None:
    cond = loopsync.Condition()

    async def wait() -> None:
        async with cond:
            await cond.wait()

    async with lib.task_group() as group:
        handles = [await lib.start_queued(group, wait) for _ in range(3)]
        async with cond:
            handles[0].cancel()  # cancelled, and passed over before it runs
            cond.notify(1)
        await lib.settle()
        async with cond:
            cond.notify(1)
        await lib.settle()
    assert not cond._waiters
    assert not cond._waiters._left


async def test_waiters_that_left_are_not_kept_once_none_waits(lib: Lib) -> None:
    event = loopsync.Event()
    async with lib.task_group() as group:
        handles = [await lib.start_queued(group, event.wait) for _ in range(4)]
        for index in (1, 2, 0, 3):
            handles[index].cancel()
            await lib.settle()
    # Looked at before statistics(), which sweeps.
    assert not event._waiters
    assert not event._waiters._left
    assert event.statistics().tasks_waiting == 0


async def test_a_waiter_passed_over_keeps_no_hold_on_its_finished_task(lib: Lib) -> None:
    # A release passes over a cancelled waiter before its task has run; the
    # task, leaving, records the waiter until a sweep, with tasks still
    # queued. That record must not keep the finished task alive, nor what its
    # context holds (trio's and anyio's semaphores keep nothing).
    semaphore = loopsync.Semaphore(0)
    held: contextvars.ContextVar[object] = contextvars.ContextVar("held")
    payloads: list[weakref.ref[object]] = []

    class Payload:
        pass

    async def acquire_holding_a_payload() -> None:
        payload = Payload()
        payloads.append(weakref.ref(payload))
        held.set(payload)
        del payload
        await semaphore.acquire()

    async def cancel_the_first_as_a_permit_comes(behind: Any) -> str:
        async with lib.task_group() as group:
            first = await lib.start_queued(group, acquire_holding_a_payload)
            for _ in range(2):
                await lib.start_queued(behind, semaphore.acquire)
            first.cancel()
            semaphore.release()
        return first.outcome

    async with lib.task_group() as behind:
        assert await cancel_the_first_as_a_permit_comes(behind) == "cancelled"
        await lib.settle()
        gc.collect()
        # Looked at before statistics(), which sweeps.
        assert [ref() for ref in payloads] == [None]
        assert semaphore.statistics().tasks_waiting == 1
        semaphore.release()


def test_waking_all_keeps_no_waiter() -> None:
    # Not even one whose task left while it waited in the middle.
    queue = WaiterQueue()
    waiters = [FakeWaiter(queue) for _ in range(3)]
    waiters[1].cancel()
    queue.note_cancelled(waiters[1])
    left = weakref.ref(waiters[1])
    assert queue.wake_all("x") == 2
    del waiters
    gc.collect()
    assert left() is None


def test_wake_all_with_one_value() -> None:
    queue = WaiterQueue()
    waiters = [FakeWaiter(queue) for _ in range(3)]
    waiters[0].cancel()
    assert queue.wake_all("x") == 2
    assert [w.value for w in waiters] == [None, "x", "x"]
    assert not queue
    assert queue.wake_all(None) == 0
