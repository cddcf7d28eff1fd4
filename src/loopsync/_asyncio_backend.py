"""The asyncio adapter (also used for uvloop and anyio's asyncio backend)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import sniffio

from ._exceptions import BrokenBarrierError
from ._waitqueue import WaiterQueue

__all__ = ["AsyncioBackend"]


if sys.version_info >= (3, 11):

    class _BrokenBarrierError(BrokenBarrierError, asyncio.BrokenBarrierError):
        __doc__ = BrokenBarrierError.__doc__

    _BrokenBarrierError.__module__ = "loopsync"
    _BrokenBarrierError.__qualname__ = _BrokenBarrierError.__name__ = "BrokenBarrierError"
else:  # asyncio has no Barrier before 3.11
    _BrokenBarrierError = BrokenBarrierError


class _Waiter(asyncio.Future[Any]):
    """A future that tells its queue the moment it is cancelled."""

    __slots__ = ("queue",)
    queue: WaiterQueue

    def cancel(self, msg: Any = None) -> bool:
        # Task.cancel() cancels the future its task awaits right away, but the
        # task only runs its cleanup on a later loop iteration.  Telling the
        # queue here, not in that cleanup, means that locked() and the waiter
        # count are right at once, and that a release() in between passes
        # this waiter over (anyio #1145, python/asyncio#270).  The queue hears
        # first: cancelling schedules the task's wake-up, which raises if the
        # loop is closed already (a task collected after loop.close()).
        if self.done():
            return False
        self.queue.forget()
        return super().cancel(msg)

    @property
    def pending(self) -> bool:
        return not self.done()

    @property
    def woken(self) -> bool:
        return self.done() and not self.cancelled()

    def wake(self, value: Any = None) -> bool:
        try:
            self.set_result(value)
        except asyncio.InvalidStateError:
            return False
        return True


class AsyncioBackend:
    """Backend for asyncio event loops, uvloop included.

    Its checkpoint methods complete the protocol but primitives do not call
    them under asyncio (``checkpoints`` is False): asyncio's primitives only
    yield when they must wait.
    """

    name = "asyncio"
    sniffio_local: Any = sniffio.thread_local
    sniffio_name: str | None = None
    checkpoints = False
    cancellable_after_wake = True
    cancelled_error: type[BaseException] = asyncio.CancelledError
    broken_barrier_error: type[BrokenBarrierError] = _BrokenBarrierError

    def current_loop(self) -> object:
        return asyncio.get_running_loop()

    def create_waiter(self, queue: WaiterQueue) -> _Waiter:
        # No __init__ of our own: Future's, in C, is the cheaper one.
        waiter = _Waiter(loop=asyncio.get_running_loop())
        waiter.queue = queue
        queue.append(waiter)
        return waiter

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        asyncio.get_running_loop().call_soon(callback, *args)

    def park(self, waiter: Any) -> Awaitable[Any]:
        # The waiter is a future: awaiting it directly saves a coroutine.
        return waiter  # type: ignore[no-any-return]

    async def checkpoint(self) -> None:
        await asyncio.sleep(0)

    async def checkpoint_if_cancelled(self) -> None:
        # asyncio delivers a cancellation only when the task suspends, so
        # there is nothing to check without yielding.
        return

    async def cancel_shielded_checkpoint(self) -> None:
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            # asyncio cannot yield without being cancellable: put the request
            # back, so that it lands at the task's next suspension instead.
            task = asyncio.current_task()
            assert task is not None
            if sys.version_info >= (3, 11):
                task.uncancel()
            task.cancel()
