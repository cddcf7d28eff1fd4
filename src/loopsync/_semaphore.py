"""Semaphore and BoundedSemaphore."""

from __future__ import annotations

import operator

from ._backend import ki_protected, protect_under_trio
from ._exceptions import WouldBlock
from ._primitive import Primitive
from ._waitqueue import WaiterQueue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Coroutine
    from types import TracebackType
    from typing import Any, Literal

__all__ = ["BoundedSemaphore", "Semaphore", "SemaphoreStatistics"]


class SemaphoreStatistics:
    """A snapshot of a semaphore's state, as returned by
    :meth:`Semaphore.statistics`.

    Its attribute is read-only; two snapshots are equal if their values are.
    """

    # Written out rather than a dataclass or a NamedTuple: importing either
    # module would take longer than the rest of `import loopsync`.
    __slots__ = ("tasks_waiting",)

    tasks_waiting: int
    """The number of tasks blocked in :meth:`~Semaphore.acquire` that have not
    been handed a permit yet."""

    def __init__(self, tasks_waiting: int) -> None:
        object.__setattr__(self, "tasks_waiting", tasks_waiting)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __eq__(self, other: object) -> bool:
        if type(other) is not SemaphoreStatistics:
            return NotImplemented
        return self.tasks_waiting == other.tasks_waiting

    def __hash__(self) -> int:
        return hash(self.tasks_waiting)

    def __repr__(self) -> str:
        return f"SemaphoreStatistics(tasks_waiting={self.tasks_waiting})"


def _check_value(value: object) -> int:
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"semaphore value must be an integer, not {type(value).__name__}") from None
    if number < 0:
        raise ValueError("Semaphore initial value must be >= 0")
    return number


class Semaphore(Primitive):
    """A semaphore that works under asyncio, uvloop, trio and anyio.

    A semaphore manages an internal counter which is decremented by each
    :meth:`acquire` call and incremented by each :meth:`release` call.  The
    counter can never go below zero; when :meth:`acquire` finds that it is
    zero, it blocks, waiting until some other task calls :meth:`release`.
    Waiting tasks are served in the order they arrived.

    The optional *value* argument gives the initial value for the internal
    counter (``1`` by default).  If it is less than ``0`` a :exc:`ValueError`
    is raised; if it is not an integer, a :exc:`TypeError`.

    The preferred way to use a semaphore is an :keyword:`async with`
    statement::

        sem = loopsync.Semaphore(10)
        async with sem:
            ...  # at most ten tasks at a time get here

    Under asyncio it behaves as :class:`asyncio.Semaphore` of Python 3.13,
    whichever Python runs it; under trio, as :class:`trio.Semaphore`.
    """

    # Invariants:
    # - the waiters in self._waiters that are still waiting are exactly the
    #   tasks blocked in acquire() that have neither been handed a permit nor
    #   been cancelled;
    # - self._handoffs counts the tasks handed a permit that may still be
    #   cancelled before they resume (asyncio only; 0 under trio);
    # - under trio, a waiter still waiting implies self._value == 0.
    __slots__ = ("_handoffs", "_value", "_waiters")

    def __init__(self, value: int = 1) -> None:
        super().__init__()
        self._value = _check_value(value)
        self._waiters = WaiterQueue()
        self._handoffs = 0

    def _repr_state(self) -> str:
        state = "locked" if self.locked() else f"unlocked, value:{self._value}"
        waiting = self._waiters.waiting()
        if waiting:
            state += f", waiters:{waiting}"
        return state

    @property
    def value(self) -> int:
        """The number of permits that can be acquired right now."""
        return self._value

    @property
    def max_value(self) -> int | None:
        """The most permits the semaphore may hold, or None if unbounded."""
        return None

    def locked(self) -> bool:
        """Return True if the semaphore cannot be acquired immediately."""
        # A permit is not taken past tasks that are waiting or that were handed
        # one and have not resumed yet: arrivals queue behind them (FIFO).
        return not self._value or self._handoffs > 0 or self._waiters.has_waiting()

    @ki_protected
    def acquire_nowait(self) -> None:
        """Acquire a permit without blocking.

        Raises :exc:`~loopsync.WouldBlock` if :meth:`locked` is true.
        """
        if self._backend is None:
            protect_under_trio()
        if self.locked():
            raise WouldBlock
        self._value -= 1

    @ki_protected
    async def acquire(self) -> Literal[True]:
        """Acquire a permit.

        If one is free and no task is waiting for one, take it and return True.
        Otherwise wait until :meth:`release` hands this task a permit, then
        return True.  Under trio this is always a checkpoint; under asyncio it
        does not yield when it can return at once.
        """
        backend = self._backend
        # Inlined _current_backend(), for this is the hot path; and a primitive
        # bound to a loop is asyncio's for good (see Primitive).
        if self._loop is None:
            if backend is not None and backend.checkpoints:
                # Under trio.  Outside trio its checkpoint raises RuntimeError,
                # which tells, for less than a look at sniffio, whether trio
                # still runs here.
                try:
                    await backend.checkpoint_if_cancelled()
                except RuntimeError:
                    backend = self._current_backend()
                    if backend.checkpoints:
                        raise
            elif backend is None or backend.sniffio_local.name != backend.sniffio_name:
                backend = self._current_backend()
                if backend.checkpoints:
                    await backend.checkpoint_if_cancelled()
        assert backend is not None
        # Inlined locked(): this is the hot path.
        if (
            self._value
            and not self._handoffs
            and not (self._waiters and self._waiters.has_waiting())
        ):
            self._value -= 1
            if backend.checkpoints:
                await backend.cancel_shielded_checkpoint()
            return True

        # Inlined _create_waiter(): this is the hot path.  (No local variable
        # more: each would add 8 bytes to every task blocked here.)
        if self._loop is None:
            waiter = self._create_waiter(backend)
        else:
            waiter = backend.create_waiter(loop=self._loop)
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.cancelled():
                # Cancelled while waiting, which cancelled the waiter: the
                # usual case, and the only one that needs no _check_loop().
                self._waiters.forget()
            elif not waiter.done():
                # Something else was thrown into the task, such as the
                # RuntimeError of a loop that refuses the waiter: withdraw it.
                waiter.cancel()
                self._waiters.forget()
                self._check_loop()
            else:
                # Handed a permit, then cancelled before it could resume
                # (asyncio only: a woken trio task cannot be cancelled), or
                # refused by its loop as one of another loop (_check_loop):
                # give the permit back; the finally clause passes it on
                # (python/asyncio#270, bpo-27585, bpo-32734).
                self._value += 1
                self._handoffs -= 1
                self._check_loop()
            raise
        else:
            if backend.cancellable_after_wake:
                self._handoffs -= 1
        finally:
            if self._value > 0:
                self._hand_out_free_permits()
        return True

    def _hand_out_free_permits(self) -> None:
        """Hand free permits to the first waiting tasks, while there are both.

        Tasks that arrived while hand-offs were pending queued up even if
        permits were free: a task leaving acquire() wakes as many as the free
        permits allow (gh-111693).  Under trio there are none.
        """
        while self._value > 0 and self._waiters.has_waiting():
            # The permit is one the counter holds, not a new one: pass it on
            # with the plain release, past BoundedSemaphore's check.
            self._value -= 1
            Semaphore.release(self)

    @ki_protected
    def release(self) -> None:
        """Release a permit, handing it to the first waiting task if any."""
        if self._backend is None:
            protect_under_trio()
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            # A cancellation cancels the waiter at once (Task.cancel() cancels
            # the future its task awaits; trio calls the abort callback), while
            # the task only cleans up when it next runs.  So a waiter that is
            # done here was cancelled, and is passed over: the permit goes
            # straight to a task that will take it (anyio #1145,
            # python/asyncio#270).
            if not waiter.done():
                # The permit does not pass through the counter, which reads as
                # asyncio's does after its release().
                waiter.set_result(True)
                # A waiter implies an acquire() that found the backend.
                if self._backend.cancellable_after_wake:  # type: ignore[union-attr]
                    self._handoffs += 1
                return
        self._value += 1

    def statistics(self) -> SemaphoreStatistics:
        """Return a :class:`SemaphoreStatistics` snapshot of this semaphore."""
        return SemaphoreStatistics(tasks_waiting=self._waiters.waiting())

    def __aenter__(self) -> Coroutine[Any, Any, Literal[True]]:
        # acquire() itself, not a coroutine awaiting it: a frame less on
        # every entry, a twentieth of a contended hand-off.  So, unlike
        # asyncio's, ``async with sem as x`` binds True rather than None.
        return self.acquire()

    @ki_protected
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class BoundedSemaphore(Semaphore):
    """A semaphore that refuses to be released more often than acquired.

    :meth:`release` raises :exc:`ValueError` if it would raise the counter
    above the initial *value*, and leaves the counter unchanged.
    """

    __slots__ = ("_bound_value",)

    def __init__(self, value: int = 1) -> None:
        super().__init__(value)
        self._bound_value = self._value

    @property
    def max_value(self) -> int:
        """The initial value, which the counter may never exceed."""
        return self._bound_value

    @ki_protected
    def release(self) -> None:
        """Release a permit; raise ValueError if none is held."""
        if self._value >= self._bound_value and not self._hand_off_is_final():
            raise ValueError("BoundedSemaphore released too many times")
        super().release()

    def _hand_off_is_final(self) -> bool:
        # Under trio a release with tasks waiting hands the permit over for
        # good, so the counter cannot pass the bound (this matters only for a
        # bound of 0).  Under asyncio the woken task may still be cancelled
        # and give the permit back to the counter, so the bound comes first.
        backend = self._backend
        return (
            backend is not None
            and not backend.cancellable_after_wake
            and self._waiters.has_waiting()
        )
