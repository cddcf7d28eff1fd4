"""Replace a library's primitives with loopsync's namesakes, by name."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping

import pytest

import loopsync


def swap(modules: Iterable[str], table: Mapping[str, str]) -> dict[str, str]:
    """Bind ``loopsync.<table[name]>`` to *name* in each of *modules*.

    Only the names whose loopsync counterpart exists are swapped, so a table
    can list primitives that loopsync does not have yet.  A module that
    lacks one of the names gets it all the same (asyncio has no Barrier
    before Python 3.11).  Returns ``{name: loopsync attribute}`` for the
    names swapped.
    """
    swapped = {name: attr for name, attr in table.items() if hasattr(loopsync, attr)}
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name, attr in swapped.items():
            setattr(module, name, getattr(loopsync, attr))
    return swapped


def keep_only(
    config: pytest.Config, items: list[pytest.Item], keep: Callable[[pytest.Item], bool]
) -> None:
    """Deselect the collected *items* for which *keep* is false, as ``-k`` would."""
    kept = [item for item in items if keep(item)]
    dropped = [item for item in items if not keep(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept
