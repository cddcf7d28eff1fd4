"""The asyncio adapter (also used for uvloop and anyio's asyncio backend)."""

from __future__ import annotations

import asyncio
import sys

import sniffio

from ._exceptions import BrokenBarrierError, WouldBlock, native, would_block_error

__all__ = ["AsyncioBackend"]

_sniffio_local = sniffio.thread_local
_get_running_loop = asyncio._get_running_loop
_modules = sys.modules


class AsyncioBackend:
    """Backend for asyncio event loops, uvloop included.

    Its checkpoint methods complete the protocol, but primitives do not call
    them under asyncio (``always_checkpoints`` is False).
    """

    always_checkpoints = False
    wakeup_revocable = True
    broken_barrier_error: type[BrokenBarrierError] = (
        native("AsyncioBrokenBarrierError")  # type: ignore[assignment]
        if sys.version_info >= (3, 11)
        else BrokenBarrierError  # asyncio has no Barrier before 3.11
    )

    # A plain future, not a subclass: the C Task awaits and wakes exact
    # futures along a faster path.
    create_waiter = asyncio.Future

    def would_block_error(self) -> type[WouldBlock]:
        return would_block_error("asyncio")

    # trio (and any library that sets sniffio's thread-local) may run on top
    # of a running asyncio loop, as its guest: asyncio runs the current task
    # only while that thread-local is unset.
    if sys.version_info >= (3, 12):

        def is_current(self) -> bool:
            return _sniffio_local.name is None and _get_running_loop() is not None

        def is_running_loop(self, loop: asyncio.AbstractEventLoop) -> bool:
            return _get_running_loop() is loop and _sniffio_local.name is None

    else:
        # Before 3.12 a look-up of the running loop costs a system call.

        def is_current(self) -> bool:
            # Spared unless curio, the one library that sniffio finds neither
            # by its thread-local nor by a running loop, is imported.
            return _sniffio_local.name is None and (
                "curio" not in _modules or _get_running_loop() is not None
            )

        def is_running_loop(self, loop: asyncio.AbstractEventLoop) -> bool:
            # At most one loop runs in a thread, so a running *loop* runs the
            # current task, unless the task is of another thread (where
            # asyncio's own primitives are not safe either).
            return loop.is_running() and _sniffio_local.name is None

    def current_loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def is_wrong_loop_error(self, exc: BaseException) -> bool:
        # Task.__step() throws "Task ... got Future ... attached to a different loop".
        return isinstance(exc, RuntimeError)

    async def checkpoint(self) -> None:
        await asyncio.sleep(0)

    async def checkpoint_if_cancelled(self) -> None:
        # asyncio delivers a cancellation only when the task suspends.
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
