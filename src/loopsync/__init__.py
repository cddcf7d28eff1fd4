"""Synchronization primitives written once, for asyncio, uvloop, trio and anyio.

Under asyncio each primitive behaves as its :mod:`asyncio` namesake of
Python 3.13; under trio, as trio's own primitives.  The library in use is
detected when a primitive is first used; ``import loopsync`` imports neither.
"""

from __future__ import annotations

from ._barrier import Barrier
from ._capacity_limiter import CapacityLimiter
from ._condition import Condition
from ._event import Event
from ._exceptions import BrokenBarrierError, WouldBlock
from ._lock import Lock
from ._semaphore import BoundedSemaphore, Semaphore
from ._statistics import (
    CapacityLimiterStatistics,
    ConditionStatistics,
    EventStatistics,
    LockStatistics,
    SemaphoreStatistics,
)

__all__ = [
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "CapacityLimiter",
    "CapacityLimiterStatistics",
    "Condition",
    "ConditionStatistics",
    "Event",
    "EventStatistics",
    "Lock",
    "LockStatistics",
    "Semaphore",
    "SemaphoreStatistics",
    "WouldBlock",
]

__version__ = "0.2.0.dev0"

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
