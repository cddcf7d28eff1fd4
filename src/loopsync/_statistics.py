"""The snapshots that ``statistics()`` methods return."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**kwargs: Any) -> Any:
        return lambda cls: cls


__all__ = [
    "CapacityLimiterStatistics",
    "ConditionStatistics",
    "EventStatistics",
    "LockStatistics",
    "SemaphoreStatistics",
]


# Written out rather than a frozen dataclass, whose import would double the
# time ``import loopsync`` takes; type checkers see one all the same (fields
# in the order of ``__slots__``, each annotated).
@dataclass_transform(frozen_default=True, eq_default=True)
class _Snapshot:
    """Read-only fields named by ``__slots__``: equal, picklable, and
    hashable if the fields are."""

    __slots__: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        values = dict(zip(self.__slots__, args, strict=False))
        if (
            len(args) > len(self.__slots__)
            or not values.keys().isdisjoint(kwargs)  # a field given twice
            or sorted({**values, **kwargs}) != sorted(self.__slots__)
        ):
            raise TypeError(f"{type(self).__name__} takes the fields {', '.join(self.__slots__)}")
        values.update(kwargs)
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class SemaphoreStatistics(_Snapshot):
    """A snapshot of a semaphore's state, as returned by
    :meth:`Semaphore.statistics() <loopsync.Semaphore.statistics>`.
    """

    __slots__ = ("tasks_waiting",)

    tasks_waiting: int
    """The number of tasks blocked in :meth:`~loopsync.Semaphore.acquire`
    that have not been handed a permit yet."""


class Borrowers(list[Any]):
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


class LockStatistics(_Snapshot):
    """A snapshot of a lock's state, as returned by
    :meth:`Lock.statistics() <loopsync.Lock.statistics>`.
    """

    __slots__ = ("locked", "owner", "tasks_waiting")

    locked: bool
    """Whether the lock is held (as :meth:`~loopsync.Lock.locked` says)."""
    owner: Any
    """The task holding the lock under trio (a :class:`trio.lowlevel.Task`),
    where a lock has an owner; always None under asyncio, where it has none."""
    tasks_waiting: int
    """The number of tasks blocked in :meth:`~loopsync.Lock.acquire`."""


class EventStatistics(_Snapshot):
    """A snapshot of an event's state, as returned by
    :meth:`Event.statistics() <loopsync.Event.statistics>`.
    """

    __slots__ = ("tasks_waiting",)

    tasks_waiting: int
    """The number of tasks blocked in :meth:`~loopsync.Event.wait`."""


class ConditionStatistics(_Snapshot):
    """A snapshot of a condition's state, as returned by
    :meth:`Condition.statistics() <loopsync.Condition.statistics>`.
    """

    # In trio's order, which positional arguments follow.
    __slots__ = ("tasks_waiting", "lock_statistics")  # noqa: RUF023

    tasks_waiting: int
    """The number of tasks blocked in :meth:`~loopsync.Condition.wait` that
    have not been notified."""
    lock_statistics: LockStatistics
    """The statistics of the condition's lock."""


class CapacityLimiterStatistics(_Snapshot):
    """A snapshot of a capacity limiter's state, as returned by
    :meth:`CapacityLimiter.statistics() <loopsync.CapacityLimiter.statistics>`.
    """

    # In trio's order, which positional arguments follow.
    __slots__ = ("borrowed_tokens", "total_tokens", "borrowers", "tasks_waiting")  # noqa: RUF023

    # Unhashable, as trio's, for its borrowers are a list.
    __hash__ = None  # type: ignore[assignment]

    borrowed_tokens: int
    """The number of tokens borrowed now."""
    total_tokens: float
    """The number of tokens in all (an int, or :data:`math.inf`)."""
    borrowers: Borrowers
    """The borrowers holding a token, in no particular order: a list that
    also compares equal to a tuple of the same borrowers."""
    tasks_waiting: int
    """The number of tasks blocked waiting for a token."""
