"""httpcore's ``_synchronization`` module, over loopsync's primitives.

``tests/clients/run_httpcore.py`` puts this file in place of
``httpcore/_synchronization.py`` in a copy of httpcore's sdist, then runs
httpcore's own tests against it.  It offers every name httpcore's other
modules import from there:

- the async classes, ``AsyncLock``, ``AsyncEvent`` and ``AsyncSemaphore``,
  are thin wrappers of :class:`loopsync.Lock`, :class:`loopsync.Event` and
  :class:`loopsync.Semaphore`, which follow whichever of asyncio and trio
  runs them: no per-library branches, and nothing set up on first use;
- ``AsyncShieldCancellation`` and the timeout of ``AsyncEvent.wait()`` need a
  cancel scope, which loopsync has not: under trio they use trio's, under
  asyncio anyio's, as httpcore does (its asyncio support requires anyio);
- ``AsyncThreadLock`` does nothing, as in httpcore; the thread-based
  classes (``Lock``, ``ThreadLock``, ``Event``, ``Semaphore``,
  ``ShieldCancellation``) wrap :mod:`threading`;
- ``current_async_library()`` is what ``httpcore._backends.auto`` asks.

Under asyncio, anyio's lock and semaphore yield once in ``acquire()`` even
when free, and loopsync's do not unless asked: :data:`ALWAYS_CHECKPOINT` asks
(``tests/clients/bench_httpcore.py`` measures why).
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

import sniffio
from httpcore._exceptions import PoolTimeout

import loopsync

__all__ = [
    "ALWAYS_CHECKPOINT",
    "AsyncEvent",
    "AsyncLock",
    "AsyncSemaphore",
    "AsyncShieldCancellation",
    "AsyncThreadLock",
    "Event",
    "Lock",
    "Semaphore",
    "ShieldCancellation",
    "ThreadLock",
    "current_async_library",
]

# Whether an AsyncLock or AsyncSemaphore created from now on yields once in
# acquire() under asyncio even when it need not wait, as anyio's do (under
# trio acquire() always does).  httpcore's HTTP/1.1 pool hands a freed
# connection to every queued request at once, and all but one find it taken
# and queue again; with locks that never yield when free, more of them do,
# and the pool's CPU time grows faster with the queue (bench_httpcore.py
# measures it).  With this on, the pool schedules as with anyio's locks.
ALWAYS_CHECKPOINT = True


def current_async_library() -> str:
    """Return ``"asyncio"`` or ``"trio"``, whichever runs the current task.

    Raises :exc:`RuntimeError` under any other library, or when the one
    running lacks what httpcore needs for it (anyio for asyncio).
    """
    library = sniffio.current_async_library()
    if library == "asyncio":
        try:
            import anyio  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "Running with asyncio requires installation of 'httpcore[asyncio]'."
            ) from None
    elif library == "trio":
        try:
            import trio  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "Running with trio requires installation of 'httpcore[trio]'."
            ) from None
    else:
        raise RuntimeError("Running under an unsupported async environment.")
    return library


def _cancel_scope(*, deadline_in: float | None = None, shield: bool = False) -> Any:
    """A cancel scope of the running library: trio's, or anyio's under asyncio."""
    if current_async_library() == "trio":
        import trio

        scope = trio.CancelScope(shield=shield)
        if deadline_in is not None:
            scope.deadline = trio.current_time() + deadline_in
        return scope
    import anyio

    deadline = anyio.current_time() + deadline_in if deadline_in is not None else float("inf")
    return anyio.CancelScope(deadline=deadline, shield=shield)


# -- async --------------------------------------------------------------------


class AsyncLock:
    """A lock for tasks, taken with ``async with`` (which binds the lock)."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = loopsync.Lock(always_checkpoint=ALWAYS_CHECKPOINT)

    async def __aenter__(self) -> AsyncLock:
        await self._lock.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self._lock.release()


class AsyncThreadLock:
    """Stands in for :class:`ThreadLock` in async code: tasks of one event
    loop need no thread lock, so entering it does nothing."""

    __slots__ = ()

    def __enter__(self) -> AsyncThreadLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        return None


class AsyncEvent:
    """An event that :meth:`wait` can give up on after a timeout."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = loopsync.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float | None = None) -> None:
        """Wait until the event is set; after *timeout* seconds (if not None),
        raise :exc:`httpcore.PoolTimeout` instead."""
        if timeout is None:
            await self._event.wait()
            return
        scope = _cancel_scope(deadline_in=timeout)
        with scope:
            await self._event.wait()
        if scope.cancelled_caught:
            raise PoolTimeout(f"no connection was free within {timeout} s")


class AsyncSemaphore:
    """A semaphore of *bound* permits that can never hold more than *bound*."""

    __slots__ = ("_semaphore",)

    def __init__(self, bound: int) -> None:
        self._semaphore = loopsync.Semaphore(
            bound, max_value=bound, always_checkpoint=ALWAYS_CHECKPOINT
        )

    async def acquire(self) -> None:
        await self._semaphore.acquire()

    async def release(self) -> None:
        self._semaphore.release()


class AsyncShieldCancellation:
    """``with AsyncShieldCancellation():`` runs its body shielded from any
    cancellation of the task, so that clean-up (closing connections) ends."""

    __slots__ = ("_scope",)

    def __init__(self) -> None:
        self._scope = _cancel_scope(shield=True)

    def __enter__(self) -> AsyncShieldCancellation:
        self._scope.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self._scope.__exit__(exc_type, exc_value, traceback)


# -- threads ------------------------------------------------------------------


class Lock:
    """A lock for threads, taken with ``with`` (which binds the lock)."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> Lock:
        self._lock.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self._lock.release()


class ThreadLock(Lock):
    """The lock that guards a pool's state between threads."""

    __slots__ = ()

    def __enter__(self) -> ThreadLock:
        self._lock.acquire()
        return self


class Event:
    """An event for threads, whose :meth:`wait` can time out."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the event is set; after *timeout* seconds (if neither
        None nor infinite), raise :exc:`httpcore.PoolTimeout` instead."""
        if timeout == float("inf"):
            timeout = None
        if not self._event.wait(timeout):
            raise PoolTimeout(f"no connection was free within {timeout} s")


class Semaphore:
    """A semaphore for threads, of *bound* permits."""

    __slots__ = ("_semaphore",)

    def __init__(self, bound: int) -> None:
        self._semaphore = threading.Semaphore(bound)

    def acquire(self) -> None:
        self._semaphore.acquire()

    def release(self) -> None:
        self._semaphore.release()


class ShieldCancellation:
    """Threads cannot be cancelled: there is nothing to shield from."""

    __slots__ = ()

    def __enter__(self) -> ShieldCancellation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        return None
