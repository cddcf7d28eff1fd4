"""The asyncio adapter (also used for uvloop and anyio's asyncio backend)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import sniffio

from ._exceptions import BrokenBarrierError, WouldBlock, native, would_block_error
from ._thread_library import asyncio_runs_on_top_of_trio

__all__ = ["AsyncioBackend"]

# What trio sets while it runs a task in this thread: read through the
# thread's own dict, which costs half the attribute look-up of a
# threading.local subclass (the class is searched first).
_sniffio_local = sniffio.thread_local
_get_running_loop = asyncio._get_running_loop
if sys.version_info >= (3, 12):
    _task_of = asyncio.current_task
else:
    # current_task(loop) looks the running loop up all the same before 3.12;
    # the table it then reads is at hand.
    _task_of = asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]
_modules = sys.modules
_T = TypeVar("_T")


def _anyio_backend() -> Any:
    """Return anyio's backend for asyncio if anyio has run on asyncio (its
    scopes may then hold cancellations), else None."""
    module = _modules.get("anyio._backends._asyncio")
    return None if module is None else module.backend_class


class AsyncioBackend:
    """Backend for asyncio event loops, uvloop included; primitives call its
    checkpoints only where asked to (``always_checkpoint=True``)."""

    event_bool_error: str | None = None
    broken_barrier_error: type[BrokenBarrierError] = (
        native("AsyncioBrokenBarrierError")  # type: ignore[assignment]
        if sys.version_info >= (3, 11)
        else BrokenBarrierError  # asyncio has no Barrier before 3.11
    )

    # A plain future, not a subclass: the C Task awaits and wakes exact
    # futures along a faster path.
    create_waiter = asyncio.Future

    def __init__(self) -> None:
        # The flags as instance attributes only: Python reads them faster
        # than class attributes, and 3.12+ slower when a class one shadows.
        self.always_checkpoints = False
        self.wakeup_revocable = True
        self.tracks_owners = False

    def would_block_error(self) -> type[WouldBlock]:
        return would_block_error("asyncio")

    current_task = staticmethod(asyncio.current_task)

    # asyncio's locks have no owner (tracks_owners is False): never called.
    def broken_resource_error(self) -> NoReturn:
        raise NotImplementedError("asyncio's locks have no owner")

    def exit_watch(self, on_exit: Callable[[Any], None]) -> NoReturn:
        raise NotImplementedError("asyncio's locks have no owner")

    def watch_exit(self, task: Any, watch: Any) -> NoReturn:
        raise NotImplementedError("asyncio's locks have no owner")

    def unwatch_exit(self, task: Any, watch: Any) -> NoReturn:
        raise NotImplementedError("asyncio's locks have no owner")

    def is_current(self) -> bool:
        # trio may run on top of a running asyncio loop (as its guest, or
        # called by a task), and says so in sniffio's thread-local, a costly
        # read: spared until trio is imported.  (Other libraries that set it,
        # loopsync does not support.)  An asyncio loop may in turn run on top
        # of trio (asyncio.run() called by a trio task), which sniffio misses.
        return (
            "trio" not in _modules
            or _sniffio_local.__dict__.get("name") is None
            or asyncio_runs_on_top_of_trio()
        ) and _get_running_loop() is not None

    def is_current_awaited(self) -> bool:
        # No look-up of the running loop (a system call before Python 3.12),
        # but with curio imported: the one library that sniffio finds neither
        # by its thread-local nor by a running loop.
        return (
            "trio" not in _modules
            or _sniffio_local.__dict__.get("name") is None
            or asyncio_runs_on_top_of_trio()
        ) and ("curio" not in _modules or _get_running_loop() is not None)

    def runs_on(self, loop: Any) -> bool:
        # Not if another loop runs in this thread, or trio runs on top of
        # *loop* (as its guest, or called by one of its tasks), or *loop* runs
        # a task in another thread: asyncio's primitives ask for the running
        # loop too, and is_current() tells trio.
        return (
            _get_running_loop() is loop
            and _task_of(loop) is not None
            and (
                "trio" not in _modules
                or _sniffio_local.__dict__.get("name") is None
                or asyncio_runs_on_top_of_trio()
            )
        )

    def current_loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    async def checkpoint(self) -> None:
        await asyncio.sleep(0)

    async def checkpoint_if_cancelled(self) -> None:
        # asyncio delivers a cancellation only when the task suspends, and
        # cannot tell one that is pending; anyio tells its scopes', and its
        # own checkpoint waits for one there.
        anyio_backend = _anyio_backend()
        if anyio_backend is not None:
            await anyio_backend.checkpoint_if_cancelled()

    async def cancel_shielded_checkpoint(self) -> None:
        anyio_backend = _anyio_backend()
        if anyio_backend is not None:
            # anyio's own, whose shield holds its scopes' cancellations back
            # and, as it ends, has them delivered at the next yield.
            await anyio_backend.cancel_shielded_checkpoint()
        else:
            # asyncio cannot hold a cancellation back (put back, one outlives
            # a timeout that ends before the task next suspends, before Python
            # 3.13): it goes on, and the caller gives back what it took, as
            # anyio's own lock does.
            await asyncio.sleep(0)

    async def uncancellable(
        self, async_fn: Callable[[], Awaitable[_T]], *, shield_scopes: bool = False
    ) -> _T:
        anyio_backend = _anyio_backend() if shield_scopes else None
        if anyio_backend is not None:
            # anyio's scopes' cancellations, which come again at every yield
            # until the task leaves the scope, are held back.
            with anyio_backend.create_cancel_scope(shield=True):
                return await self.uncancellable(async_fn)
        # asyncio cannot shield a task from cancellation: start again (at the
        # end of the lock's queue) after each one, and raise the last once
        # done, as asyncio.Condition.wait() does.
        cancelled = None
        while True:
            try:
                result = await async_fn()
                break
            except asyncio.CancelledError as exc:
                cancelled = exc
        if cancelled is not None:
            try:
                raise cancelled
            finally:
                cancelled = None  # no reference cycle through the traceback
        return result
