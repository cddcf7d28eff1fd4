"""pytest plugin: trio's own ``test_sync.py`` judges loopsync's primitives.

``test_sync`` takes its classes from ``from .._sync import *`` and builds its
generic lock tests' factories when it is imported, so the swap happens at
configure time, before collection imports it.  Only the tests that concern a
swapped name are kept.
"""

from __future__ import annotations

import re
import sys

import pytest

from upstream import results
from upstream.swap import keep_only, swap

# trio's name -> loopsync's name.  Only the names loopsync has are swapped.
TABLE = {
    "Semaphore": "Semaphore",
    "Lock": "Lock",
    "StrictFIFOLock": "StrictFIFOLock",
    "Condition": "Condition",
    "Event": "Event",
    "CapacityLimiter": "CapacityLimiter",
}
MODULES = ("trio", "trio._sync")
TEST_MODULE = "trio._tests.test_sync"


def concerns(test_name: str, names: list[str]) -> bool:
    """Whether *test_name* concerns one of *names*: its parameters name one
    as a word of their own (``test_generic_lock_exclusion[Semaphore(1)]``),
    or, if it has none, its function's name does, in any case
    (``test_Semaphore_bounded``, ``test_lock_handover``)."""
    function, _, parameters = test_name.partition("[")
    text, flags = (parameters, 0) if parameters else (function, re.IGNORECASE)
    return any(re.search(rf"(?<![A-Za-z]){name}(?![A-Za-z])", text, flags) for name in names)


def pytest_configure(config: pytest.Config) -> None:
    """Swap the primitives before ``test_sync`` is imported."""
    if TEST_MODULE in sys.modules:
        raise pytest.UsageError(f"{TEST_MODULE} was imported before the swap")
    results.SWAPPED.update(swap(MODULES, TABLE))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep only the tests that concern a swapped primitive."""
    names = sorted(results.SWAPPED)
    keep_only(config, items, lambda item: concerns(item.name, names))
