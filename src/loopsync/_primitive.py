"""What every loopsync primitive shares: finding its backend and its loop."""

from __future__ import annotations

import sys

from ._backend import current_backend

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._backend import Backend, Loop, Waiter

__all__ = ["Primitive"]


class Primitive:
    """Base class that binds a primitive to an async library and event loop.

    A primitive follows the library that runs it, found with a glance at
    sniffio's thread-local, until a task first has to wait on it under
    asyncio.  Then, as in asyncio, it binds to the running loop: from then on
    it is an asyncio primitive of that loop, and waiting on it from another
    loop, or under another library, raises RuntimeError.  trio's waiters
    belong to no loop, so under trio a primitive stays free.
    """

    __slots__ = ("_backend", "_loop")

    def __init__(self) -> None:
        self._backend: Backend | None = None
        # Set only together with self._backend, which it then fixes.
        self._loop: Loop | None = None

    def _current_backend(self) -> Backend:
        """Return the backend to use: the running library's, unless the
        primitive is bound to a loop."""
        backend = self._backend
        if self._loop is None and (
            backend is None or backend.sniffio_local.name != backend.sniffio_name
        ):
            backend = self._backend = current_backend()
        return backend  # type: ignore[return-value]  # set when self._loop is

    def _create_waiter(self, backend: Backend) -> Waiter:
        """Return a new waiter of *backend* for the current task, binding to
        its loop if it has one and this is the first wait."""
        loop = self._loop
        if loop is not None:
            return backend.create_waiter(loop=loop)
        waiter = backend.create_waiter()
        self._loop = waiter.get_loop()
        return waiter

    def _create_checked_waiter(self, backend: Backend) -> Waiter:
        """Like :meth:`_create_waiter`, but raise asyncio's RuntimeError at
        once if the current task cannot be on the bound loop.

        For a primitive where a waiter its loop refuses should not count, not
        even for the moment before its task resumes (a barrier party).  Two
        attribute reads stand in for a look-up of the running loop, which
        costs a system call: one loop at most runs in a thread, so a task is
        on a bound loop that is running unless trio runs here as its guest
        (sniffio then names trio), or the task is of another thread.  Such a
        task, where asyncio's own primitives are not safe either, counts
        until its loop refuses the waiter, and :meth:`_check_loop` gives it
        the RuntimeError then.
        """
        loop = self._loop
        if loop is None:
            return self._create_waiter(backend)
        if not loop.is_running() or backend.sniffio_local.name != backend.sniffio_name:
            raise RuntimeError(f"{self!r} is bound to a different event loop")
        return backend.create_waiter(loop=loop)

    def _check_loop(self) -> None:
        """Raise asyncio's RuntimeError instead of the exception being
        handled, if that is how the library refused to let the current task
        wait on a loop other than the bound one.

        A waiter is created for the bound loop without looking the running
        loop up (under asyncio that costs a system call, a tenth of a
        contended hand-off).  So a task elsewhere learns of its mistake when
        it awaits the waiter: asyncio's Task throws a RuntimeError into it,
        trio a TypeError.  The task calls this as an exception leaves its
        wait, unless its waiter was cancelled: a refused waiter never is, for
        the task never made it the future it awaits.
        """
        if isinstance(sys.exc_info()[1], (RuntimeError, TypeError)) and (
            current_backend().create_waiter().get_loop() is not self._loop
        ):
            raise RuntimeError(f"{self!r} is bound to a different event loop") from None

    def _repr_state(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        # asyncio's format: the default repr with the state inside it.
        return f"<{object.__repr__(self)[1:-1]} [{self._repr_state()}]>"
