"""Functions of the user's that loopsync calls and cannot await.

``inspect`` is imported only once such a function is given: ``import
loopsync`` stays light.
"""

from __future__ import annotations

__all__ = ["is_coroutine_function", "refuse_awaitable"]


def is_coroutine_function(func: object) -> bool:
    """Return True if calling *func* makes a coroutine."""
    import inspect

    if inspect.iscoroutinefunction(func):
        return True
    # An instance's __call__ runs when it is called; a class's does not.
    call = None if isinstance(func, type) else getattr(func, "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(call)


def refuse_awaitable(result: object, callback: str, caller: str) -> None:
    """Raise TypeError if *callback* returned something to await, which
    *caller* would never run (a coroutine is closed first)."""
    import inspect

    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        name = type(result).__name__
        raise TypeError(f"{callback} returned a {name}, which {caller} cannot await")
