"""Choosing the adapter of the async library that runs the current task."""

from __future__ import annotations

import sys

from ._backend import Backend
from ._thread_library import asyncio_runs_on_top_of_trio

__all__ = ["current_backend", "current_library", "running_backend"]

_SUPPORTED = ("asyncio", "trio")
_backends: dict[str | None, Backend] = {}


def current_library() -> str | None:
    """Return the sniffio name of the async library running the caller, or
    None if none runs it."""
    import sniffio

    try:
        name = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        # sniffio finds asyncio by its current task; a callback of a running
        # loop (call_soon(), a protocol's) has none, and asyncio's primitives
        # work there all the same.
        asyncio = sys.modules.get("asyncio")
        return "asyncio" if asyncio and asyncio._get_running_loop() else None
    if name == "trio" and asyncio_runs_on_top_of_trio():
        return "asyncio"  # asyncio.run() called by a trio task: sniffio says trio
    return name


def current_backend() -> Backend:
    """Return the adapter for the async library running the current task.

    Raises RuntimeError if that library is not supported or none is running.
    """
    name = current_library()
    backend = _backends.get(name)
    if backend is not None:
        return backend
    if name == "asyncio":
        from ._asyncio_backend import AsyncioBackend

        backend = AsyncioBackend()
    elif name == "trio":
        from ._trio_backend import TrioBackend

        backend = TrioBackend()
    else:
        found = "no async library" if name is None else repr(name)
        raise RuntimeError(f"loopsync found {found} running; it supports {', '.join(_SUPPORTED)}")
    # One per library, also when threads make it at once: primitives compare
    # adapters by identity.
    return _backends.setdefault(name, backend)


def running_backend() -> Backend | None:
    """Return current_backend(), or None if no library that loopsync
    supports runs the caller."""
    try:
        return current_backend()
    except RuntimeError:
        return None
