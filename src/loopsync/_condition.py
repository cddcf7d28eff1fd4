"""Condition."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from . import _ki
from ._adapters import running_backend
from ._backend import Backend, Waiter
from ._ki import ki_protected
from ._lock import Lock
from ._primitive import Primitive, cancel_waiter
from ._waitqueue import WaiterQueue

if TYPE_CHECKING:
    from ._statistics import ConditionStatistics

__all__ = ["Condition"]

_T = TypeVar("_T")


def _trio_count(n: float, waiters: WaiterQueue) -> int:
    """Return how many of *waiters* trio's notify(*n*) moves, refusing the
    *n* that trio's refuses (math.inf moves them all)."""
    if type(n) is int:
        return n  # the queue moves no more than are waiting
    if isinstance(n, float):
        if not math.isinf(n):
            raise ValueError("Cannot pop a non-integer number of tasks.")
        return len(waiters)
    # trio compares n with the tasks waiting, then counts up to the smaller
    # (a count of another type passes only if they are fewer).
    return operator.index(min(n, waiters.count_waiting()))


class Condition(Primitive):
    """A condition variable that works under asyncio, uvloop, trio and anyio.

    A condition lets tasks wait, with its lock released, until another task
    notifies them.  It is used with its lock held::

        cond = loopsync.Condition()
        async with cond:
            await cond.wait_for(lambda: queue)  # releases the lock while it waits
            item = queue.pop()

    The optional *lock* argument must be a :class:`~loopsync.Lock`, which
    the condition then shares; otherwise it makes one.  Any other lock
    raises :exc:`TypeError`.

    Under asyncio it behaves as :class:`asyncio.Condition` of Python 3.13:
    a notified task is woken, and takes the lock again before :meth:`wait`
    returns.  Under trio it behaves as :class:`trio.Condition`: a notified
    task moves to the lock's queue, without being woken, and the lock's owner
    rules hold.

    .. versionadded:: 0.2
    """

    # Invariants:
    # - the waiters in self._waiters still waiting are exactly the tasks
    #   blocked in wait() that have not been notified;
    # - under trio, self._waiting_tasks maps each waiter queued here to its
    #   task; notify() moves both waiter and entry to the lock;
    # - self._parked counts the tasks parked in wait() that have not resumed
    #   yet, notified or not: what asyncio's notify_all() passes to notify().
    __slots__ = ("_lock", "_parked", "_waiters", "_waiting_tasks")

    def __init__(self, lock: Lock | None = None) -> None:
        if lock is None:
            lock = Lock()
        elif not isinstance(lock, Lock):
            cls = type(lock)  # not its repr, which may be anything
            name = (
                cls.__qualname__
                if cls.__module__ == "builtins"
                else f"{cls.__module__}.{cls.__qualname__}"
            )
            raise TypeError(f"Condition's lock must be a loopsync.Lock, not {name}")
        super().__init__()
        self._lock = lock
        self._waiters = WaiterQueue()
        self._waiting_tasks: dict[Waiter, Any] = {}
        self._parked = 0

    def _in_use(self) -> bool:
        return self._waiters.has_waiting()

    def _repr_state(self) -> str:
        return self._with_waiters("locked" if self._lock.locked() else "unlocked", self._waiters)

    @property
    def lock(self) -> Lock:
        """The lock this condition uses."""
        return self._lock

    def locked(self) -> bool:
        """Return True if the condition's lock is held."""
        return self._lock.locked()

    @ki_protected
    async def acquire(self) -> Literal[True]:
        """Acquire the condition's lock (see :meth:`Lock.acquire`)."""
        return await self._lock.acquire()

    @ki_protected
    def acquire_nowait(self) -> None:
        """Acquire the condition's lock without blocking (see
        :meth:`Lock.acquire_nowait`)."""
        self._lock.acquire_nowait()

    @ki_protected
    def release(self) -> None:
        """Release the condition's lock (see :meth:`Lock.release`)."""
        self._lock.release()

    # The lock's acquire() and release(), as asyncio's and trio's call (not
    # its own ``async with``).  Protected, as trio's: a KeyboardInterrupt as a
    # task enters or leaves must not leave the lock held with nobody to
    # release it.
    @ki_protected
    async def __aenter__(self) -> None:
        await self._lock.acquire()

    @ki_protected
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()

    def _holder_library(self, action: str) -> Backend:
        """Return the running library's adapter (``_library()``); raise
        RuntimeError unless the current task may *action*: under asyncio, if
        the lock is held; under trio, if this task holds it."""
        # self._library(), inlined: wait() and notify() are hot paths.
        backend = self._backend
        if backend is None or (
            self._loop is None
            and not (backend.is_current_awaited() if action == "wait" else backend.is_current())
        ):
            if running_backend() is not None:
                backend = self._follow_library()
            else:
                # No library runs the caller (a finaliser, code after
                # asyncio.run() returned): the rules of the library that took
                # the lock hold there, as in its release().
                backend = self._lock._backend
                if backend is None:
                    raise RuntimeError(f"cannot {action} on un-acquired lock")
        elif _ki.pending and self._loop is not None and "trio" in _ki.modules:
            _ki.protect_if_trio_imported()  # see Primitive._library()
        lock = self._lock
        # A lock bound to a loop was taken by asyncio's rules (a task of
        # another library may take it if it need not wait): they hold here
        # too, and only a task of that loop's library can wait for it.
        bound_elsewhere = lock._loop is not None and backend is not lock._backend
        if backend.tracks_owners and not bound_elsewhere:
            if backend.current_task() is not lock._owner:
                raise RuntimeError(f"must hold the lock to {action}")
        elif not lock.locked():  # a subclass's, or one patched, as asyncio's calls
            raise RuntimeError(f"cannot {action} on un-acquired lock")
        if backend is not lock._backend and action == "wait" and lock._backend is not None:
            if self._loop is not None and not backend.runs_on(self._loop):
                # The condition's own binding refuses the caller first, as
                # asyncio's does as it makes its future.
                raise self._bound_elsewhere()
            # The lock, taken by another library's rules, would be given back
            # and taken again by them: refused before anything changes.
            raise lock._bound_elsewhere() if bound_elsewhere else lock._other_library_uses()
        return backend

    @ki_protected
    async def wait(self) -> Literal[True]:
        """Release the lock, wait until notified, take the lock again and
        return True.

        The lock is held again when :meth:`wait` returns or raises, even if
        the task is cancelled.  Raises :exc:`RuntimeError` if the lock is not
        held (under trio: by the calling task).
        """
        backend = self._holder_library("wait")
        # Primitive._new_waiter(), inlined for a condition bound to its loop.
        # (No more locals than these two: each adds 8 bytes to every task
        # blocked here.)
        waiter = (
            backend.create_waiter(loop=self._loop)
            if self._loop is not None and backend.runs_on(self._loop)
            else self._new_waiter(backend)
        )
        if backend.tracks_owners:
            # notify() moves the waiter to the lock, which hands it over.
            self._waiting_tasks[waiter] = self._lock._owner
        try:
            self._lock.release()
        except BaseException:
            # A subclass's release() refused: the task never waited here.
            self._waiting_tasks.pop(waiter, None)
            raise
        self._lock._retaking += 1
        self._parked += 1
        self._waiters.park(waiter)
        try:
            try:
                await waiter
            except BaseException:
                self._withdraw(waiter)
                raise
            finally:
                # Take the lock back, even if cancelled meanwhile (then the
                # cancellation comes after): under asyncio always (at once if
                # acquire() would not yield), under trio unless the lock was
                # handed over with the wake-up.  Either takes it, or queues
                # for it, before yielding: the lock stays in use throughout.
                self._lock._retaking -= 1
                self._parked -= 1
                if backend.wakeup_revocable:
                    if not self._lock._take_at_once():
                        await self._lock._take_back(backend)
                elif waiter.cancelled():
                    await self._lock._take_back(backend)
            if not backend.wakeup_revocable and waiter.result() is not True:
                raise self._lock._broken_error(backend) from None
            return True
        except BaseException:
            if backend.wakeup_revocable:
                # As asyncio: the exception may have come after this task
                # was notified, so notify another one in its place; a
                # spurious wake-up at worst (gh-112202).
                self._notify(1)
            raise

    def _withdraw(self, waiter: Waiter) -> None:
        """Clean up after an exception left a wait in wait()."""
        lock = self._lock
        if waiter.cancelled() or cancel_waiter(waiter):
            # Cancelled (or hit by another exception) in the queue it was in.
            if lock._waiting_tasks.pop(waiter, None) is not None:
                lock._waiters.note_cancelled(waiter)
            else:
                self._waiting_tasks.pop(waiter, None)
                self._waiters.note_cancelled(waiter)

    async def wait_for(self, predicate: Callable[[], _T]) -> _T:
        """Wait until *predicate* returns a true value, and return it.

        *predicate* is called with the lock held: once at first, then each
        time this task is notified.
        """
        result = predicate()
        while not result:
            await self.wait()
            result = predicate()
        return result

    @ki_protected
    def notify(self, n: float = 1) -> None:
        """Wake up to *n* tasks waiting on this condition (one by default).

        Raises :exc:`RuntimeError` if the lock is not held (under trio: by
        the calling task).  Under trio the tasks notified wait for the lock
        in its queue, behind those already there; as trio's, *n* may be
        :data:`math.inf`, and any other float raises :exc:`ValueError`.
        """
        if not self._holder_library("notify").wakeup_revocable:
            n = _trio_count(n, self._waiters)
        self._notify(n)

    @ki_protected
    def notify_all(self) -> None:
        """Wake every task waiting on this condition (see :meth:`notify`).

        Under asyncio, as in :class:`asyncio.Condition`, it calls
        :meth:`notify` (a subclass's own, or one patched on the class or the
        condition) with the number of tasks in :meth:`wait` that have not
        resumed yet, notified or not.
        """
        backend = self._caller_library()
        if backend is None:
            # No library runs the caller: the rules of the lock's hold, as
            # in notify() (asyncio's if it was never taken).
            backend = self._lock._backend
        if backend is None or backend.wakeup_revocable:
            # notify() checks that the lock is held, as asyncio's does.
            self.notify(self._parked)
        else:
            self._holder_library("notify")
            self._notify(len(self._waiters))

    def _notify(self, n: float) -> None:
        if not self._waiters:
            return
        if self._backend is not None and not self._backend.wakeup_revocable:
            lock = self._lock
            for waiter in self._waiters.move_first(n, lock._waiters):
                lock._waiting_tasks[waiter] = self._waiting_tasks.pop(waiter)
        elif type(n) is int:  # an int's comparisons cannot be observed: shortcuts
            if n == 1:
                self._waiters.wake_first(False)
            elif n >= len(self._waiters):
                self._waiters.wake_all(False)
            else:
                for _ in range(n):
                    self._waiters.wake_first(False)
        else:
            # Only asyncio's test, as asyncio makes it, and the TypeError it
            # raises; a count that compares with nothing (nan) wakes them all.
            woken = 0
            while not woken >= n and self._waiters.wake_first(False):
                woken += 1

    def statistics(self) -> ConditionStatistics:
        """Return a :class:`ConditionStatistics` snapshot of this condition."""
        from ._statistics import ConditionStatistics

        return ConditionStatistics(
            tasks_waiting=self._waiters.count_waiting(),
            lock_statistics=self._lock.statistics(),
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        Condition.__init__(self, state.pop("_lock"))
        self._restore(state)

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "_lock": self._lock}
