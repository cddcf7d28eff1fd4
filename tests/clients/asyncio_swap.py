"""pytest plugin: asyncio's synchronization primitives replaced by loopsync's.

Loaded with ``-p asyncio_swap`` before a client's conftest and test modules
are imported, it puts loopsync's ``Lock``, ``Event``, ``Condition``,
``Semaphore``, ``BoundedSemaphore`` and ``Barrier`` (3.11 and later) in
place of asyncio's, in both ``asyncio`` and ``asyncio.locks``, as a user
would: code that writes ``asyncio.Lock()`` or ``from asyncio import Lock``
then gets loopsync's.  It also counts the primitives made, so that a run
shows that the client used them.

With ``$LOOPSYNC_SWAP_OFF`` set, it swaps nothing, for the run "before".
With ``$LOOPSYNC_SWAP_REPORT`` set, it writes there, as JSON, where loopsync
was imported from and the counts.  Under pytest-xdist each worker hands its
counts to the controller, which reports them all.
"""

from __future__ import annotations

import asyncio
import asyncio.locks
import json
import os
from collections import Counter
from typing import Any

import pytest

import loopsync

SWAPPED = ("Lock", "Event", "Condition", "Semaphore", "BoundedSemaphore", "Barrier")

created: Counter[str] = Counter()
"""How many of each of loopsync's primitives were made."""

_counted: set[type] = set()


def _count(cls: type) -> None:
    """Have *cls* count its instances in :data:`created`, once each (a
    BoundedSemaphore is not counted as a Semaphore too)."""
    init = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        primitive = next(base for base in type(self).__mro__ if base in _counted)
        if primitive is cls:
            created[cls.__name__] += 1
        init(self, *args, **kwargs)

    _counted.add(cls)

    cls.__init__ = __init__  # type: ignore[misc]


def swap() -> None:
    """Put loopsync's primitives in place of asyncio's, counting them."""
    for name in SWAPPED:
        if hasattr(asyncio.locks, name):
            primitive = getattr(loopsync, name)
            _count(primitive)
            setattr(asyncio.locks, name, primitive)
            setattr(asyncio, name, primitive)


if not os.environ.get("LOOPSYNC_SWAP_OFF"):
    swap()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a pytest-xdist worker, hand the counts to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["loopsync_created"] = dict(created)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """In the pytest-xdist controller, add up a finished worker's counts."""
    created.update(getattr(node, "workeroutput", {}).get("loopsync_created", {}))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say how many of loopsync's primitives the run made."""
    made = ", ".join(f"{count} {name}" for name, count in sorted(created.items()))
    terminalreporter.write_line(f"loopsync primitives made: {made or 'none'}")
    report = os.environ.get("LOOPSYNC_SWAP_REPORT")
    if report:
        record = {"loopsync": loopsync.__file__, "created": dict(created)}
        with open(report, "w", encoding="utf-8") as file:
            json.dump(record, file)
