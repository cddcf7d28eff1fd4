"""The queue of parked waiters: FIFO, O(1) cancellation, bounded memory."""

from __future__ import annotations

from typing import Any

import loopsync
from libs import Lib
from loopsync._waitqueue import WaiterQueue


class FakeWaiter:
    """A waiter without a task, for testing the queue alone."""

    def __init__(self, queue: WaiterQueue) -> None:
        self.queue = queue
        self.pending = True
        self.woken = False
        self.value: Any = None
        queue.append(self)

    def wake(self, value: Any = None) -> bool:
        if not self.pending:
            return False
        self.pending, self.woken, self.value = False, True, value
        return True

    def cancel(self) -> bool:
        if not self.pending:
            return False
        self.pending = False
        self.queue.forget()
        return True


def test_first_in_first_woken_past_cancelled_ones() -> None:
    queue = WaiterQueue()
    waiters = [FakeWaiter(queue) for _ in range(5)]
    waiters[0].cancel()
    waiters[2].cancel()
    assert len(queue) == 3
    assert queue.wake_first("a")
    assert queue.wake_first("b")
    assert [w.value for w in waiters] == [None, "a", None, "b", None]
    assert len(queue) == 1
    assert queue
    assert queue.wake_first("c")
    assert not queue
    assert not queue.wake_first("d")


def test_cancelled_entries_are_swept_out() -> None:
    queue = WaiterQueue()
    live = FakeWaiter(queue)
    for _ in range(10_000):
        FakeWaiter(queue).cancel()
        # The deque never holds more than about twice the live waiters, plus
        # a small constant.
        assert len(queue._entries) <= 2 * len(queue) + 65
    assert len(queue) == 1
    assert queue.wake_first(1)
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
        assert len(sem._waiters._entries) <= 65


def test_move_to_keeps_order_and_passes_over_cancelled_ones() -> None:
    source, target = WaiterQueue(), WaiterQueue()
    first = FakeWaiter(target)
    waiters = [FakeWaiter(source) for _ in range(4)]
    waiters[1].cancel()
    assert source.move_to(target, 2) is waiters[2]
    assert (len(source), len(target)) == (1, 3)
    assert waiters[2].queue is target
    # A waiter cancelled after the move is forgotten by its new queue.
    waiters[0].cancel()
    assert (len(source), len(target)) == (1, 2)
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
