"""The trio adapter (also used for anyio's trio backend)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import outcome
import sniffio
import trio

from ._backend import _ki_protected
from ._exceptions import BrokenBarrierError

__all__ = ["TrioBackend"]

for _func in _ki_protected:
    trio.lowlevel.enable_ki_protection(_func)


class _Waiter:
    """A parked trio task, with the methods of a future that loopsync uses."""

    __slots__ = ("_cancelled", "_done", "_result", "_task")

    def __init__(self, *, loop: object = None) -> None:
        # *loop* is never given: get_loop() reports none to bind to.
        self._task = trio.lowlevel.current_task()
        self._done = False
        self._cancelled = False
        self._result: Any = None

    def get_loop(self) -> None:
        # trio's own primitives may be used from one trio.run() after
        # another, so a primitive does not bind to a trio run.
        return None

    def done(self) -> bool:
        return self._done

    def cancelled(self) -> bool:
        return self._cancelled

    def set_result(self, value: Any) -> None:
        self._done = True
        self._result = value
        trio.lowlevel.reschedule(self._task, outcome.Value(value))

    def result(self) -> Any:
        return self._result

    def cancel(self) -> bool:
        if self._done:
            return False
        self._done = self._cancelled = True
        return True

    def _abort(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        # Runs the moment trio delivers a cancellation; a task that was
        # already rescheduled is never aborted, so a wake-up cannot be lost.
        self.cancel()
        return trio.lowlevel.Abort.SUCCEEDED

    def __await__(self) -> Generator[Any, None, Any]:
        return trio.lowlevel.wait_task_rescheduled(self._abort).__await__()  # noqa: ASYNC105


class TrioBackend:
    """Backend for trio."""

    name = "trio"
    sniffio_local: Any = sniffio.thread_local
    sniffio_name: str | None = "trio"
    checkpoints = True
    cancellable_after_wake = False
    cancelled_error: type[BaseException] = trio.Cancelled
    broken_barrier_error: type[BrokenBarrierError] = BrokenBarrierError

    create_waiter = _Waiter

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        trio.lowlevel.current_trio_token().run_sync_soon(callback, *args)

    # trio's own functions, not wrappers: the fast path of acquire() awaits
    # two of them, and a coroutine frame more would cost more than they do.
    checkpoint = staticmethod(trio.lowlevel.checkpoint)
    checkpoint_if_cancelled = staticmethod(trio.lowlevel.checkpoint_if_cancelled)
    cancel_shielded_checkpoint = staticmethod(trio.lowlevel.cancel_shielded_checkpoint)
