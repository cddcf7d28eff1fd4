"""The queue of parked waiters that every primitive keeps.

A cancelled waiter is not searched for: it stays where it is, and the
operations that wake pass it over.  Its task calls ``note_cancelled()`` as it
leaves; once more than 64 have left from inside the queue and they could make
up half of it, the queue sweeps them out, and a queue that empties keeps no
record.  So each operation is O(1), amortized, per waiter it touches, and
memory stays proportional to the tasks still waiting.  asyncio's Lock keeps a
cancelled waiter in its place until its task has left, and wakes nobody while
one is first; ``wake_first_in_place()`` and ``has_waiting_in_place()`` do the
same.  Primitives use only the named operations, as trio's use ParkingLot's.
Those that change the queue are protected from KeyboardInterrupt under trio,
since statistics() and repr() reach them from unprotected code.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from typing import Any

from . import _ki
from ._backend import Waiter
from ._ki import ki_protected

__all__ = ["WaiterQueue"]

# Sweep only past this many cancellations, so that small queues never pay for it.
_SWEEP_AFTER = 64


def _protect_if_trio_imported() -> None:
    """Have the marks take effect under trio before a query changes the
    queue: statistics(), repr() and locked() may be the first loopsync calls
    that trio runs, for a primitive used before trio was imported."""
    if _ki.pending and "trio" in _ki.modules:
        _ki.protect_if_trio_imported()


class WaiterQueue(deque[Waiter]):
    """Parked waiters, in arrival order, with the operations primitives need;
    a deque, so that its truth and ``len()`` (cancelled waiters not swept
    out yet included) cost no Python call."""

    __slots__ = ("_left",)

    def __init__(self) -> None:
        super().__init__()
        # Cancelled waiters whose tasks left while the waiter was not first.
        self._left: set[Waiter] = set()

    park = deque.append
    """Append a waiter (``deque.append`` itself, for it is on every wait)."""

    @ki_protected
    def has_waiting(self) -> bool:
        """Return True if a waiter is still waiting."""
        _protect_if_trio_imported()
        while self:
            if not self[0].done():
                return True
            self._left.discard(self.popleft())
        return False

    @ki_protected
    def has_waiting_in_place(self) -> bool:
        """Return True if a waiter is still waiting, dropping only the
        cancelled waiters whose tasks have left (see wake_first_in_place())."""
        _protect_if_trio_imported()
        if self._left:
            self._drop_left_head()
        return any(not waiter.done() for waiter in self)

    def count_waiting(self) -> int:
        """Return the number of waiters still waiting."""
        _protect_if_trio_imported()
        self._sweep()
        return sum(not waiter.done() for waiter in self)

    @ki_protected
    def note_cancelled(self, waiter: Waiter) -> None:
        """Note that *waiter*, of this queue, was cancelled; its task calls
        this once, as it leaves."""
        left = self._left
        if self and self[0] is waiter:
            self.popleft()
            if left:
                self._drop_left_head()
        elif self and self[-1] is waiter:
            self.pop()
            while left and self and self[-1] in left:
                left.discard(self.pop())
        elif self:
            # A waiter already passed over is recorded too: the sweep, which
            # clears the record, bounds it as it bounds the others.
            left.add(waiter)
            if len(left) > _SWEEP_AFTER and 2 * len(left) > len(self):
                self._sweep()
            return
        if not self:
            # All passed over: nothing kept.
            left.clear()

    @ki_protected
    def _sweep(self) -> None:
        """Drop the cancelled waiters whose tasks have left."""
        left = self._left
        if left:
            kept = [waiter for waiter in self if waiter not in left]
            self.clear()
            self.extend(kept)
            left.clear()

    def _drop_left_head(self) -> None:
        while self and self[0] in self._left:
            self._left.discard(self.popleft())

    @ki_protected
    def drop_cancelled_tail(self) -> None:
        """Drop the cancelled waiters at the end of the queue."""
        while self and self[-1].done():
            self._left.discard(self.pop())

    @ki_protected
    def wake_first(self, value: Any) -> Waiter | None:
        """Wake the first waiter still waiting with *value*, and return it;
        return None if there was none."""
        while self:
            # A cancellation cancels the waiter at once, while its task only
            # cleans up when it next runs: a waiter that is done here was
            # cancelled, and the wake-up goes to the next one (anyio #1145,
            # python/asyncio#270).
            waiter = self.popleft()
            if not waiter.done():
                if not self and self._left:
                    self._left.clear()  # see note_cancelled()
                waiter.set_result(value)
                return waiter
            self._left.discard(waiter)
        return None

    @ki_protected
    def wake_first_in_place(self, value: Any) -> Waiter | None:
        """Wake the first waiter with *value* if it is still waiting, and
        return it; return None if it is not, as asyncio's Lock does: a
        cancelled waiter keeps its place until its task has left."""
        if self._left:
            self._drop_left_head()
        if self and not self[0].done():
            waiter = self.popleft()
            if not self and self._left:
                self._left.clear()  # see note_cancelled()
            waiter.set_result(value)
            return waiter
        return None

    @ki_protected
    def move_first(self, count: float, other: WaiterQueue) -> list[Waiter]:
        """Move up to *count* waiters still waiting, without waking them, to
        the end of *other*, in order; return them (trio's repark)."""
        moved: list[Waiter] = []
        while self and len(moved) < count:
            waiter = self.popleft()
            if not waiter.done():
                other.append(waiter)
                moved.append(waiter)
            else:
                self._left.discard(waiter)
        if not self and self._left:
            self._left.clear()  # see note_cancelled()
        return moved

    def wake_all(self, value: Any) -> int:
        """Wake every waiter still waiting with *value*, in order; return how
        many were woken."""
        return self._wake_each(itertools.repeat(value))

    def wake_all_numbered(self) -> int:
        """Wake every waiter still waiting with its rank among them (from 0),
        in order; return how many were woken."""
        return self._wake_each(itertools.count())

    @ki_protected
    def _wake_each(self, values: Iterator[Any]) -> int:
        woken = 0
        closed_loop_error = None
        for waiter in self:
            if not waiter.done():
                try:
                    waiter.set_result(next(values))
                except RuntimeError as exc:
                    # Its loop is closed: woken all the same, as the others
                    # are, before the error is raised (as asyncio's would).
                    if not waiter.done():
                        raise
                    closed_loop_error = exc
                woken += 1
        self.clear()
        self._left.clear()
        if closed_loop_error is not None:
            try:
                raise closed_loop_error
            finally:
                closed_loop_error = None  # no reference cycle through the traceback
        return woken
