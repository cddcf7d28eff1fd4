"""What every loopsync primitive shares: the library it serves and its loop.

A primitive follows the library that runs the calling task until a task first
waits on it under asyncio.  Then, as asyncio's primitives do, it binds to the
running loop: from then on it is an asyncio primitive of that loop, and a task
of another loop, or of another library, that must wait on it gets
``RuntimeError("... is bound to a different event loop")``.  trio's waiters
belong to no loop, so under trio a primitive stays free.

The tasks waiting on a primitive are all of one library, whose adapter
``_backend`` is; a task of another library that must wait meanwhile gets a
RuntimeError.  So every wake-up follows the rules of the library of the task
it wakes.

Primitives accept new attributes and weak references, as asyncio's do, and
can be copied and pickled while no task waits on them; a copy is bound to no
loop.
"""

from __future__ import annotations

import _thread
import sys
from typing import TYPE_CHECKING, Any

from . import _ki
from ._adapters import current_backend, running_backend
from ._backend import Backend, Loop, Waiter
from ._exceptions import WouldBlock, would_block_error

if TYPE_CHECKING:
    from ._waitqueue import WaiterQueue

__all__ = ["Primitive", "cancel_waiter"]


def cancel_waiter(waiter: Waiter) -> bool:
    """Return ``waiter.cancel()``, also for a waiter of a closed loop, which
    its cancel() cancels before failing to schedule the task's wake-up."""
    try:
        return waiter.cancel()
    except RuntimeError:
        # Its task can only be destroyed (as it is, if this runs in its
        # except clause): asyncio's primitives let such a task go silently.
        if waiter.cancelled():
            return True
        raise


class Primitive:
    """Base class: the library a primitive serves, the loop it is bound to
    (see "Loop binding" in ``_backend``), repr, copies and pickles."""

    __slots__ = ("__dict__", "__weakref__", "_backend", "_loop")

    def __init__(self) -> None:
        # The adapter of the tasks waiting, or else of the last caller.
        self._backend: Backend | None = None
        # Once set, it fixes self._backend to the adapter of its library for good.
        self._loop: Loop | None = None

    def _in_use(self) -> bool:
        """Return True while tasks wait on the primitive, or have been woken
        and have not resumed yet (or hold it, for a lock)."""
        raise NotImplementedError

    def _library(self) -> Backend:
        """Return the adapter of the library running the current task, or the
        asyncio adapter once the primitive is bound to a loop."""
        backend = self._backend
        if backend is None or (self._loop is None and not backend.is_current()):
            return self._follow_library()
        if _ki.pending and self._loop is not None and "trio" in _ki.modules:
            # A bound primitive never looks the library up, so under trio the
            # adapter, which protects loopsync from KeyboardInterrupt as it
            # loads, may not have loaded yet.  (An unbound one gets here only
            # with its adapter current: trio's, loaded, or asyncio's, with
            # trio not running.)
            _ki.protect_if_trio_imported()
        return backend

    def _follow_library(self) -> Backend:
        """Make the adapter of the running library the primitive's, and
        return it; raise RuntimeError if tasks of another library wait on it."""
        backend = current_backend()
        if backend is not self._backend:
            if self._in_use():
                raise self._other_library_uses()
            self._backend = backend
        return backend

    def _caller_library(self) -> Backend | None:
        """Return the adapter of the library running the caller, which may not
        be the one the primitive follows (see _follow_library()); None if no
        library runs it."""
        backend = self._backend
        if backend is None or not backend.is_current():
            backend = running_backend()
            if backend is not None and self._loop is None and not self._in_use():
                self._backend = backend  # as _library() would: looked up once
        return backend

    def _would_block(self) -> WouldBlock:
        """Return the WouldBlock to raise, native to the running library."""
        backend = self._caller_library()
        if backend is not None:
            return backend.would_block_error()()
        # No library that loopsync supports runs the caller (synchronous code
        # before trio.run(), or a worker thread), where trio's own primitives
        # raise trio's WouldBlock all the same: so does this, once trio is
        # imported.
        return would_block_error("trio" if "trio" in sys.modules else "asyncio")()

    def _new_waiter(self, backend: Backend) -> Waiter:
        """Return a waiter of *backend* for the current task, binding to its
        loop at the first wait under asyncio; raise RuntimeError if the task
        runs on another loop."""
        loop = self._loop
        if loop is None:
            loop = backend.current_loop()
            if loop is not None:
                # Tasks of two threads may get here at once: as in asyncio,
                # one binds the primitive and the other is refused.
                with _binding:
                    if self._loop is None:
                        self._loop = loop
                if self._loop is not loop:
                    raise self._bound_elsewhere()
        elif not backend.runs_on(loop):
            raise self._bound_elsewhere()
        return backend.create_waiter(loop=loop)

    def _check_may_yield(self, backend: Backend) -> None:
        """Raise RuntimeError if the primitive is bound to a loop and its
        library does not run the caller: a yield to *backend* would fail
        there, as a wait would."""
        if self._loop is not None and not backend.is_current():
            raise self._bound_elsewhere()

    def _other_library_uses(self) -> RuntimeError:
        return RuntimeError(f"{self!r} is in use by tasks of another async library")

    def _bound_elsewhere(self) -> RuntimeError:
        return RuntimeError(f"{self!r} is bound to a different event loop")

    def _repr_state(self) -> str:
        raise NotImplementedError

    @staticmethod
    def _with_waiters(state: str, waiters: WaiterQueue) -> str:
        """Return *state*, with asyncio's ``waiters:N`` if tasks wait."""
        waiting = waiters.count_waiting()
        return f"{state}, waiters:{waiting}" if waiting else state

    def __repr__(self) -> str:
        # asyncio's format: the default repr with the state inside it.
        return f"<{object.__repr__(self)[1:-1]} [{self._repr_state()}]>"

    def __getstate__(self) -> dict[str, Any]:
        # Subclasses add their state, and restore it in __setstate__() by
        # _restore().  A user's subclass may keep attributes in slots.
        if self._in_use():
            raise TypeError(f"cannot pickle or copy {self!r} while it is in use")
        state = dict(self.__dict__)
        slots = {
            name: getattr(self, name) for name in _user_slots(type(self)) if hasattr(self, name)
        }
        if slots:
            state[_SLOTS_KEY] = slots
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        """Set the attributes __getstate__() saved that the subclass's
        __setstate__() left in *state*."""
        for name, value in state.pop(_SLOTS_KEY, {}).items():
            object.__setattr__(self, name, value)
        self.__dict__.update(state)


# Held while a primitive binds to a loop (see Primitive._new_waiter()).
_binding = _thread.allocate_lock()

# Where __getstate__() keeps a user's subclass's slots: no attribute name.
_SLOTS_KEY = "<slots>"


def _user_slots(cls: type) -> list[str]:
    """Return the names of the slots that classes outside loopsync add."""
    names = []
    for klass in cls.__mro__:
        if klass.__module__.partition(".")[0] == "loopsync":
            continue
        slots = klass.__dict__.get("__slots__", ())
        for name in [slots] if isinstance(slots, str) else slots:
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{klass.__name__.lstrip('_')}{name}"  # as Python mangles it
            if name not in ("__dict__", "__weakref__"):
                names.append(name)
    return names
