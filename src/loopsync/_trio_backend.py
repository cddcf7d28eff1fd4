"""The trio adapter (also used for anyio's trio backend)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import outcome
import sniffio
import trio

from ._backend import _ki_protected
from ._exceptions import BrokenBarrierError
from ._waitqueue import WaiterQueue

__all__ = ["TrioBackend"]

for _func in _ki_protected:
    trio.lowlevel.enable_ki_protection(_func)


class _Waiter:
    """A parked trio task; it tells its queue when its wait is aborted."""

    __slots__ = ("_task", "pending", "queue", "woken")

    def __init__(self, queue: WaiterQueue) -> None:
        self._task = trio.lowlevel.current_task()
        self.queue = queue
        self.pending = True
        self.woken = False
        queue.append(self)

    def wake(self, value: Any = None) -> bool:
        if not self.pending:
            return False
        self.pending = False
        self.woken = True
        trio.lowlevel.reschedule(self._task, outcome.Value(value))
        return True

    def cancel(self) -> bool:
        if not self.pending:
            return False
        self.pending = False
        self.queue.forget()
        return True

    def abort(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        # Runs the moment trio delivers a cancellation; a task that was
        # already rescheduled is never aborted, so a wake-up cannot be lost.
        self.cancel()
        return trio.lowlevel.Abort.SUCCEEDED


class TrioBackend:
    """Backend for trio."""

    name = "trio"
    sniffio_local: Any = sniffio.thread_local
    sniffio_name: str | None = "trio"
    checkpoints = True
    cancellable_after_wake = False
    cancelled_error: type[BaseException] = trio.Cancelled
    broken_barrier_error: type[BrokenBarrierError] = BrokenBarrierError

    def current_loop(self) -> object:
        # trio's own primitives may be used from one trio.run() after
        # another, so a primitive binds to trio itself, not to one run.
        if not trio.lowlevel.in_trio_task():
            raise RuntimeError("not called from a trio task")
        return trio

    def create_waiter(self, queue: WaiterQueue) -> _Waiter:
        return _Waiter(queue)

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        trio.lowlevel.current_trio_token().run_sync_soon(callback, *args)

    def park(self, waiter: Any) -> Awaitable[Any]:
        return trio.lowlevel.wait_task_rescheduled(waiter.abort)  # noqa: ASYNC105 - awaited by the caller

    # trio's own functions, not wrappers: the fast path of acquire() awaits
    # two of them, and a coroutine frame more would cost more than they do.
    checkpoint = staticmethod(trio.lowlevel.checkpoint)
    checkpoint_if_cancelled = staticmethod(trio.lowlevel.checkpoint_if_cancelled)
    cancel_shielded_checkpoint = staticmethod(trio.lowlevel.cancel_shielded_checkpoint)
