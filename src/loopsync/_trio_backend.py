"""The trio adapter (also used for anyio's trio backend)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

import outcome
import sniffio
import trio

from . import _ki
from ._exceptions import BrokenBarrierError, WouldBlock, would_block_error
from ._thread_library import asyncio_runs_on_top_of_trio

__all__ = ["TrioBackend", "protect"]

_sniffio_local = sniffio.thread_local  # read as in _asyncio_backend
_modules = sys.modules
_current_task = trio.lowlevel.current_task
_reschedule = trio.lowlevel.reschedule
_Value = outcome.Value
_wait_task_rescheduled = trio.lowlevel.wait_task_rescheduled
_T = TypeVar("_T")


def protect(func: Callable[..., Any]) -> None:
    """Have trio protect *func* from KeyboardInterrupt."""
    trio.lowlevel.enable_ki_protection(func)


def _protects_in_place() -> bool:
    """Return True if trio marks a function itself protected (from 0.28 on);
    before, it returned a protected copy, leaving the function unprotected."""

    def probe() -> None:
        """Nothing: only marked."""

    return trio.lowlevel.enable_ki_protection(probe) is probe


_supported = _protects_in_place()
for _func in _ki.marked:
    protect(_func)
# Protection passes to what a protected function calls: a user's code it
# calls (a barrier's action, which may run for long) goes through this one,
# so that Ctrl-C stops it as it would stop the same code called by the task.
trio.lowlevel.disable_ki_protection(_ki.call_unprotected)
_ki.pending = False


class _Waiter:
    """A parked trio task, with the methods of a future that loopsync uses."""

    __slots__ = ("_cancelled", "_done", "_result", "_task")

    def __init__(self, *, loop: None = None) -> None:
        self._task: trio.lowlevel.Task | None = _current_task()
        self._done = False
        self._cancelled = False
        self._result: Any = None

    def done(self) -> bool:
        return self._done

    def cancelled(self) -> bool:
        return self._cancelled

    def set_result(self, value: Any) -> None:
        self._done = True
        self._result = value
        _reschedule(self._task, _Value(value))  # type: ignore[arg-type]  # None once done
        # A queue may record a waiter after its task has left (see
        # WaiterQueue.note_cancelled()): it must not keep the task's run alive.
        self._task = None

    def result(self) -> Any:
        return self._result

    def cancel(self) -> bool:
        if self._done:
            return False
        self._done = self._cancelled = True
        self._task = None  # as in set_result()
        return True

    def _abort(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        # Runs the moment trio delivers a cancellation; a task that was
        # already rescheduled is never aborted, so a wake-up cannot be lost.
        self.cancel()
        return trio.lowlevel.Abort.SUCCEEDED

    def __await__(self) -> Generator[Any, None, Any]:
        return _wait_task_rescheduled(self._abort).__await__()


class _ExitWatch:
    """What trio's parking-lot breaker hooks expect: its ``break_lot(task)``
    runs as a watched task exits."""

    __slots__ = ("break_lot",)

    def __init__(self, on_exit: Callable[[Any], None]) -> None:
        self.break_lot = on_exit


class TrioBackend:
    """Backend for trio."""

    broken_barrier_error = BrokenBarrierError  # trio has no barrier
    event_bool_error: str | None = (
        "Trio events cannot be treated as bools; consider using `event.is_set()` instead."
    )

    create_waiter = _Waiter

    def __init__(self) -> None:
        if not _supported:
            # Refused only here, as a trio task uses a primitive: loading this
            # module (trio imported under asyncio) must not fail.
            raise RuntimeError(f"loopsync needs trio 0.28 or newer, not trio {trio.__version__}")
        # The flags as instance attributes only: Python reads them faster
        # than class attributes, and 3.12+ slower when a class one shadows.
        self.always_checkpoints = True
        self.wakeup_revocable = False
        self.tracks_owners = True

    def would_block_error(self) -> type[WouldBlock]:
        return would_block_error("trio")

    def broken_resource_error(self) -> type[Exception]:
        return trio.BrokenResourceError

    current_task = staticmethod(trio.lowlevel.current_task)

    # trio's own hooks for a lock whose owner exits (trio#3035): they call
    # break_lot(task) on the watch, as on a parking lot.
    exit_watch = _ExitWatch
    watch_exit = staticmethod(trio.lowlevel.add_parking_lot_breaker)
    unwatch_exit = staticmethod(trio.lowlevel.remove_parking_lot_breaker)

    def is_current(self) -> bool:
        # asyncio may run on top of trio, if a loop runs (asked inline: this
        # is on every call that looks the library up under trio).
        return _sniffio_local.__dict__.get("name") == "trio" and (
            "asyncio" not in _modules
            or _modules["asyncio"]._get_running_loop() is None
            or not asyncio_runs_on_top_of_trio()
        )

    is_current_awaited = is_current  # trio's own primitives need trio

    def current_loop(self) -> None:
        # trio's own primitives may be used from one trio.run() after
        # another, so a primitive does not bind to a trio run.
        return None

    def runs_on(self, loop: object) -> bool:
        return False

    # trio's own functions, not wrappers: a coroutine frame less.
    checkpoint = staticmethod(trio.lowlevel.checkpoint)
    checkpoint_if_cancelled = staticmethod(trio.lowlevel.checkpoint_if_cancelled)
    cancel_shielded_checkpoint = staticmethod(trio.lowlevel.cancel_shielded_checkpoint)

    @trio.lowlevel.enable_ki_protection
    async def uncancellable(
        self, async_fn: Callable[[], Awaitable[_T]], *, shield_scopes: bool = False
    ) -> _T:
        with trio.CancelScope(shield=True):
            result = await async_fn()
        return result
