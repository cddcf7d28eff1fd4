"""What a primitive may ask of the event loop it runs on.

Primitives are written against :class:`Backend`; one adapter implements it
for asyncio (``_asyncio_backend``) and one for trio (``_trio_backend``).
:func:`current_backend` picks the adapter of the running library with sniffio
and imports it on first use, so ``import loopsync`` imports neither library.

A wait goes like this: the primitive calls ``create_waiter()`` for a new
:class:`Waiter` for the current task, appends it to one of its queues, and
awaits it.  Whoever wakes the task takes the waiter off the queue and calls
its ``set_result(value)``; the ``await`` then gives *value*.  A waiter has the
methods of an :class:`asyncio.Future` that this needs, so under asyncio it is
a plain future, which the event loop handles fastest.  If the task is
cancelled first, the waiter is done but not woken: it stays in the queue,
where waking passes it over, and the task tells the queue (``forget()``) as
it leaves.
"""

from __future__ import annotations

import sys

# typing is for type checkers only: importing it, and sniffio (which imports
# it too), when loopsync is imported would triple the time that takes.  At
# run time the protocols below are plain classes that document the adapters.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from typing import Any, Protocol, TypeVar

    from ._exceptions import BrokenBarrierError

    _F = TypeVar("_F", bound=Callable[..., Any])
else:
    Protocol = object

__all__ = ["Backend", "Loop", "Waiter", "current_backend", "ki_protected", "protect_under_trio"]


class Loop(Protocol):
    """The event loop a waiter belongs to, as primitives see it (asyncio's)."""

    def is_running(self) -> bool:
        """Return True while the loop runs."""


class Waiter(Protocol):
    """A one-shot wake-up for one parked task.

    Awaiting it parks the task until it is woken, and gives the value it was
    woken with.  If the task is cancelled first, the waiter is cancelled the
    moment the library delivers the cancellation, before the task runs again,
    so that nobody wakes it any more; the await then raises the library's
    cancellation exception.
    """

    def get_loop(self) -> Loop | None:
        """Return the event loop the waiter belongs to, which primitives bind
        to, or None if it belongs to none (trio)."""

    def done(self) -> bool:
        """Return True once the waiter is woken or cancelled."""

    def cancelled(self) -> bool:
        """Return True if the waiter was cancelled."""

    def set_result(self, value: Any) -> None:
        """Schedule the parked task to resume with *value*.

        Only for a waiter that is not done.
        """

    def result(self) -> Any:
        """Return the value a woken waiter was woken with."""

    def cancel(self) -> bool:
        """Withdraw a waiter that is not done, as a cancellation does.

        Return False, and do nothing, if it was done already.
        """

    def __await__(self) -> Generator[Any, None, Any]:
        """Park the current task until the waiter is woken."""


class Backend(Protocol):
    """The operations a primitive needs from an async library."""

    name: str
    """The library's name as sniffio reports it."""

    sniffio_local: Any
    """``sniffio.thread_local``, to be looked at on every call."""

    sniffio_name: str | None
    """What ``sniffio_local.name`` holds while this library runs (trio sets
    it, asyncio does not): a check cheap enough for every call, to notice that
    a primitive is now used under another library."""

    checkpoints: bool
    """True when every blocking call must be a checkpoint even if it need not
    wait (trio); False when a call that can finish at once must not yield
    (asyncio)."""

    cancellable_after_wake: bool
    """True when a woken task can still be cancelled before it resumes
    (asyncio), so whatever it was handed stays provisional until it runs."""

    cancelled_error: type[BaseException]
    """The exception the library raises in a cancelled task."""

    broken_barrier_error: type[BrokenBarrierError]
    """What a broken barrier raises; under asyncio it also subclasses
    ``asyncio.BrokenBarrierError``."""

    def create_waiter(self, *, loop: Any = None) -> Waiter:
        """Return a new waiter for the current task.

        *loop*, if given, is what an earlier waiter's ``get_loop()`` returned:
        the new waiter belongs to it without a lookup of the running loop, and
        awaiting it from another loop or library raises an exception.
        """

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        """Call ``callback(*args)`` from the event loop once the tasks and
        callbacks already scheduled have run."""

    async def checkpoint(self) -> None:
        """Check for cancellation and let other tasks run."""

    async def checkpoint_if_cancelled(self) -> None:
        """Raise if the current task is cancelled, without yielding otherwise."""

    async def cancel_shielded_checkpoint(self) -> None:
        """Let other tasks run without checking for cancellation."""


_SUPPORTED = ("asyncio", "trio")
_backends: dict[str | None, Backend] = {}


def current_backend() -> Backend:
    """Return the adapter for the async library running in this thread.

    Raises RuntimeError if that library is not supported or none is running.
    """
    import sniffio

    try:
        name: str | None = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        name = None
    if name in _backends:
        return _backends[name]
    backend: Backend
    if name == "asyncio":
        from ._asyncio_backend import AsyncioBackend

        backend = AsyncioBackend()
    elif name == "trio":
        from ._trio_backend import TrioBackend

        backend = TrioBackend()
    else:
        found = "no async library" if name is None else repr(name)
        raise RuntimeError(f"loopsync found {found} running; it supports {', '.join(_SUPPORTED)}")
    _backends[name] = backend
    return backend


_ki_protected: list[Callable[..., Any]] = []


def ki_protected(func: _F) -> _F:
    """Mark *func* as one that trio must not interrupt with KeyboardInterrupt.

    The function is returned unchanged; the trio adapter protects every marked
    function when it loads, so asyncio pays nothing for it.
    """
    _ki_protected.append(func)
    return func


def protect_under_trio() -> None:
    """Have the trio adapter protect the marked functions now if trio is
    imported, for a call that may run under trio before any loopsync call
    has looked up the backend."""
    if "trio" in sys.modules and "loopsync._trio_backend" not in sys.modules:
        from . import _trio_backend  # noqa: F401 - loading it protects them
