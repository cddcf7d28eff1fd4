"""Barrier."""

from __future__ import annotations

import operator

from ._backend import ki_protected
from ._primitive import Primitive
from ._waitqueue import WaiterQueue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from ._backend import Backend

__all__ = ["Barrier"]


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
    #   or RESETTING; they try again once it is FILLING.
    __slots__ = ("_action", "_blocked", "_fillers", "_leaving", "_parties", "_state")

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
        return len(self._fillers) if self._state is _State.FILLING else 0

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
        while self._state is _State.DRAINING or self._state is _State.RESETTING:
            # Tasks of the previous cycle are still leaving: join the next one.
            # (Only under asyncio: under trio the barrier never drains.)
            await self._park(backend, self._blocked)
        if self._state is _State.BROKEN:
            if backend.checkpoints:
                await backend.cancel_shielded_checkpoint()
            raise backend.broken_barrier_error("Barrier aborted")
        index = len(self._fillers)
        if index + 1 < self._parties:
            return await self._wait_for_trip(backend)
        self._trip()
        if backend.checkpoints:
            await backend.cancel_shielded_checkpoint()
        return index

    async def _park(self, backend: Backend, queue: WaiterQueue) -> object:
        self._bind_loop(backend)
        waiter = backend.create_waiter(queue)
        try:
            return await backend.park(waiter)
        except BaseException:
            # A cancellation withdrew the waiter already; this covers anything
            # else thrown into the task.
            waiter.cancel()
            raise

    @ki_protected
    async def _wait_for_trip(self, backend: Backend) -> int:
        self._bind_loop(backend)
        waiter = backend.create_waiter(self._fillers)
        try:
            # An index if the barrier tripped, None if it was reset or aborted.
            index: int | None = await backend.park(waiter)
            # As in asyncio, a task released by the trip still fails if the
            # barrier was reset or aborted before it could resume.
            if index is None or (
                backend.cancellable_after_wake and self._state is not _State.DRAINING
            ):
                raise backend.broken_barrier_error("Abort or reset of barrier")
            return index
        finally:
            if not waiter.woken:
                # A waiter cancelled while the barrier filled took no index and
                # counts nowhere; this also covers anything else thrown in.
                waiter.cancel()
            elif backend.cancellable_after_wake:
                # Released (and perhaps cancelled since): one less to wait for.
                self._leaving -= 1
                if self._leaving == 0:
                    self._drained()

    def _release_fillers(self, with_indices: bool) -> None:
        """Wake every task waiting for the trip, in arrival order.

        Under asyncio they still count as inside the barrier until they have
        resumed, since they may be cancelled or see a reset() before that.
        A woken trio task cannot be cancelled and its outcome is the value it
        was woken with, so under trio they are gone at once and the barrier
        never drains or resets: the next cycle can start filling right away.
        """
        index = 0
        while self._fillers.wake_first(index if with_indices else None):
            index += 1
        backend = self._backend
        if backend is not None and backend.cancellable_after_wake:
            self._leaving += index

    def _trip(self) -> None:
        if self._action is not None:
            try:
                self._action()
            except BaseException:
                self._break()
                raise
        self._release_fillers(with_indices=True)
        if self._leaving:
            self._state = _State.DRAINING

    def _drained(self) -> None:
        """Start a new cycle once the last released task has left."""
        if self._state is _State.BROKEN:
            return
        self._state = _State.FILLING
        self._wake_blocked()

    def _wake_blocked(self) -> None:
        """Let tasks that arrived while the barrier drained or reset try again."""
        while self._blocked.wake_first():
            pass

    def _break(self) -> None:
        self._state = _State.BROKEN
        self._release_fillers(with_indices=False)
        self._wake_blocked()

    @ki_protected
    async def reset(self) -> None:
        """Return the barrier to the default, empty state.

        Tasks waiting on it get :exc:`~loopsync.BrokenBarrierError`; the
        barrier starts filling again once they have all left.
        """
        self._release_fillers(with_indices=False)
        self._state = _State.RESETTING if self._leaving else _State.FILLING
        # As in asyncio, tasks blocked by a draining barrier look at the state
        # again when they next run, and get in at once if the last released
        # task has left by then.
        self._wake_blocked()
        await self._checkpoint_after_update()

    @ki_protected
    async def abort(self) -> None:
        """Put the barrier into the broken state.

        Tasks waiting on it, and those that call :meth:`wait` until
        :meth:`reset` is called, get :exc:`~loopsync.BrokenBarrierError`.
        """
        self._break()
        await self._checkpoint_after_update()

    async def _checkpoint_after_update(self) -> None:
        # Under trio, reset() and abort() act first and checkpoint after, as
        # trio's aclose() methods do: a cancelled caller still gets the effect.
        backend = self._current_backend()
        if backend.checkpoints:
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
