"""The queue of parked waiters: FIFO, amortized O(1) cancellation, bounded memory."""

from __future__ import annotations

from typing import Any

import loopsync
from libs import Lib
from loopsync._waitqueue import WaiterQueue


class FakeWaiter:
    """A waiter without a task, for testing the queue alone."""

    def __init__(self, queue: WaiterQueue) -> None:
        self.state = "pending"
        self.value: Any = None
        queue.append(self)  # type: ignore[arg-type]

    def done(self) -> bool:
        return self.state != "pending"

    def set_result(self, value: Any) -> None:
        assert self.state == "pending", "woke a waiter that is done"
        self.state, self.value = "woken", value

    def cancel(self) -> None:
        self.state = "cancelled"


def test_waiting_counts_only_waiters_still_waiting() -> None:
    queue = WaiterQueue()
    waiters = [FakeWaiter(queue) for _ in range(5)]
    waiters[0].cancel()
    waiters[3].cancel()
    assert queue.waiting() == 3
    assert len(queue) == 5  # cancelled ones stay until something passes them


def test_has_waiting_drops_cancelled_waiters_from_the_front() -> None:
    queue = WaiterQueue()
    waiters = [FakeWaiter(queue) for _ in range(3)]
    waiters[0].cancel()
    waiters[2].cancel()
    assert queue.has_waiting()
    assert list(queue) == waiters[1:]
    waiters[1].cancel()
    assert not queue.has_waiting()
    assert not queue


def test_sweep_keeps_the_order_of_the_waiters_still_waiting() -> None:
    queue = WaiterQueue()
    waiters = [FakeWaiter(queue) for _ in range(6)]
    for index in (0, 2, 5):
        waiters[index].cancel()
    assert queue.sweep() == 3
    assert list(queue) == [waiters[1], waiters[3], waiters[4]]


def test_cancelled_waiters_are_swept_out() -> None:
    queue = WaiterQueue()
    live = FakeWaiter(queue)
    for _ in range(10_000):
        FakeWaiter(queue).cancel()
        queue.forget()
        # The deque never holds more than about twice the live waiters, plus
        # a small constant.
        assert len(queue) <= 2 * queue.waiting() + 65
    assert queue.waiting() == 1
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


def test_move_to_keeps_order_and_passes_over_cancelled_ones() -> None:
    source, target = WaiterQueue(), WaiterQueue()
    first = FakeWaiter(target)
    waiters = [FakeWaiter(source) for _ in range(4)]
    waiters[1].cancel()
    assert source.move_to(target, 2) is waiters[2]
    assert list(source) == [waiters[3]]
    assert list(target) == [first, waiters[0], waiters[2]]
    # A waiter cancelled after the move is passed over by its new queue.
    waiters[0].cancel()
    assert target.wake_all(numbered=True) == 2
    assert [first.value, waiters[2].value] == [0, 1]
    assert source.move_to(target, 5) is waiters[3]
    assert source.move_to(target, 5) is None


def test_wake_all_with_one_value() -> None:
    queue = WaiterQueue()
    waiters = [FakeWaiter(queue) for _ in range(3)]
    waiters[0].cancel()
    assert queue.wake_all("x") == 2
    assert [w.value for w in waiters] == [None, "x", "x"]
    assert not queue
    assert queue.wake_all() == 0
