"""The exceptions loopsync raises, and their subclasses native to each library.

A primitive raises the public class, or a subclass of it that is also the
running library's own exception, so that ``except trio.WouldBlock`` or
``except asyncio.BrokenBarrierError`` keep working.  The subclasses are made
on first use, because ``import loopsync`` imports no event-loop library.
Each has a name of its own in this module, so that it pickles, and none
claims to be a class it is not.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["BrokenBarrierError", "WouldBlock"]


class WouldBlock(Exception):
    """Raised by a ``*_nowait`` method that would have had to wait.

    Under trio the exception raised is also a :exc:`trio.WouldBlock`, and
    whenever anyio is imported also an :exc:`anyio.WouldBlock`.  Where no
    async library runs, it is also a :exc:`trio.WouldBlock` once trio is
    imported, as trio's own primitives raise theirs there.

    .. versionadded:: 0.1
    """


class BrokenBarrierError(RuntimeError):
    """Raised when a :class:`~loopsync.Barrier` is broken while a task waits on it.

    Under asyncio (Python 3.11 and newer) the exception raised is also an
    :exc:`asyncio.BrokenBarrierError`.

    .. versionadded:: 0.1
    """


# name -> (loopsync's class, the modules whose class of the same name it also
# subclasses)
_NATIVE = {
    "AsyncioBrokenBarrierError": (BrokenBarrierError, ("asyncio",)),
    "TrioWouldBlock": (WouldBlock, ("trio",)),
    "AnyioWouldBlock": (WouldBlock, ("anyio",)),
    "TrioAnyioWouldBlock": (WouldBlock, ("trio", "anyio")),
}


def native(name: str) -> type[BaseException]:
    """Return the native subclass called *name*, making it on first use."""
    cls: type[BaseException] | None = globals().get(name)
    if cls is None:
        base, libraries = _NATIVE[name]
        natives = tuple(getattr(importlib.import_module(lib), base.__name__) for lib in libraries)
        # A library may have had loopsync's class put in place of its own.
        natives = tuple(cls for cls in natives if not issubclass(base, cls))
        doc = f"loopsync's {base.__name__}, as raised under {' and '.join(libraries)}."
        made = type(name, (base, *natives), {"__module__": __name__, "__doc__": doc})
        # Threads may make it at once: all raise the one that is kept, which
        # pickles (pickle finds exactly that class by its name).
        cls = globals().setdefault(name, made)
    return cls


def __getattr__(name: str) -> type[BaseException]:
    # How pickle finds a native subclass in a process that has not made it yet.
    if name not in _NATIVE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return native(name)


def would_block_error(library: str) -> type[WouldBlock]:
    """Return the WouldBlock subclass to raise under *library* ("asyncio" or
    "trio"): also anyio's whenever anyio is imported."""
    anyio = "Anyio" if "anyio" in sys.modules else ""
    if library == "trio":
        return native(f"Trio{anyio}WouldBlock")  # type: ignore[return-value]
    return native("AnyioWouldBlock") if anyio else WouldBlock  # type: ignore[return-value]
