"""What a primitive may ask of the event loop it runs on.

Primitives are written against :class:`Backend`; one adapter implements it
for asyncio (``_asyncio_backend``) and one for trio (``_trio_backend``).
:func:`current_backend` picks the adapter of the running library with sniffio
and imports it on first use, so ``import loopsync`` imports neither library.

A wait goes like this: the primitive calls ``create_waiter(queue)``, which
appends a new :class:`Waiter` for the current task to *queue*, then awaits
``park(waiter)``.  Whoever wakes the task calls ``queue.wake_first(value)``;
``park`` then returns *value*.  If the task is cancelled first, the adapter
tells the queue at the moment of cancellation (``queue.forget()``), so the
queue never counts, and never wakes, a waiter that will not take what it is
handed: its ``wake()`` returns False and the queue moves on to the next one.
"""

from __future__ import annotations

# typing is for type checkers only: importing it, and sniffio (which imports
# it too), when loopsync is imported would triple the time that takes.  At
# run time the protocols below are plain classes that document the adapters.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Any, Protocol, TypeVar

    from ._exceptions import BrokenBarrierError
    from ._waitqueue import WaiterQueue

    _F = TypeVar("_F", bound=Callable[..., Any])
else:
    Protocol = object

__all__ = ["Backend", "Waiter", "current_backend", "ki_protected"]


class Waiter(Protocol):
    """A one-shot wake-up for one parked task."""

    queue: WaiterQueue
    """The queue the waiter is in, which it tells when it is cancelled."""

    @property
    def pending(self) -> bool:
        """True until the waiter is woken or cancelled."""

    @property
    def woken(self) -> bool:
        """True once :meth:`wake` has succeeded."""

    def wake(self, value: Any = None) -> bool:
        """Schedule the parked task to resume with *value*.

        Return False, and do nothing, if the waiter was cancelled already: the
        caller must then hand whatever it meant to give to someone else.
        """

    def cancel(self) -> bool:
        """Withdraw a pending waiter, as a cancellation does: its queue stops
        counting it and will pass it over.

        Return False if it was woken or cancelled already.
        """


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

    def current_loop(self) -> object:
        """Return the identity of the running event loop, for loop binding."""

    def create_waiter(self, queue: WaiterQueue) -> Waiter:
        """Append a new waiter for the current task to the end of *queue*."""

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        """Call ``callback(*args)`` from the event loop once the tasks and
        callbacks already scheduled have run."""

    def park(self, waiter: Waiter) -> Awaitable[Any]:
        """Return an awaitable that blocks until *waiter* is woken, then gives
        the value it was woken with.

        Raises the library's cancellation exception if the task is cancelled
        first; the waiter's queue no longer counts it by then.
        """

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
