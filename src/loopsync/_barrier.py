"""Barrier."""

from __future__ import annotations

import operator

from ._backend import ki_protected
from ._primitive import Primitive
from ._waitqueue import WaiterQueue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from types import TracebackType
    from typing import Any

    from ._backend import Backend

__all__ = ["Barrier"]

_RETRY = object()


class _State:
    # Plain strings, compared by identity, rather than an enum: importing
    # enum would take longer than the rest of `import loopsync`.
    FILLING = "filling"
    DRAINING = "draining"
    RESETTING = "resetting"
    BROKEN = "broken"


class Barrier(Primitive):
    """A barrier that works under asyncio, uvloop, trio and anyio.

    A barrier blocks tasks in :meth:`wait` until *parties* of them are
    waiting, then releases them all at once.  It can be reused any number of
    times.  ``async with barrier as index:`` is the same as
    ``index = await barrier.wait()``.

    If *action* is given, it is called with no arguments by one of the tasks
    when the barrier trips, before any task is released.  If it raises, the
    barrier is broken: that task gets the exception, the others
    :exc:`~loopsync.BrokenBarrierError`.

    Under asyncio it behaves as :class:`asyncio.Barrier` of Python 3.13 and
    its errors are also :exc:`asyncio.BrokenBarrierError`; trio has no barrier
    of its own, and there :meth:`wait` is a checkpoint like any trio call.

    Raises :exc:`ValueError` if *parties* is less than 1 and
    :exc:`TypeError` if it is not an integer.
    """

    # States: FILLING -> DRAINING -> FILLING when the barrier trips, and
    # FILLING/DRAINING -> RESETTING -> FILLING after reset(); abort() moves to
    # BROKEN from anywhere, and only reset() leaves it.
    # Invariants:
    # - self._fillers holds the tasks waiting for the barrier to trip, in
    #   arrival order; a task's index is its position there when it trips;
    # - self._leaving counts the tasks released (by a trip, reset() or
    #   abort()) that have not resumed yet; the barrier leaves DRAINING or
    #   RESETTING when it reaches 0;
    # - self._blocked holds tasks that arrived while the barrier was DRAINING
    #   or RESETTING; they try again once it is FILLING (asyncio only);
    # - self._admissions holds, oldest first, the held-back tasks whose
    #   arrival a pending callback (_admit) will make, one queue per callback.
    __slots__ = ("_action", "_admissions", "_blocked", "_fillers", "_leaving", "_parties", "_state")

    def __init__(self, parties: int, action: Callable[[], object] | None = None) -> None:
        try:
            parties = operator.index(parties)
        except TypeError:
            raise TypeError(f"parties must be an integer, not {type(parties).__name__}") from None
        if parties < 1:
            raise ValueError("parties must be > 0")
        if action is not None and not callable(action):
            raise TypeError(f"action must be callable or None, not {type(action).__name__}")
        super().__init__()
        self._parties = parties
        self._action = action
        self._state = _State.FILLING
        self._fillers = WaiterQueue()
        self._blocked = WaiterQueue()
        self._leaving = 0
        self._admissions: list[WaiterQueue] = []

    def _repr_state(self) -> str:
        state = self._state
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
        return self._fillers.waiting() if self._state is _State.FILLING else 0

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
        backend = self._current_backend()
        if backend.checkpoints:
            await backend.checkpoint_if_cancelled()
        while True:
            state = self._state
            if state is _State.FILLING:
                queue = self._fillers
                # Fillers that were cancelled as the last to arrive (say, after
                # a timeout) go at once; the rest only when an arrival may
                # fill the barrier and counts the fillers exactly, sweeping
                # them out.
                while queue and queue[-1].done():
                    queue.pop()
                if len(queue) + 1 >= self._parties and queue.sweep() + 1 == self._parties:
                    self._trip()
                    if backend.checkpoints:
                        await backend.cancel_shielded_checkpoint()
                    return self._parties - 1
            elif state is _State.BROKEN:
                if backend.checkpoints:
                    await backend.cancel_shielded_checkpoint()
                raise backend.broken_barrier_error("Barrier aborted")
            else:
                # Tasks of the previous cycle are still leaving: join the next
                # one.  (Only under asyncio: under trio the barrier never drains.)
                queue = self._blocked
            # Checked at once: a task of another loop that parked here, even
            # for one iteration, could fill and trip the barrier.
            waiter = self._create_checked_waiter(backend)
            queue.append(waiter)
            try:
                woken_with = await waiter
            except BaseException:
                if not waiter.done() or waiter.cancelled():
                    # A waiter cancelled while the barrier filled took no index
                    # and counts nowhere; this also covers anything else thrown
                    # into the task.
                    waiter.cancel()
                    # It may have moved from self._blocked to self._fillers
                    # since it parked: tell both, as a queue told too often
                    # only sweeps a little sooner.
                    self._fillers.forget()
                    self._blocked.forget()
                elif backend.cancellable_after_wake and waiter.result() is not _RETRY:
                    # Released by the trip, reset() or abort() (asyncio only),
                    # then cancelled before it could resume: it leaves all the
                    # same.  A task held back by a drain and woken only to
                    # look at the state again never counted.
                    self._leave()
                self._check_loop()
                raise
            if woken_with is not _RETRY:
                break
        # An index if the barrier tripped, None if it was reset or aborted.
        # As in asyncio, a task released by the trip still fails if the
        # barrier was reset or aborted before it could resume.
        if backend.cancellable_after_wake:
            broken = woken_with is None or self._state is not _State.DRAINING
            self._leave()
        else:
            broken = woken_with is None
        if broken:
            raise backend.broken_barrier_error("Abort or reset of barrier")
        return woken_with  # type: ignore[no-any-return]

    def _trip(self) -> None:
        if self._action is not None:
            try:
                self._action()
            except BaseException:
                self._break()
                raise
        self._release_fillers(numbered=True)
        if self._leaving:
            self._state = _State.DRAINING

    def _release_fillers(self, numbered: bool) -> None:
        """Wake every task waiting for the trip, in arrival order.

        Under asyncio they still count as inside the barrier until they have
        resumed, since they may be cancelled or see a reset() before that.
        A woken trio task cannot be cancelled and its outcome is the value it
        was woken with, so under trio they are gone at once and the barrier
        never drains or resets: the next cycle can start filling right away.
        """
        released = self._fillers.wake_all(numbered=numbered)
        backend = self._backend
        if backend is not None and backend.cancellable_after_wake:
            self._leaving += released

    def _leave(self) -> None:
        """Count out a released task that has resumed (asyncio only)."""
        self._leaving -= 1
        if self._leaving == 0 and self._state is not _State.BROKEN:
            # The last one has left: start the next cycle.
            self._state = _State.FILLING
            self._readmit_blocked()

    def _readmit_blocked(self) -> None:
        """Let the tasks that arrived while the barrier drained or reset try
        again, as asyncio wakes them all to look at the state once more."""
        blocked = self._blocked
        waiting = blocked.sweep()
        if self._action is not None or waiting < 2:
            # The action runs in the task that trips the barrier, so with one
            # every task resumes and arrives by itself.
            blocked.wake_all(_RETRY)
            return
        # Resuming a task only for it to park again costs a task switch, the
        # most expensive step of a barrier.  So a callback does their arrivals
        # instead, run where the first of them would have resumed: in asyncio
        # nothing runs between their resumptions but their own arrivals, so
        # one callback stands for them all.  But a task whose arrival trips
        # the barrier must run then, in its own task.  So the callback only
        # takes as many as cannot trip the barrier even if one more task
        # arrives before it runs (as the task that ended the drain does, when
        # the tasks of a cycle loop on wait()); the others resume.  (The
        # barrier has no fillers yet: they all left or were released.)
        admitted = WaiterQueue()
        blocked.move_to(admitted, min(self._parties - 2, waiting - 1))
        if admitted:
            self._admissions.append(admitted)
            assert self._backend is not None
            self._backend.call_soon(self._admit)
        blocked.wake_all(_RETRY)

    def _admit(self) -> None:
        """Let the tasks of the oldest pending admission arrive, in order, as
        each of them would on resuming."""
        admitted = self._admissions.pop(0)
        if self._state is _State.FILLING:
            # They become fillers, parked where they are.
            fillers = self._fillers
            last = admitted.move_to(fillers, self._parties - fillers.sweep())
            if len(fillers) < self._parties:
                return
            # More tasks arrived since the drain ended than the callback could
            # allow for, and the last one moved trips the barrier.  It cannot
            # run now, as it would in asyncio: it is released first, ahead of
            # the others.  The rest of *admitted* would look at the state once
            # it has run: a second callback, queued behind it, lets them in.
            assert last is not None
            assert self._backend is not None
            last.set_result(self._parties - 1)
            self._leaving += 1
            if admitted.has_waiting():
                self._admissions.append(admitted)
                self._backend.call_soon(self._admit)
            self._trip()
        elif self._state is not _State.BROKEN:
            # Draining or resetting again: they queue up behind the tasks that
            # arrived since.  (Once broken, _break() has woken them already.)
            admitted.move_to(self._blocked, len(admitted))

    def _break(self) -> None:
        self._state = _State.BROKEN
        # Tasks due to be admitted by a callback have been woken already in
        # asyncio, before the tasks woken here: they must resume, first, to
        # raise BrokenBarrierError.
        for blocked in self._admissions:
            blocked.wake_all(_RETRY)
        self._release_fillers(numbered=False)
        self._blocked.wake_all(_RETRY)

    @ki_protected
    async def reset(self) -> None:
        """Return the barrier to the default, empty state.

        Tasks waiting on it get :exc:`~loopsync.BrokenBarrierError`; the
        barrier starts filling again once they have all left.
        """
        backend = self._current_backend()
        self._release_fillers(numbered=False)
        self._state = _State.RESETTING if self._leaving else _State.FILLING
        # As in asyncio, tasks blocked by a draining barrier look at the state
        # again when they next run, and get in at once if the last released
        # task has left by then.
        self._readmit_blocked()
        await self._checkpoint_after_update(backend)

    @ki_protected
    async def abort(self) -> None:
        """Put the barrier into the broken state.

        Tasks waiting on it, and those that call :meth:`wait` until
        :meth:`reset` is called, get :exc:`~loopsync.BrokenBarrierError`.
        """
        backend = self._current_backend()
        self._break()
        await self._checkpoint_after_update(backend)

    async def _checkpoint_after_update(self, backend: Backend) -> None:
        # Under trio, reset() and abort() act first and checkpoint after, as
        # trio's aclose() methods do: a cancelled caller still gets the effect.
        # (They look up the backend before they act: under trio, that loads
        # the adapter, which protects them from KeyboardInterrupt.)
        if backend.checkpoints:
            await backend.checkpoint()

    def __aenter__(self) -> Coroutine[Any, Any, int]:
        # wait() itself, not a coroutine awaiting it: a frame less.
        return self.wait()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
