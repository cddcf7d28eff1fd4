"""KeyboardInterrupt protection of loopsync's state changes under trio.

trio delivers a KeyboardInterrupt at any bytecode of a task, unless the code
running is protected; a primitive interrupted halfway through an update
would lose a permit.  Functions marked with :func:`ki_protected` are
protected, as trio protects its own primitives, once trio is imported: the
trio adapter protects them as it loads, and ``protect_if_trio_imported()``
loads it for a call that may run under trio before any call looked the
library up.  Under asyncio this costs nothing but that check.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "call_unprotected",
    "ki_protected",
    "marked",
    "modules",
    "pending",
    "protect_if_trio_imported",
]

_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")

marked: list[Callable[..., Any]] = []
"""The functions to protect, which the trio adapter protects as it loads."""

pending = True
"""True until the trio adapter has loaded and protected every marked function."""


def ki_protected(func: _F) -> _F:
    """Mark *func* for protection under trio; return it unchanged."""
    marked.append(func)
    if not pending:  # marked after the trio adapter loaded
        from ._trio_backend import protect

        protect(func)
    return func


def call_unprotected(func: Callable[[], _T]) -> _T:
    """Call *func*, the user's code, open to KeyboardInterrupt under trio even
    from a protected function (the trio adapter unprotects this one)."""
    return func()


def protect_if_trio_imported() -> None:
    """Load the trio adapter, which protects the marked functions, if trio
    is imported; callers check ``_ki.pending and "trio" in _ki.modules``
    first, inline."""
    if "trio" in modules:
        from . import _trio_backend  # noqa: F401 - loading it protects them


modules = sys.modules
