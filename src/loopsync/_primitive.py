"""What every loopsync primitive shares: finding its backend and its loop."""

from __future__ import annotations

from ._backend import current_backend

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._backend import Backend, Waiter

__all__ = ["Primitive"]


class Primitive:
    """Base class that binds a primitive to an async library and event loop.

    A primitive remembers the library that last used it, so that a call pays
    for no more than a glance at sniffio's thread-local to find it again.  As
    in asyncio, it binds to the running loop the first time a task has to
    wait on it; from then on, waiting from another loop (or another library)
    raises RuntimeError.
    """

    __slots__ = ("_backend", "_loop")

    def __init__(self) -> None:
        self._backend: Backend | None = None
        self._loop: object = None

    def _current_backend(self) -> Backend:
        """Return the running library's backend."""
        backend = self._backend
        if backend is None or backend.sniffio_local.name != backend.sniffio_name:
            backend = self._backend = current_backend()
        return backend

    def _bind_loop(self, waiter: Waiter) -> None:
        """Bind to the loop of *waiter*, whose task is about to wait on this
        primitive; callers check first that it is not the bound loop.

        Raises RuntimeError if bound to another loop already.
        """
        if self._loop is not None:
            raise RuntimeError(f"{self!r} is bound to a different event loop")
        self._loop = waiter.get_loop()

    def _repr_state(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        # asyncio's format: the default repr with the state inside it.
        return f"<{object.__repr__(self)[1:-1]} [{self._repr_state()}]>"
