"""Event."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from . import _ki
from ._adapters import running_backend
from ._ki import ki_protected
from ._primitive import Primitive, cancel_waiter
from ._waitqueue import WaiterQueue

if TYPE_CHECKING:
    from ._statistics import EventStatistics

__all__ = ["Event"]


class Event(Primitive):
    """An event that works under asyncio, uvloop, trio and anyio.

    An event holds a flag, false at first.  :meth:`set` makes it true and
    wakes every task waiting in :meth:`wait`; :meth:`clear` makes it false
    again.  A task woken by :meth:`set` returns from :meth:`wait` even if the
    event is cleared before it resumes.

    Under asyncio it behaves as :class:`asyncio.Event` of Python 3.13.  Under
    trio it behaves as :class:`trio.Event`, and also has :meth:`clear`, which
    trio's has not; as trio's, it refuses to be used as a truth value there.

    .. versionadded:: 0.2
    """

    __slots__ = ("_flag", "_waiters")

    def __init__(self) -> None:
        super().__init__()
        self._flag = False
        self._waiters = WaiterQueue()

    def _in_use(self) -> bool:
        return self._waiters.has_waiting()

    def _repr_state(self) -> str:
        return self._with_waiters("set" if self._flag else "unset", self._waiters)

    def is_set(self) -> bool:
        """Return True if the flag is set."""
        return self._flag

    @ki_protected
    def set(self) -> None:
        """Set the flag, and wake every task waiting for it."""
        if _ki.pending and "trio" in _ki.modules:
            _ki.protect_if_trio_imported()
        if not self._flag:
            self._flag = True
            if self._waiters:
                self._waiters.wake_all(True)

    @ki_protected
    def clear(self) -> None:
        """Clear the flag; tasks calling :meth:`wait` then block until
        :meth:`set` is called again."""
        self._flag = False

    @ki_protected
    async def wait(self) -> Literal[True]:
        """Wait until the flag is set, then return True.

        Under asyncio this returns at once, without yielding, if the flag is
        set; under trio it is always a checkpoint.
        """
        # self._library(), inlined: a set event's wait() is a hot path.
        backend = self._backend
        if backend is None or (self._loop is None and not backend.is_current_awaited()):
            backend = self._follow_library()
        elif _ki.pending and self._loop is not None and "trio" in _ki.modules:
            _ki.protect_if_trio_imported()  # see Primitive._library()
        if self._flag:
            if backend.always_checkpoints:
                await backend.checkpoint()
            return True
        waiter = self._new_waiter(backend)
        self._waiters.park(waiter)
        try:
            await waiter
        except BaseException:
            # Woken by set(), then cancelled before resuming (asyncio): the
            # wake-up was this task's alone, so nothing is passed on.
            if waiter.cancelled() or cancel_waiter(waiter):
                self._waiters.note_cancelled(waiter)
            raise
        return True

    def statistics(self) -> EventStatistics:
        """Return an :class:`EventStatistics` snapshot of this event."""
        from ._statistics import EventStatistics

        return EventStatistics(tasks_waiting=self._waiters.count_waiting())

    def __bool__(self) -> bool:
        """Return True, as asyncio's events do; under trio, raise
        :exc:`NotImplementedError`, as trio's do (use :meth:`is_set`)."""
        backend = running_backend()
        if backend is not None and backend.event_bool_error is not None:
            raise NotImplementedError(backend.event_bool_error)
        return True

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "_flag": self._flag}

    def __setstate__(self, state: dict[str, Any]) -> None:
        Event.__init__(self)
        self._flag = state.pop("_flag")
        self._restore(state)
