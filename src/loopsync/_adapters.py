"""Choosing the adapter of the async library that runs the current task."""

from __future__ import annotations

from ._backend import Backend

__all__ = ["current_backend"]

_SUPPORTED = ("asyncio", "trio")
_backends: dict[str, Backend] = {}


def current_backend() -> Backend:
    """Return the adapter for the async library running the current task.

    Raises RuntimeError if that library is not supported or none is running.
    """
    import sniffio

    try:
        name = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        name = None
    backend = _backends.get(name)  # type: ignore[arg-type]
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
    _backends[name] = backend
    return backend
