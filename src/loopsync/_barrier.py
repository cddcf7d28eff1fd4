"""Barrier."""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable
from types import TracebackType
from typing import Any

from . import _ki
from ._backend import Backend
from ._callbacks import is_coroutine_function, refuse_awaitable
from ._ki import ki_protected
from ._primitive import Primitive, cancel_waiter
from ._waitqueue import WaiterQueue

__all__ = ["Barrier"]


class _State(enum.Enum):
    FILLING = "filling"
    TRIPPING = "tripping"
    DRAINING = "draining"
    RESETTING = "resetting"
    BROKEN = "broken"


# What a task held back by a drain is woken with: look at the state again.
_RETRY = object()


class Barrier(Primitive):
    """A barrier that works under asyncio, uvloop, trio and anyio.

    A barrier blocks tasks in :meth:`wait` until *parties* of them are
    waiting, then releases them all at once.  It can be reused any number of
    times.  ``async with barrier as index:`` is the same as
    ``index = await barrier.wait()``.

    If *action* is given, it is called with no arguments by one of the tasks
    when the barrier trips, before any task is released.  If it raises, the
    barrier is broken: that task gets the exception, the others
    :exc:`~loopsync.BrokenBarrierError`.  It must be a plain function: a
    coroutine function raises :exc:`TypeError`, and an action that returns
    something to await raises it as the barrier trips, breaking it.

    Under asyncio it behaves as :class:`asyncio.Barrier` of Python 3.13 and
    its errors are also :exc:`asyncio.BrokenBarrierError`; trio has no barrier
    of its own, and there :meth:`wait` is a checkpoint like any trio call.

    Raises :exc:`ValueError` if *parties* is less than 1 and
    :exc:`TypeError` if it is not an integer.

    .. versionadded:: 0.1
    """

    # States: FILLING -> DRAINING -> FILLING when the barrier trips (through
    # TRIPPING while the action runs), and FILLING/TRIPPING/DRAINING ->
    # RESETTING -> FILLING after reset(); abort() moves to BROKEN from
    # anywhere, and only reset() leaves it.
    # Invariants:
    # - self._fillers holds the tasks waiting for the barrier to trip, in
    #   arrival order; a task's index is its place there when it trips;
    # - self._leaving counts the tasks released (by a trip, reset() or
    #   abort()) that have not resumed yet (asyncio only: 0 under trio); the
    #   barrier leaves DRAINING or RESETTING when it reaches 0;
    # - self._blocked holds the tasks that arrived while the barrier was
    #   TRIPPING, DRAINING or RESETTING; they arrive again once it is FILLING.
    __slots__ = ("_action", "_blocked", "_fillers", "_leaving", "_parties", "_state")

    def __init__(self, parties: int, action: Callable[[], object] | None = None) -> None:
        try:
            parties = operator.index(parties)
        except TypeError:
            raise TypeError(f"parties must be an integer, not {type(parties).__name__}") from None
        if parties < 1:
            raise ValueError("parties must be > 0")
        if action is not None:
            if not callable(action):
                raise TypeError(f"action must be callable or None, not {type(action).__name__}")
            if is_coroutine_function(action):
                raise TypeError("action must be a plain function: a barrier cannot await it")
        super().__init__()
        self._parties = parties
        self._action = action
        self._state = _State.FILLING
        self._fillers = WaiterQueue()
        self._blocked = WaiterQueue()
        self._leaving = 0

    def _in_use(self) -> bool:
        return bool(self._leaving) or self._fillers.has_waiting() or self._blocked.has_waiting()

    def _repr_state(self) -> str:
        # While the action runs, the barrier has not tripped yet for others.
        state = "filling" if self._state is _State.TRIPPING else self._state.value
        if not self.broken:
            state += f", waiters:{self.n_waiting}/{self.parties}"
        return state

    @property
    def parties(self) -> int:
        """The number of tasks required to trip the barrier."""
        return self._parties

    @property
    def n_waiting(self) -> int:
        """The number of tasks currently waiting for the barrier to trip."""
        filling = self._state is _State.FILLING or self._state is _State.TRIPPING
        return self._fillers.count_waiting() if filling else 0

    @property
    def broken(self) -> bool:
        """True if the barrier is broken."""
        return self._state is _State.BROKEN

    @ki_protected
    async def wait(self) -> int:
        """Wait until *parties* tasks are waiting, then return.

        Return a unique index from ``0`` to ``parties - 1``: the task's place
        among this cycle's arrivals.  Raise
        :exc:`~loopsync.BrokenBarrierError` if the barrier is broken, or is
        reset or aborted while the task waits.  A task cancelled while it waits
        leaves without breaking the barrier.
        """
        # self._library(), inlined: this is the hot path.
        backend: Backend = self._backend  # type: ignore[assignment]  # checked below
        if self._loop is None:
            if backend is None or not backend.is_current_awaited():
                backend = self._follow_library()
        elif _ki.pending and "trio" in _ki.modules:
            _ki.protect_if_trio_imported()  # see Primitive._library()
        # Checked before the task counts, even if it need not wait: a task of
        # another loop or library must never fill the barrier.
        loop = self._loop
        if loop is not None and not backend.runs_on(loop):
            raise self._bound_elsewhere()
        if backend.always_checkpoints:
            await backend.checkpoint_if_cancelled()
        while True:
            state = self._state
            if state is _State.FILLING:
                queue = self._fillers
                # Cancelled fillers are counted out only when an arrival may
                # fill the barrier and counts the fillers exactly (but see the
                # except clause below).
                if len(queue) + 1 >= self._parties and queue.count_waiting() + 1 == self._parties:
                    self._trip()
                    if backend.always_checkpoints:
                        await backend.cancel_shielded_checkpoint()
                    return self._parties - 1
            elif state is _State.BROKEN:
                if backend.always_checkpoints:
                    await backend.cancel_shielded_checkpoint()
                raise backend.broken_barrier_error("Barrier aborted")
            else:
                # Tasks of the previous cycle are still leaving (only under
                # asyncio: under trio it never drains), or the action of this
                # one is running and started this task eagerly: wait for the
                # next cycle.
                queue = self._blocked
            # Primitive._new_waiter(), less the checks made above.
            waiter = (
                backend.create_waiter(loop=loop) if loop is not None else self._new_waiter(backend)
            )
            queue.park(waiter)
            try:
                woken_with = await waiter
            except BaseException:
                if cancel_waiter(waiter) or waiter.cancelled():
                    # A task cancelled (or hit by anything else) while it waited
                    # took no index and counts nowhere.  One cancelled as the
                    # last to arrive (say, after a timeout) goes at once, so
                    # that such tasks never make an arrival count the fillers.
                    queue.note_cancelled(waiter)
                    queue.drop_cancelled_tail()
                elif backend.wakeup_revocable and waiter.result() is not _RETRY:
                    # Released by a trip, reset() or abort(), then cancelled
                    # before it could resume (asyncio only): it leaves all the
                    # same.  A task woken only to look at the state again
                    # never counted.
                    self._leave()
                raise
            if woken_with is not _RETRY:
                break
        # An index if the barrier tripped, None if it was reset or aborted.
        # As in asyncio, a task released by the trip still fails if the
        # barrier was reset or aborted before it could resume.
        if backend.wakeup_revocable:
            broken = woken_with is None or self._state is not _State.DRAINING
            # self._leave(), inlined for all but the last to leave.
            if self._leaving > 1:
                self._leaving -= 1
            else:
                self._leave()
        else:
            broken = woken_with is None
        if broken:
            raise backend.broken_barrier_error("Abort or reset of barrier")
        return woken_with  # type: ignore[no-any-return]

    def _trip(self) -> None:
        if self._action is not None:
            # The action may start tasks eagerly (asyncio 3.12+) that call
            # wait(), reset() or abort() before the trip is done: the first
            # waits for the next cycle, the others act for themselves, and
            # the trip leaves what they did alone.
            self._state = _State.TRIPPING
            try:
                result = _ki.call_unprotected(self._action)
                if result is not None:
                    refuse_awaitable(result, "action", "a barrier")
            except BaseException:
                self._break()
                raise
            if self._state is not _State.TRIPPING:
                if self._state is _State.RESETTING and not self._leaving:
                    self._reopen()  # reset by the action, with nobody to drain
                return
        # Counted before the wake-up, which raises once all are woken if a
        # task's loop is closed (then that task, destroyed, counts out); and
        # after the action, which may have cancelled some.
        self._release_fillers(
            self._parties - 1 if self._action is None else self._fillers.count_waiting()
        )
        if self._leaving:
            self._state = _State.DRAINING
        elif self._state is _State.TRIPPING:
            # Nothing leaves (trio, or a barrier of one): the arrivals during
            # the action come in now, as they would after a drain.
            self._reopen()
        self._fillers.wake_all_numbered()

    def _release_fillers(self, released: int) -> None:
        """Count the *released* fillers as leaving, if they can still be
        cancelled before they resume (asyncio)."""
        # Under asyncio they are inside the barrier until they have resumed,
        # for they may be cancelled or see a reset() before that.  A woken
        # trio task cannot be cancelled and its outcome is the value it was
        # woken with, so under trio they are gone at once: the barrier never
        # drains or resets, and the next cycle can start filling right away.
        # The waiters were of self._backend's library (see Primitive).
        if self._backend.wakeup_revocable:  # type: ignore[union-attr]
            self._leaving += released

    def _leave(self) -> None:
        """Count out a released task that has resumed (asyncio only)."""
        self._leaving -= 1
        if self._leaving == 0 and self._state is not _State.BROKEN:
            self._reopen()  # the last one has left

    def _reopen(self) -> None:
        """Start the next cycle.  As in asyncio, the tasks held back look at
        the state again when they next run."""
        self._state = _State.FILLING
        if self._blocked:
            self._blocked.wake_all(_RETRY)

    def _break(self) -> None:
        self._state = _State.BROKEN
        self._release_fillers(self._fillers.count_waiting())  # as in _trip()
        self._fillers.wake_all(None)
        self._blocked.wake_all(_RETRY)

    @ki_protected
    async def reset(self) -> None:
        """Return the barrier to the default, empty state.

        Tasks waiting on it get :exc:`~loopsync.BrokenBarrierError`; the
        barrier starts filling again once they have all left.
        """
        backend = self._updater_library()
        self._release_fillers(self._fillers.count_waiting())  # as in _trip()
        # Reset by the action, it reopens only once the trip is done: an
        # arrival meanwhile would run the action again inside itself.
        resetting = self._leaving or self._state is _State.TRIPPING
        self._state = _State.RESETTING if resetting else _State.FILLING
        self._fillers.wake_all(None)
        # As in asyncio, tasks held back by a drain look at the state again
        # when they next run, and get in at once if nothing is leaving by then.
        self._blocked.wake_all(_RETRY)
        await self._checkpoint_after_update(backend)

    @ki_protected
    async def abort(self) -> None:
        """Put the barrier into the broken state.

        Tasks waiting on it, and those that call :meth:`wait` until
        :meth:`reset` is called, get :exc:`~loopsync.BrokenBarrierError`.
        """
        backend = self._updater_library()
        self._break()
        await self._checkpoint_after_update(backend)

    def _updater_library(self) -> Backend:
        """Return the caller's adapter, for reset() and abort(), which never
        wait: they may release tasks of another library (trio as a guest of
        asyncio), by the rules of those tasks' library."""
        return self._caller_library() or self._library()

    async def _checkpoint_after_update(self, backend: Backend) -> None:
        # Under trio, reset() and abort() act first and checkpoint after, as
        # trio's aclose() methods do: a cancelled caller still gets the effect.
        if backend.always_checkpoints:
            await backend.checkpoint()

    async def __aenter__(self) -> int:
        return await self.wait()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __getstate__(self) -> dict[str, Any]:
        return {
            **super().__getstate__(),
            "_parties": self._parties,
            "_action": self._action,
            "_broken": self.broken,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        Barrier.__init__(self, state.pop("_parties"), state.pop("_action"))
        if state.pop("_broken"):
            self._state = _State.BROKEN
        self._restore(state)
