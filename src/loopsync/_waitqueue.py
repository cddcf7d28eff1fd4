"""The queue of parked waiters that every primitive keeps."""

from __future__ import annotations

from collections import deque

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._backend import Waiter

__all__ = ["WaiterQueue"]

# Compact only past this many cancelled entries, so that small queues never
# pay for it.
_COMPACT_AFTER = 64


class WaiterQueue:
    """Parked waiters in arrival order.

    Every operation is O(1), amortized, per waiter it touches.  A cancelled waiter is not searched
    for: its adapter calls :meth:`forget`, which only counts it, and
    :meth:`wake_first` drops it when it reaches the front (its ``wake()``
    fails).  Once there are more than 64 cancelled entries and they outnumber
    the live ones, they are swept out, so memory stays proportional to the
    tasks still waiting.
    """

    __slots__ = ("_entries", "waiting")

    def __init__(self) -> None:
        self._entries: deque[Waiter] = deque()
        self.waiting = 0
        """The number of waiters neither woken nor cancelled."""

    def __len__(self) -> int:
        return self.waiting

    def append(self, waiter: Waiter) -> None:
        """Add *waiter* at the end of the queue."""
        self._entries.append(waiter)
        self.waiting += 1

    def forget(self) -> None:
        """Count one queued waiter as cancelled; its adapter calls this once."""
        self.waiting -= 1
        cancelled = len(self._entries) - self.waiting
        if cancelled > _COMPACT_AFTER and cancelled > self.waiting:
            self._entries = deque(waiter for waiter in self._entries if waiter.pending)

    def move_to(self, other: WaiterQueue, count: int) -> Waiter | None:
        """Move the first *count* waiters still waiting to the end of *other*,
        in order.

        Return the last one moved, or None if none was.
        """
        entries = self._entries
        moved = None
        while count and entries:
            waiter = entries.popleft()
            if waiter.pending:
                waiter.queue = other
                other._entries.append(waiter)
                moved = waiter
                count -= 1
                self.waiting -= 1
                other.waiting += 1
        return moved

    def wake_first(self, value: Any = None) -> bool:
        """Wake the first waiter still waiting with *value*.

        Return False if there was none.
        """
        entries = self._entries
        while entries:
            if entries.popleft().wake(value):
                self.waiting -= 1
                return True
        return False

    def wake_all(self, value: Any = None, *, numbered: bool = False) -> int:
        """Wake every waiter still waiting, in order, with *value*, or with
        its rank among them (from 0) if *numbered* is true.

        Return how many were woken.
        """
        woken = 0
        for waiter in self._entries:
            if waiter.wake(woken if numbered else value):
                woken += 1
        self._entries.clear()
        self.waiting = 0
        return woken
