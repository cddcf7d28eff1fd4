"""Semaphore and BoundedSemaphore."""

from __future__ import annotations

import math
import operator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, cast

from . import _ki
from ._adapters import current_library
from ._backend import Waiter
from ._ki import ki_protected
from ._primitive import Primitive, cancel_waiter
from ._waitqueue import WaiterQueue

if TYPE_CHECKING:
    from ._statistics import SemaphoreStatistics

__all__ = ["BoundedSemaphore", "Semaphore"]


def _check_count(name: str, value: object) -> int:
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}") from None


def _negative_value_error() -> ValueError:
    """asyncio's ValueError for a negative value, in trio's words when trio
    runs the caller."""
    return ValueError(
        "initial value must be >= 0"
        if current_library() == "trio"
        else "Semaphore initial value must be >= 0"
    )


# What release() wakes a task with when it counts the hand-off in _handoffs
# (asyncio's rules), for the task to uncount: self._backend may have changed
# by then, as a trio hand-off, final at once, leaves the semaphore unused.
_COUNTED = object()

# The default of a semaphore's value: an int that a 1 passed explicitly is not,
# so that passing the value under both its names can be refused.
_DEFAULT_VALUE: int = type("_DefaultValue", (int,), {"__slots__": ()})(1)


class Semaphore(Primitive):
    """A semaphore that works under asyncio, uvloop, trio and anyio.

    A semaphore manages an internal counter which is decremented by each
    :meth:`acquire` call and incremented by each :meth:`release` call.  The
    counter can never go below zero; when :meth:`acquire` finds that it is
    zero, it blocks, waiting until some other task calls :meth:`release`.
    Waiting tasks are served in the order they arrived.

    The optional *value* argument gives the initial value for the internal
    counter (``1`` by default); trio's and anyio's name for it,
    *initial_value*, is accepted too.  If *max_value* is given, as in trio and
    anyio, :meth:`release` refuses to raise the counter above it; it must be
    at least *value*.  A *value* below ``0`` raises :exc:`ValueError`, and one
    that is not an integer :exc:`TypeError`, as in trio, except
    :data:`math.inf`: as in asyncio, a semaphore without a limit.

    If *always_checkpoint* is true, :meth:`acquire` yields to other tasks
    once even when it takes a permit at once, as anyio's primitives do by
    default under asyncio, with their rules for a cancellation arriving then
    (see :class:`Lock`); under trio it always yields.

    The preferred way to use a semaphore is an :keyword:`async with`
    statement::

        sem = loopsync.Semaphore(10)
        async with sem:
            ...  # at most ten tasks at a time get here

    Under asyncio it behaves as :class:`asyncio.Semaphore` of Python 3.13,
    whichever Python runs it; under trio, as :class:`trio.Semaphore`.

    .. versionadded:: 0.1
    """

    # Invariants:
    # - the waiters in self._waiters still waiting are exactly the tasks
    #   blocked in acquire() that have neither been handed a permit nor been
    #   cancelled;
    # - self._handoffs counts the tasks handed a permit that may still be
    #   cancelled before they resume (asyncio only: 0 under trio);
    # - under trio, a waiter still waiting implies self._value == 0.
    __slots__ = ("_always_checkpoint", "_handoffs", "_max_value", "_value", "_waiters")

    def __init__(
        self,
        value: float = _DEFAULT_VALUE,
        *,
        max_value: int | None = None,
        always_checkpoint: bool = False,
        initial_value: float = _DEFAULT_VALUE,
    ) -> None:
        if initial_value is not _DEFAULT_VALUE:
            if value is not _DEFAULT_VALUE:
                raise TypeError("Semaphore() takes value or initial_value, not both")
            value = initial_value
        if isinstance(value, float) and value == math.inf:
            # asyncio's semaphore without a limit: math.inf counts and
            # compares as an int too large to reach would.
            count = cast(int, value)
        else:
            count = _check_count("semaphore value", value)
        if count < 0:
            raise _negative_value_error()
        if max_value is not None:
            max_value = _check_count("max_value", max_value)
            if max_value < count:
                # trio's words (asyncio has no max_value).
                raise ValueError("max_values must be >= initial_value")
        super().__init__()
        self._value = count
        self._max_value = max_value
        self._waiters = WaiterQueue()
        self._handoffs = 0
        self._always_checkpoint = bool(always_checkpoint)

    def _in_use(self) -> bool:
        return self._handoffs > 0 or self._waiters.has_waiting()

    def _repr_state(self) -> str:
        return self._with_waiters(
            "locked" if self.locked() else f"unlocked, value:{self._value}", self._waiters
        )

    @property
    def value(self) -> int:
        """The number of permits that can be acquired right now
        (:data:`math.inf` for a semaphore without a limit)."""
        return self._value

    @property
    def max_value(self) -> int | None:
        """The most permits the semaphore may hold, or None if unbounded."""
        return self._max_value

    def locked(self) -> bool:
        """Return True if the semaphore cannot be acquired immediately.

        Under asyncio, as in :class:`asyncio.Semaphore`, :meth:`acquire`
        asks this method (a subclass's own, or one patched on the class or
        the semaphore) whether to take a permit at once.  Under trio
        :meth:`acquire`, and :meth:`acquire_nowait` under every library,
        apply the rule of this class's own without calling it, as trio's do.
        """
        # A free permit is not taken past tasks that wait, or, as in asyncio,
        # that were handed one and have not resumed yet: arrivals queue behind
        # them (FIFO).  anyio's semaphore (always_checkpoint) lends it: the
        # permits handed over are not counted in self._value.
        return (
            not self._value
            or (self._handoffs > 0 and not self._always_checkpoint)
            or (bool(self._waiters) and self._waiters.has_waiting())
        )

    @ki_protected
    def acquire_nowait(self) -> None:
        """Acquire a permit without blocking.

        Raises :exc:`~loopsync.WouldBlock` if :meth:`locked` is true (by
        the rule of this class's own, as trio's applies it).
        """
        if _ki.pending and "trio" in _ki.modules:
            _ki.protect_if_trio_imported()
        if Semaphore.locked(self):
            raise self._would_block()
        self._value -= 1

    @ki_protected
    async def acquire(self) -> Literal[True]:
        """Acquire a permit.

        If one is free and no task is waiting for one, take it and return True.
        Otherwise wait until :meth:`release` hands this task a permit, then
        return True (``async with`` binds None, as in asyncio).  Under trio
        this is always a checkpoint; under asyncio it does not yield when it
        can return at once.
        """
        # self._library(), inlined: this is the hot path.  It leaves the
        # adapter in self._backend, read from there rather than kept in a
        # local: each local adds 8 bytes to every task blocked here.
        if self._loop is None:
            if self._backend is None or not self._backend.is_current_awaited():
                self._follow_library()
        elif _ki.pending and "trio" in _ki.modules:
            _ki.protect_if_trio_imported()  # see Primitive._library()
        if self._backend.always_checkpoints:  # type: ignore[union-attr]
            await self._backend.checkpoint_if_cancelled()  # type: ignore[union-attr]
        if (
            # As asyncio's, which asks locked(), a subclass's or a patched one
            # included; trio's has none.
            not self.locked()
            if self._backend.wakeup_revocable  # type: ignore[union-attr]
            else (
                self._value
                and (not self._handoffs or self._always_checkpoint)  # see locked()
                and not (self._waiters and self._waiters.has_waiting())
            )
        ):
            if self._always_checkpoint and not self._backend.always_checkpoints:  # type: ignore[union-attr]
                self._check_may_yield(self._backend)  # type: ignore[arg-type]  # see Lock.acquire()
                # As anyio's semaphore: no permit for a task already cancelled
                # (see Lock.acquire()).
                await self._backend.checkpoint_if_cancelled()  # type: ignore[union-attr]
            self._value -= 1
            if self._backend.always_checkpoints or self._always_checkpoint:  # type: ignore[union-attr]
                try:
                    await self._backend.cancel_shielded_checkpoint()  # type: ignore[union-attr]
                except BaseException:
                    Semaphore.release(self)  # cancelled there, as only asyncio can
                    raise
            return True

        # Primitive._new_waiter(), inlined for a primitive bound to its loop.
        waiter = (
            self._backend.create_waiter(loop=self._loop)  # type: ignore[union-attr]
            if self._loop is not None and self._backend.runs_on(self._loop)  # type: ignore[union-attr]
            else self._new_waiter(self._backend)  # type: ignore[arg-type]
        )
        self._waiters.park(waiter)
        try:
            await waiter
        except BaseException:
            self._withdraw(waiter)
            raise
        finally:
            if self._value > 0:
                self._hand_out_free_permits()
        if waiter.result() is _COUNTED:
            self._handoffs -= 1
        return True

    # As asyncio's, trio's and anyio's: a subclass's acquire(), or one patched
    # on the class or the semaphore, is what runs; and ``as`` binds None.
    @ki_protected
    async def __aenter__(self) -> None:
        await self.acquire()

    def _withdraw(self, waiter: Waiter) -> None:
        """Clean up after an exception left a wait in acquire()."""
        if waiter.cancelled():
            # Cancelled while waiting: the usual case.
            self._waiters.note_cancelled(waiter)
        elif cancel_waiter(waiter):
            # Something else was thrown into the task while it waited.
            self._waiters.note_cancelled(waiter)
        else:
            # Handed a permit, then cancelled before it could resume (asyncio
            # only: a woken trio task cannot be cancelled), or hit by another
            # exception: give the permit back, for acquire() to pass it on
            # (python/asyncio#270, bpo-27585, bpo-32734).
            self._value += 1
            if waiter.result() is _COUNTED:
                self._handoffs -= 1

    def _hand_out_free_permits(self) -> None:
        """Wake as many waiting tasks as the free permits allow, as a task
        leaves acquire() (gh-111693); under trio there are none."""
        # Tasks may have queued behind a pending hand-off although permits
        # were free.
        while self._value > 0:
            # Taken first, as release() hands the permit past the counter:
            # waking a task of a closed loop raises once the task has it.
            self._value -= 1
            if not self._hand_over():
                self._value += 1
                break

    def _hand_over(self) -> bool:
        """Hand a permit to the first waiting task; False if none waits."""
        # The waiters are of self._backend's library (see Primitive).
        if not self._backend.wakeup_revocable:  # type: ignore[union-attr]  # set: a task waits
            return self._waiters.wake_first(True) is not None
        # Counted first: waking a task of a closed loop raises once its
        # waiter is done, and the task, destroyed later, uncounts it.
        self._handoffs += 1
        if self._waiters.wake_first(_COUNTED) is None:
            self._handoffs -= 1
            return False
        return True

    _too_many_releases = "semaphore released too many times"

    def _refuse_release_past_bound(self) -> None:
        """Raise ValueError for a release() at the bound, unless trio would
        hand the permit straight to a waiting task."""
        # trio does so even past a bound of 0; under asyncio a woken task may
        # still give the permit back.
        backend = self._backend
        if backend is None or backend.wakeup_revocable or not self._waiters.has_waiting():
            raise ValueError(self._too_many_releases)

    @ki_protected
    def release(self) -> None:
        """Release a permit, handing it to the first waiting task if any.

        Raises :exc:`ValueError` if the counter would exceed *max_value*,
        and leaves it unchanged.
        """
        if self._max_value is not None and self._value >= self._max_value:
            self._refuse_release_past_bound()
        # The permit goes straight to a waiting task, past the counter.
        if self._waiters:
            if _ki.pending and "trio" in _ki.modules:
                _ki.protect_if_trio_imported()  # see Lock.release()
            if self._hand_over():
                return
        self._value += 1

    def statistics(self) -> SemaphoreStatistics:
        """Return a :class:`SemaphoreStatistics` snapshot of this semaphore."""
        from ._statistics import SemaphoreStatistics

        return SemaphoreStatistics(tasks_waiting=self._waiters.count_waiting())

    @ki_protected
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __getstate__(self) -> dict[str, Any]:
        return {
            **super().__getstate__(),
            "_value": self._value,
            "_max_value": self._max_value,
            "_always_checkpoint": self._always_checkpoint,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        Semaphore.__init__(
            self,
            0,
            max_value=state.pop("_max_value"),
            always_checkpoint=state.pop("_always_checkpoint"),
        )
        # Below 0 too, as asyncio's copies: a subclass's locked() may let
        # acquire() take a permit past 0.
        self._value = state.pop("_value")
        self._restore(state)


class BoundedSemaphore(Semaphore):
    """A semaphore that refuses to be released more often than acquired.

    :meth:`~Semaphore.release` raises :exc:`ValueError` if it would raise the
    counter above the initial *value*, and leaves the counter unchanged.

    .. versionadded:: 0.1
    """

    __slots__ = ()

    def __init__(self, value: int = 1, *, always_checkpoint: bool = False) -> None:
        super().__init__(value, always_checkpoint=always_checkpoint)
        self._max_value = self._value

    _too_many_releases = "BoundedSemaphore released too many times"

    @ki_protected
    def release(self) -> None:
        """Release a permit, handing it to the first waiting task if any.

        Raises :exc:`ValueError` if the counter would exceed the initial
        value, and leaves it unchanged.
        """
        # As asyncio's: the bound first, then Semaphore's release(), or what
        # a subclass or a patch puts between them.
        if self._value >= self._max_value:  # type: ignore[operator]  # always set
            self._refuse_release_past_bound()
        super().release()
