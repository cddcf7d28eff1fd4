"""Lock."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from . import _ki
from ._adapters import current_backend, running_backend
from ._backend import Backend, Waiter
from ._ki import ki_protected
from ._primitive import Primitive, cancel_waiter
from ._waitqueue import WaiterQueue

if TYPE_CHECKING:
    from ._statistics import LockStatistics

__all__ = ["Lock"]

# What the waiters of a lock whose owner exited are woken with (trio only).
_BROKEN = object()


def _owner_exited_weakly(lock: Lock) -> Callable[[Any], None]:
    """Return ``lock._owner_exited``, holding the lock weakly: the lock keeps
    its exit watch, which would otherwise keep the lock (and, once broken,
    its dead owner) alive until a garbage collection."""
    lock_ref = weakref.ref(lock)

    def owner_exited(task: Any) -> None:
        lock = lock_ref()
        if lock is not None:
            lock._owner_exited(task)

    return owner_exited


class Lock(Primitive):
    """A mutual-exclusion lock that works under asyncio, uvloop, trio and anyio.

    A lock is held by at most one task at a time.  :meth:`acquire` takes it,
    waiting if another task holds it, and :meth:`release` gives it back, to
    the first waiting task if there is one: waiting tasks are served in the
    order they arrived.  The preferred way to use a lock is an
    :keyword:`async with` statement::

        lock = loopsync.Lock()
        async with lock:
            ...  # one task at a time gets here

    Under asyncio it behaves as :class:`asyncio.Lock` of Python 3.13,
    whichever Python runs it: it has no owner, and any task may release it.
    Under trio it behaves as :class:`trio.Lock`: it belongs to the task that
    acquired it, and passes straight to the next waiting task on release.

    If *always_checkpoint* is true, :meth:`acquire` yields to other tasks
    once even when it takes the lock at once, as anyio's lock does by
    default under asyncio, and as there, an anyio cancel scope's
    cancellation arriving then waits for the task's next checkpoint, while
    a plain asyncio cancellation cancels the acquire, which gives the lock
    back; under trio it always yields, uncancellably once the lock is taken.

    .. versionadded:: 0.2
    """

    # Invariants:
    # - the waiters in self._waiters still waiting are exactly the tasks
    #   blocked in acquire() that have not been handed the lock;
    # - under asyncio, release() clears self._locked and counts a hand-off in
    #   self._handoffs (at most 1) until the task handed the lock resumes and
    #   sets it again, or, cancelled first, passes it on;
    # - under trio, self._owner is the task holding the lock, and the lock
    #   passes to its next owner on release; self._waiting_tasks maps each
    #   waiter queued here (Condition's too) to its task;
    # - self._retaking counts the tasks in a Condition's wait() that released
    #   the lock and have not resumed: they will take it back, by the rules
    #   of their library, which the lock keeps following meanwhile.
    __slots__ = (
        "_always_checkpoint",
        "_broken",
        "_exit_watch",
        "_handoffs",
        "_locked",
        "_owner",
        "_retaking",
        "_waiters",
        "_waiting_tasks",
    )

    def __init__(self, *, always_checkpoint: bool = False) -> None:
        super().__init__()
        self._always_checkpoint = bool(always_checkpoint)
        self._locked = False
        self._handoffs = 0
        self._waiters = WaiterQueue()
        self._owner: Any = None
        self._waiting_tasks: dict[Waiter, Any] = {}
        self._exit_watch: object = None
        self._broken = False
        self._retaking = 0

    def _in_use(self) -> bool:
        # A held lock too: it is released under the rules it was taken by;
        # and one that tasks waiting on a condition will take back.
        return (
            self._locked
            or self._handoffs > 0
            or self._retaking > 0
            or self._waiters.has_waiting_in_place()
        )

    def _repr_state(self) -> str:
        return self._with_waiters("locked" if self._locked else "unlocked", self._waiters)

    def locked(self) -> bool:
        """Return True if the lock is held.

        Under asyncio, as in :class:`asyncio.Lock`, a lock just released to a
        waiting task counts as not held until that task resumes, although
        :meth:`acquire` would still queue behind it.
        """
        return self._locked

    @ki_protected
    async def acquire(self) -> Literal[True]:
        """Acquire the lock.

        If the lock is free and no task is waiting for it, take it and return
        True.  Otherwise wait until it is handed to this task, in the order
        the tasks arrived, then return True (``async with`` binds None).
        Under trio this is always a checkpoint; under asyncio it does not
        yield when it can return at once.

        Under trio, the task that holds the lock cannot acquire it again
        (:exc:`RuntimeError`), and if the holder exits without releasing it,
        every waiting and later :meth:`acquire` raises
        :exc:`trio.BrokenResourceError`.
        """
        # self._library(), inlined: this is the hot path.
        backend = self._backend
        if backend is None or (self._loop is None and not backend.is_current_awaited()):
            backend = self._follow_library()
        elif _ki.pending and self._loop is not None and "trio" in _ki.modules:
            _ki.protect_if_trio_imported()  # see Primitive._library()
        task = None
        if (
            not backend.always_checkpoints
            and not backend.tracks_owners
            and not self._always_checkpoint
        ):
            # asyncio's rules, and no checkpoint asked for: as asyncio.Lock.
            if (
                not self._locked
                and not self._handoffs
                and not (self._waiters and self._waiters.has_waiting_in_place())
            ):
                self._locked = True
                return True
        else:
            if backend.always_checkpoints:
                await backend.checkpoint_if_cancelled()
            if backend.tracks_owners:
                task = backend.current_task()
                if task is self._owner:
                    raise RuntimeError("attempt to re-acquire an already held Lock")
            if (
                not self._locked
                and not self._handoffs
                and not (self._waiters and self._waiters.has_waiting_in_place())
            ):
                if self._always_checkpoint and not backend.always_checkpoints:
                    # It will yield to its loop's library, as a wait would: a
                    # trio task is refused before it takes the lock.
                    self._check_may_yield(backend)
                    # As anyio's lock: no lock for a task already cancelled (in
                    # an anyio scope: asyncio's own are found only at the yield).
                    await backend.checkpoint_if_cancelled()
                if task is None:
                    self._locked = True
                else:
                    self._take(backend, task)
                if backend.always_checkpoints or self._always_checkpoint:
                    try:
                        await backend.cancel_shielded_checkpoint()
                    except BaseException:
                        Lock.release(self)  # cancelled there, as only asyncio can
                        raise
                return True
        if self._broken:
            # From None, as trio's: a traceback shows the break alone, not the
            # exception being handled (a cancelled Condition.wait() taking it).
            raise self._broken_error(backend) from None

        waiter = self._new_waiter(backend)
        if task is not None:
            self._waiting_tasks[waiter] = task
        self._waiters.park(waiter)
        try:
            handed = await waiter
        except BaseException:
            self._withdraw(waiter, backend)
            raise
        if handed is _BROKEN:
            raise self._broken_error(backend) from None
        if backend.wakeup_revocable:
            # Handed over provisionally (see release()): now it is ours.
            self._handoffs -= 1
            self._locked = True
        return True

    # As asyncio's, trio's and anyio's: a subclass's acquire(), or one patched
    # on the class or the lock, is what runs.
    @ki_protected
    async def __aenter__(self) -> None:
        await self.acquire()

    @ki_protected
    def acquire_nowait(self) -> None:
        """Acquire the lock without blocking.

        Raises :exc:`~loopsync.WouldBlock` if the lock is held, or if tasks
        are waiting for it (under asyncio, also if it was just handed to a
        task that has not resumed yet).
        """
        try:
            backend = self._library()
        except RuntimeError:
            if self._in_use() and running_backend() is not None:
                # In use by tasks of another library (trio as a guest of
                # asyncio), which only a task that must wait is refused for.
                raise self._would_block() from None
            raise
        task = None
        if backend.tracks_owners:
            task = backend.current_task()
            if task is self._owner:
                raise RuntimeError("attempt to re-acquire an already held Lock")
        if (
            self._locked
            or self._handoffs
            or (self._waiters and self._waiters.has_waiting_in_place())
        ):
            raise self._would_block()
        self._take(backend, task)

    def _take_at_once(self) -> bool:
        """Take the lock and return True if asyncio's acquire() would take it
        without yielding; return False otherwise (asyncio only)."""
        if (
            self._locked
            or self._handoffs
            or self._always_checkpoint
            or (self._waiters and self._waiters.has_waiting_in_place())
            # A subclass's acquire(), or one patched on the class or the
            # lock, is called instead, as asyncio's condition calls it.
            or getattr(self.acquire, "__func__", None) is not _own_acquire
        ):
            return False
        self._locked = True
        return True

    async def _take_back(self, backend: Backend) -> None:
        """Acquire the lock even if cancelled meanwhile (a Condition's
        wait()); the cancellation comes afterwards."""
        # A lock that always checkpoints could never be taken in an anyio
        # scope, which cancels again at each yield: shielded from it, as in
        # anyio's condition over its lock.
        await backend.uncancellable(self.acquire, shield_scopes=self._always_checkpoint)

    def _take(self, backend: Backend, task: Any) -> None:
        self._locked = True
        if task is not None:
            self._owner = task
            self._watch_owner(backend)

    def _watch_owner(self, backend: Backend) -> None:
        """Break the lock if its owner exits holding it (trio only)."""
        if self._exit_watch is None:
            self._exit_watch = backend.exit_watch(_owner_exited_weakly(self))
        backend.watch_exit(self._owner, self._exit_watch)

    def _broken_error(self, backend: Backend) -> Exception:
        return backend.broken_resource_error()(
            f"Owner of this lock exited without releasing: {self._owner}"
        )

    @ki_protected
    def _owner_exited(self, task: Any) -> None:
        """Break the lock: its owner exited without releasing it (trio only);
        the waiting and later acquire() calls raise BrokenResourceError."""
        self._broken = True
        self._waiting_tasks.clear()
        self._waiters.wake_all(_BROKEN)

    def _withdraw(self, waiter: Waiter, backend: Backend) -> None:
        """Clean up after an exception left a wait in acquire()."""
        self._waiting_tasks.pop(waiter, None)
        if waiter.cancelled() or cancel_waiter(waiter):
            # Cancelled while waiting, or something else was thrown in (such
            # as asyncio refusing a waiter of another loop).
            self._waiters.note_cancelled(waiter)
            if backend.wakeup_revocable and not self._locked and not self._handoffs:
                # A release() found this waiter first, cancelled, and woke
                # nobody (as asyncio's does): its task passes the lock on.
                self._hand_over()
        elif backend.wakeup_revocable:
            # Handed the lock, then cancelled before it could resume (asyncio
            # only): pass it on (bpo-27585).
            self._handoffs -= 1
            self._hand_over()
        else:
            self._pass_on(backend)

    def _hand_over(self) -> None:
        """Hand the free lock to the first waiting task, provisionally until
        it resumes, unless that task was cancelled and has not left (asyncio)."""
        # Counted first: waking a task of a closed loop raises once its
        # waiter is done, and the task, destroyed later, uncounts it.
        self._handoffs += 1
        # anyio's lock (always_checkpoint) passes over the cancelled waiters
        # at once, where asyncio's waits for the first one's task to leave.
        if self._always_checkpoint:
            woken = self._waiters.wake_first(True)
        else:
            woken = self._waiters.wake_first_in_place(True)
        if woken is None:
            self._handoffs -= 1

    def _pass_on(self, backend: Backend) -> None:
        """Pass the owner's lock to the first waiting task, or free it (trio)."""
        backend.unwatch_exit(self._owner, self._exit_watch)
        waiter = self._waiters.wake_first(True) if self._waiters else None
        if waiter is None:
            self._locked = False
            self._owner = None
        else:
            self._owner = self._waiting_tasks.pop(waiter)
            self._watch_owner(backend)

    @ki_protected
    def release(self) -> None:
        """Release the lock, handing it to the first waiting task if any.

        Under asyncio, releasing a lock that is not held raises
        :exc:`RuntimeError`.  Under trio, only the task holding the lock may
        release it; any other raises :exc:`RuntimeError`.
        """
        backend = self._backend
        if not self._locked:
            if not self._in_use():
                # Nobody holds or waits for it: the caller's library words it.
                backend = running_backend()
            if backend is not None and backend.tracks_owners:
                raise RuntimeError("can't release a Lock you don't own")
            raise RuntimeError("Lock is not acquired.")
        if backend.tracks_owners:  # type: ignore[union-attr]  # set when locked
            try:
                task = backend.current_task()  # type: ignore[union-attr]
            except RuntimeError:
                if running_backend() is None:
                    current_backend()  # raises that no library runs the caller
                task = None  # another library runs the caller: not the owner
            if task is not self._owner:
                raise RuntimeError("can't release a Lock you don't own")
            self._pass_on(backend)  # type: ignore[arg-type]
        elif self._waiters:
            # A task of trio as a guest may hand an asyncio lock over: see
            # Primitive._library().  (Freeing a lock that nobody waits for
            # is one store, which a KeyboardInterrupt cannot split; a lock
            # with an owner is trio's, whose adapter, loaded, protects it.)
            if _ki.pending and "trio" in _ki.modules:
                _ki.protect_if_trio_imported()
            self._locked = False
            self._hand_over()
        else:
            self._locked = False

    def statistics(self) -> LockStatistics:
        """Return a :class:`LockStatistics` snapshot of this lock."""
        from ._statistics import LockStatistics

        return LockStatistics(
            locked=self._locked, owner=self._owner, tasks_waiting=self._waiters.count_waiting()
        )

    @ki_protected
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "_always_checkpoint": self._always_checkpoint}

    def __setstate__(self, state: dict[str, Any]) -> None:
        Lock.__init__(self, always_checkpoint=state.pop("_always_checkpoint"))
        self._restore(state)


# Lock's own acquire(), whatever is later patched on the class.
_own_acquire = Lock.acquire
