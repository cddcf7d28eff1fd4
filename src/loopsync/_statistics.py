"""The snapshots that ``statistics()`` methods return: frozen dataclasses,
as anyio's, with trio's fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import trio

__all__ = [
    "CapacityLimiterStatistics",
    "ConditionStatistics",
    "EventStatistics",
    "LockStatistics",
    "SemaphoreStatistics",
]


@dataclass(frozen=True)
class SemaphoreStatistics:
    """A snapshot of a semaphore's state, as returned by
    :meth:`Semaphore.statistics() <loopsync.Semaphore.statistics>`.
    """

    tasks_waiting: int
    """The number of tasks blocked in :meth:`~loopsync.Semaphore.acquire`
    that have not been handed a permit yet."""


class Borrowers(list[object]):
    """The borrowers of a capacity limiter: a list, as trio's statistics
    give, that also compares equal to a tuple of the same borrowers, as
    anyio's give."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, tuple):
            return tuple(self) == other
        return list.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None


@dataclass(frozen=True)
class LockStatistics:
    """A snapshot of a lock's state, as returned by
    :meth:`Lock.statistics() <loopsync.Lock.statistics>`.
    """

    locked: bool
    """Whether the lock is held (as :meth:`~loopsync.Lock.locked` says)."""
    owner: trio.lowlevel.Task | None
    """The task holding the lock under trio (a :class:`trio.lowlevel.Task`),
    where a lock has an owner; always None under asyncio, where it has none."""
    tasks_waiting: int
    """The number of tasks blocked in :meth:`~loopsync.Lock.acquire`."""


@dataclass(frozen=True)
class EventStatistics:
    """A snapshot of an event's state, as returned by
    :meth:`Event.statistics() <loopsync.Event.statistics>`.
    """

    tasks_waiting: int
    """The number of tasks blocked in :meth:`~loopsync.Event.wait`."""


@dataclass(frozen=True)
class ConditionStatistics:
    """A snapshot of a condition's state, as returned by
    :meth:`Condition.statistics() <loopsync.Condition.statistics>`.
    """

    tasks_waiting: int
    """The number of tasks blocked in :meth:`~loopsync.Condition.wait` that
    have not been notified."""
    lock_statistics: LockStatistics
    """The statistics of the condition's lock."""


@dataclass(frozen=True)
class CapacityLimiterStatistics:
    """A snapshot of a capacity limiter's state, as returned by
    :meth:`CapacityLimiter.statistics() <loopsync.CapacityLimiter.statistics>`.
    """

    # Unhashable, as trio's, for its borrowers are a list.
    __hash__ = None  # type: ignore[assignment]

    # Fields in trio's order, which positional arguments follow.
    borrowed_tokens: int
    """The number of tokens borrowed now."""
    total_tokens: float
    """The number of tokens in all (an int, or :data:`math.inf`)."""
    borrowers: list[object]
    """The borrowers holding a token, in no particular order: a list that
    also compares equal to a tuple of the same borrowers."""
    tasks_waiting: int
    """The number of tasks blocked waiting for a token."""


for _name in __all__:
    globals()[_name].__module__ = "loopsync"  # where users find them
del _name
