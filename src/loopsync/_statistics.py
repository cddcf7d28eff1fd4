"""The snapshots that ``statistics()`` methods return."""

from __future__ import annotations

from typing import Any

__all__ = ["SemaphoreStatistics"]


class _Snapshot:
    """Read-only fields named by ``__slots__``: equal, hashable, picklable.
    Written out rather than a frozen dataclass, whose import would double
    the time ``import loopsync`` takes."""

    __slots__: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        values = dict(zip(self.__slots__, args, strict=False), **kwargs)
        if len(args) > len(self.__slots__) or sorted(values) != sorted(self.__slots__):
            raise TypeError(f"{type(self).__name__} takes the fields {', '.join(self.__slots__)}")
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
