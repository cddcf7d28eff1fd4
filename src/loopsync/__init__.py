"""Synchronization primitives written once, for asyncio, uvloop, trio and anyio.

Under asyncio each primitive behaves as its :mod:`asyncio` namesake of
Python 3.13; under trio, as trio's own primitives.  The library in use is
detected when a primitive is first used; ``import loopsync`` imports neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._barrier import Barrier
from ._capacity_limiter import CapacityLimiter
from ._condition import Condition
from ._event import Event
from ._exceptions import BrokenBarrierError, WouldBlock
from ._lock import Lock
from ._semaphore import BoundedSemaphore, Semaphore

if TYPE_CHECKING:
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
    if not _name.endswith("Statistics"):
        globals()[_name].__module__ = __name__
del _name


def __getattr__(name: str) -> Any:
    # The statistics are dataclasses, whose import would double the time
    # ``import loopsync`` takes: they load when first used.
    if name.endswith("Statistics") and name in __all__:
        from . import _statistics

        return getattr(_statistics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
