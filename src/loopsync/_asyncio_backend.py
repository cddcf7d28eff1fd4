"""The asyncio adapter (also used for uvloop and anyio's asyncio backend)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import sniffio

from ._exceptions import BrokenBarrierError

__all__ = ["AsyncioBackend"]


if sys.version_info >= (3, 11):

    class _BrokenBarrierError(BrokenBarrierError, asyncio.BrokenBarrierError):
        __doc__ = BrokenBarrierError.__doc__

    _BrokenBarrierError.__module__ = "loopsync"
    _BrokenBarrierError.__qualname__ = _BrokenBarrierError.__name__ = "BrokenBarrierError"
else:  # asyncio has no Barrier before 3.11
    _BrokenBarrierError = BrokenBarrierError


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

    # A plain future, not a subclass that would hear of its cancellation: the
    # C Task awaits and wakes exact futures along a faster path, worth more
    # than a tenth of a contended hand-off.  The class itself creates it, for
    # a Python call less.
    create_waiter = asyncio.Future

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        asyncio.get_running_loop().call_soon(callback, *args)

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
