"""CapacityLimiter."""

from __future__ import annotations

import math
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _ki
from ._adapters import current_backend
from ._backend import Waiter
from ._ki import ki_protected
from ._primitive import Primitive, cancel_waiter
from ._waitqueue import WaiterQueue

if TYPE_CHECKING:
    from ._statistics import CapacityLimiterStatistics

__all__ = ["CapacityLimiter"]


def _check_total_tokens(value: object) -> float:
    if not isinstance(value, int) and value != math.inf:
        raise TypeError("total_tokens must be an int or math.inf")
    if value < 0:
        raise ValueError("total_tokens must be >= 0")
    return value


class CapacityLimiter(Primitive):
    """A limit on how many borrowers may hold one of its tokens at a time,
    under asyncio, uvloop, trio and anyio.

    A capacity limiter is a semaphore whose permits, called tokens, are
    lent to borrowers: each borrower holds at most one token, and only the
    borrower holding a token may give it back.  The borrower is the current
    task, unless given with :meth:`acquire_on_behalf_of`.  Waiting tasks are
    served in the order they arrived::

        limiter = loopsync.CapacityLimiter(10)
        async with limiter:
            ...  # at most ten tasks at a time get here

    *total_tokens* is an integer, or :data:`math.inf` for no limit; another
    type raises :exc:`TypeError`, and a negative number :exc:`ValueError`.

    It behaves as :class:`trio.CapacityLimiter` under every library (asyncio
    has none).  Under trio, acquiring is always a checkpoint; under asyncio,
    as asyncio's primitives, it does not yield when a token is free.

    .. versionadded:: 0.2
    """

    # Invariants:
    # - the waiters in self._waiters still waiting are exactly the tasks
    #   blocked in acquire() that have not been lent a token, and
    #   self._pending_borrowers maps each waiter queued to its borrower;
    # - a token is lent (its borrower put in self._borrowers) the moment its
    #   waiter is woken; under asyncio, a task cancelled before it resumes
    #   gives it back.
    __slots__ = ("_borrowers", "_pending_borrowers", "_total_tokens", "_waiters")

    def __init__(self, total_tokens: float) -> None:
        total_tokens = _check_total_tokens(total_tokens)
        super().__init__()
        self._total_tokens = total_tokens
        self._borrowers: set[Any] = set()
        self._pending_borrowers: dict[Waiter, Any] = {}
        self._waiters = WaiterQueue()

    def _in_use(self) -> bool:
        return self._waiters.has_waiting()

    def _current_task(self) -> object:
        """The running task, the default borrower, as its own library knows it,
        whichever library's rules the limiter follows (trio as a guest of asyncio)."""
        # With no library running, current_backend() raises what to say so.
        return (self._caller_library() or current_backend()).current_task()

    def _repr_state(self) -> str:
        return self._with_waiters(
            f"borrowed:{len(self._borrowers)}/{self._total_tokens}", self._waiters
        )

    @property
    def total_tokens(self) -> float:
        """The number of tokens in all (an int, or :data:`math.inf`).

        It may be changed: raising it lends the new tokens to waiting tasks
        at once; lowering it below :attr:`borrowed_tokens` takes no token
        back.
        """
        return self._total_tokens

    @total_tokens.setter
    def total_tokens(self, value: float) -> None:
        # Checked unprotected, as trio's setter checks it: the comparisons
        # of an int subclass are the user's code, and change nothing here.
        self._set_total_tokens(_check_total_tokens(value))

    @ki_protected
    def _set_total_tokens(self, value: float) -> None:
        if _ki.pending and "trio" in _ki.modules:
            _ki.protect_if_trio_imported()
        self._total_tokens = value
        self._lend_free_tokens()

    @property
    def borrowed_tokens(self) -> int:
        """The number of tokens borrowed now."""
        return len(self._borrowers)

    @property
    def available_tokens(self) -> float:
        """The number of tokens free now (possibly negative after
        :attr:`total_tokens` was lowered)."""
        return self._total_tokens - len(self._borrowers)

    def _can_lend(self) -> bool:
        # A free token is not taken past tasks that wait (FIFO).
        return len(self._borrowers) < self._total_tokens and not (
            self._waiters and self._waiters.has_waiting()
        )

    @ki_protected
    def acquire_on_behalf_of_nowait(self, borrower: object) -> None:
        """Lend a token to *borrower* without blocking.

        Raises :exc:`~loopsync.WouldBlock` if none is free, or if tasks are
        waiting for one, and :exc:`RuntimeError` if *borrower* already holds
        a token of this limiter.
        """
        if _ki.pending and "trio" in _ki.modules:
            _ki.protect_if_trio_imported()
        if borrower in self._borrowers:
            raise RuntimeError(
                "this borrower is already holding one of this CapacityLimiter's tokens"
            )
        if not self._can_lend():
            raise self._would_block()
        self._borrowers.add(borrower)

    @ki_protected
    def acquire_nowait(self) -> None:
        """Lend a token to the current task without blocking (see
        :meth:`acquire_on_behalf_of_nowait`)."""
        self.acquire_on_behalf_of_nowait(self._current_task())

    @ki_protected
    async def acquire_on_behalf_of(self, borrower: object) -> None:
        """Lend a token to *borrower*, waiting until one is free.

        Raises :exc:`RuntimeError` if *borrower* already holds a token of
        this limiter.  Under trio this is always a checkpoint; under asyncio
        it does not yield when a token is free and no task is waiting.
        """
        backend = self._library()
        if backend.always_checkpoints:
            await backend.checkpoint_if_cancelled()
        if borrower in self._borrowers:
            raise RuntimeError(
                "this borrower is already holding one of this CapacityLimiter's tokens"
            )
        if self._can_lend():
            self._borrowers.add(borrower)
            if backend.always_checkpoints:
                try:
                    await backend.cancel_shielded_checkpoint()
                except BaseException:
                    # Cancelled there, as a library that cannot hold a
                    # cancellation back may be: the token goes back.
                    CapacityLimiter.release_on_behalf_of(self, borrower)
                    raise
            return
        waiter = self._new_waiter(backend)
        self._pending_borrowers[waiter] = borrower
        self._waiters.park(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.cancelled() or cancel_waiter(waiter):
                del self._pending_borrowers[waiter]
                self._waiters.note_cancelled(waiter)
            elif waiter in self._pending_borrowers:
                # Its loop was closed: waking it raised before the token was
                # lent, and the token stayed free.
                del self._pending_borrowers[waiter]
            else:
                # Lent a token, then cancelled before it could resume
                # (asyncio only): give it back, for the next task.
                self._borrowers.discard(borrower)
                self._lend_free_tokens()
            # No reference cycle through the traceback: the default borrower
            # is the task, which keeps the exception.
            del borrower
            raise

    @ki_protected
    async def acquire(self) -> None:
        """Lend a token to the current task, waiting until one is free (see
        :meth:`acquire_on_behalf_of`)."""
        await self.acquire_on_behalf_of(self._current_task())

    @ki_protected
    def release_on_behalf_of(self, borrower: object) -> None:
        """Give back the token that *borrower* holds, lending it to the first
        waiting task if there is one.

        Raises :exc:`RuntimeError` if *borrower* holds no token of this
        limiter.
        """
        if _ki.pending and "trio" in _ki.modules:
            _ki.protect_if_trio_imported()
        if borrower not in self._borrowers:
            raise RuntimeError("this borrower isn't holding any of this CapacityLimiter's tokens")
        self._borrowers.remove(borrower)
        self._lend_free_tokens()

    @ki_protected
    def release(self) -> None:
        """Give back the current task's token (see :meth:`release_on_behalf_of`)."""
        self.release_on_behalf_of(self._current_task())

    def _lend_free_tokens(self) -> None:
        """Lend the free tokens to waiting tasks, in order."""
        # Counted first, as trio does: two tasks waiting for the same
        # borrower take two tokens' turns, though it then holds one.
        free = self._total_tokens - len(self._borrowers)
        while free > 0 and self._waiters:
            waiter = self._waiters.wake_first(None)
            if waiter is None:
                break
            self._borrowers.add(self._pending_borrowers.pop(waiter))
            free -= 1

    def statistics(self) -> CapacityLimiterStatistics:
        """Return a :class:`CapacityLimiterStatistics` snapshot of this limiter."""
        from ._statistics import Borrowers, CapacityLimiterStatistics

        return CapacityLimiterStatistics(
            borrowed_tokens=len(self._borrowers),
            total_tokens=self._total_tokens,
            borrowers=Borrowers(self._borrowers),
            tasks_waiting=self._waiters.count_waiting(),
        )

    # As trio's and anyio's: a subclass's acquire(), or one patched on the
    # class or the limiter, is what runs.
    @ki_protected
    async def __aenter__(self) -> None:
        await self.acquire()

    @ki_protected
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __getstate__(self) -> dict[str, Any]:
        if self._borrowers:
            raise TypeError(f"cannot pickle or copy {self!r} while tokens are borrowed")
        return {**super().__getstate__(), "_total_tokens": self._total_tokens}

    def __setstate__(self, state: dict[str, Any]) -> None:
        CapacityLimiter.__init__(self, state.pop("_total_tokens"))
        self._restore(state)
