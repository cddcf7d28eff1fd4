"""pytest plugin: anyio's own ``tests/test_synchronization.py`` judges
loopsync's primitives.

The test module binds ``from anyio import Semaphore`` when it is imported, so
the swap happens at configure time, before collection imports it.  Only
anyio's public namespace is swapped: anyio's own internals keep their
primitives.  Only the classes testing a swapped name (``TestSemaphore`` for
``Semaphore``) are kept.
"""

from __future__ import annotations

import sys

import pytest

from upstream import results
from upstream.swap import keep_only, swap

# anyio's name -> loopsync's name.  Only the names loopsync has are swapped.
TABLE = {
    "Semaphore": "Semaphore",
    "Lock": "Lock",
    "Event": "Event",
    "Condition": "Condition",
    "CapacityLimiter": "CapacityLimiter",
}
MODULES = ("anyio",)


def pytest_configure(config: pytest.Config) -> None:
    """Swap the primitives before the test module is imported."""
    if any(name.endswith("test_synchronization") for name in sys.modules):
        raise pytest.UsageError("test_synchronization was imported before the swap")
    results.SWAPPED.update(swap(MODULES, TABLE))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep only the test classes named after a swapped primitive."""
    classes = {f"Test{name}" for name in results.SWAPPED}
    keep_only(
        config, items, lambda item: getattr(getattr(item, "cls", None), "__name__", "") in classes
    )
