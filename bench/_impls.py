"""The implementations compared: loopsync and its peers in each context.

Each entry knows how to build its primitive, which method to await, and how
to read back the state the result checks look at.  Only what a check needs is
read; where a peer exposes no public way to count its waiters (asyncio), the
check reads the private attribute the standard library itself uses.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import trio
from _results import YARDSTICK

import loopsync

__all__ = [
    "BarrierImpl",
    "FuturesOnly",
    "SemaphoreImpl",
    "barrier_impls",
    "missing_notes",
    "semaphore_impls",
]

LOOPSYNC = "loopsync"


@dataclass(frozen=True)
class SemaphoreImpl:
    """A semaphore implementation and how to drive it."""

    name: str
    family: str | None
    """The only context family it runs in, or None for every one."""
    bounded: bool
    make: Callable[[int], Any]
    acquire_attr: str
    """The name of the coroutine method that acquires a permit."""
    value: Callable[[Any], int]
    waiting: Callable[[Any], int]
    fifo: bool = True
    """Whether blocked tasks are promised their permits in arrival order."""
    differs_only_when_free: bool = False
    """True if it only differs from another row when a permit is free (anyio's
    ``fast_acquire``): the storms, where every task blocks, leave it out."""
    reference: bool = False
    """True for a yardstick rather than a peer: it runs in the storms only."""

    @property
    def is_loopsync(self) -> bool:
        """True for loopsync's own primitive."""
        return self.name.startswith(LOOPSYNC)

    @property
    def kind(self) -> str:
        """``"BoundedSemaphore"`` or ``"Semaphore"``: what loopsync row it is compared with."""
        return "BoundedSemaphore" if self.bounded else "Semaphore"

    def acquire(self, sem: Any) -> Callable[[], Awaitable[object]]:
        """Return the bound method that acquires *sem*."""
        method: Callable[[], Awaitable[object]] = getattr(sem, self.acquire_attr)
        return method


@dataclass(frozen=True)
class BarrierImpl:
    """A barrier implementation and how to drive it."""

    name: str
    family: str | None
    make: Callable[[int], Any]
    waiter: Callable[[Any], Callable[[], Awaitable[int]]]
    """Given a barrier, return a callable whose result is awaited for one wait."""
    n_waiting: Callable[[Any], int]
    broken: Callable[[Any], bool]

    @property
    def is_loopsync(self) -> bool:
        """True for loopsync's own primitive."""
        return self.name.startswith(LOOPSYNC)

    @property
    def kind(self) -> str:
        """Always ``"Barrier"``."""
        return "Barrier"


def _asyncio_waiting(sem: Any) -> int:
    """Count the tasks blocked on an asyncio semaphore (private state)."""
    waiters = sem._waiters
    return len(waiters) if waiters else 0


def _stats_waiting(sem: Any) -> int:
    """Count the tasks blocked on a semaphore through its statistics()."""
    return int(sem.statistics().tasks_waiting)


def _value(sem: Any) -> int:
    """Read a semaphore's public value."""
    return int(sem.value)


def _asyncio_value(sem: Any) -> int:
    """Read an asyncio semaphore's counter (private state)."""
    return int(sem._value)


def _anyio_semaphore(fast_acquire: bool) -> Callable[[int], anyio.Semaphore]:
    """Return a factory of anyio semaphores with *fast_acquire* set."""

    def make(value: int) -> anyio.Semaphore:
        """Create the semaphore."""
        return anyio.Semaphore(value, fast_acquire=fast_acquire)

    return make


class FuturesOnly:
    """The least a FIFO semaphore can do under asyncio, as a yardstick.

    Blocked tasks await plain futures in a deque.  A cancelled one is left for
    release() to pass over, so a cancellation costs the semaphore nothing, and
    a task handed a permit is not counted until it runs.  What a storm costs
    with it is what the context itself costs: spawning, cancelling and waking
    tasks.  It is not safe to use (a task cancelled after its hand-off loses
    the permit) and the storms never exercise that case.
    """

    def __init__(self, value: int) -> None:
        self.value = value
        self._futures: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        """Take a permit, or wait in line for one."""
        if self.value and not self.waiting():
            self.value -= 1
            return
        future = asyncio.get_running_loop().create_future()
        self._futures.append(future)
        await future

    def release(self) -> None:
        """Hand a permit to the first task still waiting, or keep it."""
        while self._futures:
            future = self._futures.popleft()
            if not future.done():
                future.set_result(None)
                return
        self.value += 1

    def waiting(self) -> int:
        """Count the tasks still waiting."""
        return sum(not future.done() for future in self._futures)


def _aiologic() -> Any:
    """Return the aiologic module, or None if it is not installed."""
    try:
        import aiologic
    except ImportError:
        return None
    return aiologic


def semaphore_impls() -> list[SemaphoreImpl]:
    """Return every semaphore implementation that is installed, peers first."""
    aiologic = _aiologic()
    impls: list[SemaphoreImpl] = []
    for bounded in (False, True):
        if bounded:
            impls.append(
                SemaphoreImpl(
                    name="asyncio.BoundedSemaphore",
                    family="asyncio",
                    bounded=True,
                    make=asyncio.BoundedSemaphore,
                    acquire_attr="acquire",
                    value=_asyncio_value,
                    waiting=_asyncio_waiting,
                )
            )
            impls.append(
                SemaphoreImpl(
                    name="trio.Semaphore(max_value)",
                    family="trio",
                    bounded=True,
                    make=lambda value: trio.Semaphore(value, max_value=value),
                    acquire_attr="acquire",
                    value=_value,
                    waiting=_stats_waiting,
                )
            )
        else:
            impls.append(
                SemaphoreImpl(
                    name="asyncio.Semaphore",
                    family="asyncio",
                    bounded=False,
                    make=asyncio.Semaphore,
                    acquire_attr="acquire",
                    value=_asyncio_value,
                    waiting=_asyncio_waiting,
                )
            )
            impls.append(
                SemaphoreImpl(
                    name="trio.Semaphore",
                    family="trio",
                    bounded=False,
                    make=trio.Semaphore,
                    acquire_attr="acquire",
                    value=_value,
                    waiting=_stats_waiting,
                )
            )
            for fast in (False, True):
                impls.append(
                    SemaphoreImpl(
                        name="anyio.Semaphore(fast_acquire)" if fast else "anyio.Semaphore",
                        family=None,
                        bounded=False,
                        make=_anyio_semaphore(fast),
                        acquire_attr="acquire",
                        value=_value,
                        waiting=_stats_waiting,
                        differs_only_when_free=fast,
                    )
                )
        if aiologic is not None:
            impls.append(
                SemaphoreImpl(
                    name="aiologic.BoundedSemaphore" if bounded else "aiologic.Semaphore",
                    family=None,
                    bounded=bounded,
                    make=aiologic.BoundedSemaphore if bounded else aiologic.Semaphore,
                    acquire_attr="async_acquire",
                    value=_value,
                    waiting=lambda sem: int(sem.waiting),
                )
            )
        if not bounded:
            impls.append(
                SemaphoreImpl(
                    name=YARDSTICK,
                    family="asyncio",
                    bounded=False,
                    make=FuturesOnly,
                    acquire_attr="acquire",
                    value=_value,
                    waiting=FuturesOnly.waiting,
                    reference=True,
                )
            )
        impls.append(
            SemaphoreImpl(
                name="loopsync.BoundedSemaphore" if bounded else "loopsync.Semaphore",
                family=None,
                bounded=bounded,
                make=loopsync.BoundedSemaphore if bounded else loopsync.Semaphore,
                acquire_attr="acquire",
                value=_value,
                waiting=_stats_waiting,
            )
        )
    return impls


def barrier_impls() -> list[BarrierImpl]:
    """Return every barrier implementation that is installed, peers first."""
    impls: list[BarrierImpl] = []
    asyncio_barrier = getattr(asyncio, "Barrier", None)  # Python 3.11+
    if asyncio_barrier is not None:
        impls.append(
            BarrierImpl(
                name="asyncio.Barrier",
                family="asyncio",
                make=asyncio_barrier,
                waiter=lambda barrier: barrier.wait,
                n_waiting=lambda barrier: int(barrier.n_waiting),
                broken=lambda barrier: bool(barrier.broken),
            )
        )
    aiologic = _aiologic()
    if aiologic is not None:
        # An aiologic barrier is awaited itself; its wait() method is the blocking one.
        impls.append(
            BarrierImpl(
                name="aiologic.Barrier",
                family=None,
                make=aiologic.Barrier,
                waiter=lambda barrier: lambda: barrier,
                n_waiting=lambda barrier: int(barrier.waiting),
                broken=lambda barrier: bool(barrier.broken),
            )
        )
    impls.append(
        BarrierImpl(
            name="loopsync.Barrier",
            family=None,
            make=loopsync.Barrier,
            waiter=lambda barrier: barrier.wait,
            n_waiting=lambda barrier: int(barrier.n_waiting),
            broken=lambda barrier: bool(barrier.broken),
        )
    )
    return impls


def missing_notes() -> list[str]:
    """Say which peers are missing here, so that their absence is not silent."""
    notes = []
    if _aiologic() is None:
        notes.append("aiologic is not installed: its rows are skipped")
    if not hasattr(asyncio, "Barrier"):
        notes.append("asyncio.Barrier needs Python 3.11+: its rows are skipped")
    return notes
