"""The queue of parked waiters that every primitive keeps."""

from __future__ import annotations

from collections import deque

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._backend import Waiter

__all__ = ["WaiterQueue"]

# Sweep only past this many cancellations, so that small queues never pay for it.
_SWEEP_AFTER = 64


class WaiterQueue(deque["Waiter"]):
    """Parked waiters, in arrival order.

    A cancelled waiter is not searched for: it stays where it is until an
    operation comes across it, and waking passes it over.  The task of a
    cancelled waiter calls :meth:`forget` as it leaves; once more than 64 have
    and they could make up half the queue, the queue sweeps out every
    cancelled waiter.  So each operation is O(1), amortized, per waiter it
    touches, and memory stays proportional to the tasks still waiting.

    Being a deque, the queue is true while it holds any entry, and ``len()``
    counts cancelled waiters not swept out yet too; :meth:`waiting` counts
    only the waiters still waiting.
    """

    __slots__ = ("_forgotten",)

    def __init__(self) -> None:
        super().__init__()
        self._forgotten = 0

    def waiting(self) -> int:
        """Return the number of waiters neither woken nor cancelled."""
        return sum(not waiter.done() for waiter in self)

    def sweep(self) -> int:
        """Drop every cancelled waiter; return the number still waiting."""
        if any(waiter.done() for waiter in self):
            waiters = [waiter for waiter in self if not waiter.done()]
            self.clear()
            self.extend(waiters)
        self._forgotten = 0
        return len(self)

    def forget(self) -> None:
        """Note that a waiter of this queue was cancelled; its task calls this
        once, as it leaves."""
        self._forgotten += 1
        if self._forgotten > _SWEEP_AFTER and 2 * self._forgotten > len(self):
            self.sweep()

    def has_waiting(self) -> bool:
        """Return True if a waiter is still waiting."""
        while self:
            if not self[0].done():
                return True
            self.popleft()
        return False

    def wake_all(self, value: Any = None, *, numbered: bool = False) -> int:
        """Wake every waiter still waiting, in order, with *value*, or with
        its rank among them (from 0) if *numbered* is true.

        Return how many were woken.
        """
        woken = 0
        for waiter in self:
            if not waiter.done():
                waiter.set_result(woken if numbered else value)
                woken += 1
        self.clear()
        return woken

    def move_to(self, other: WaiterQueue, count: int) -> Waiter | None:
        """Move the first *count* waiters still waiting to the end of *other*,
        in order.

        Return the last one moved, or None if none was.
        """
        moved = None
        while count and self:
            waiter = self.popleft()
            if not waiter.done():
                other.append(waiter)
                moved = waiter
                count -= 1
        return moved
