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
from _results import PRIMITIVE_WORKLOADS, YARDSTICK

import loopsync

__all__ = [
    "PRIMITIVE_KINDS",
    "BarrierImpl",
    "FuturesOnly",
    "FuturesOnlyCondition",
    "FuturesOnlyEvent",
    "FuturesOnlyLock",
    "PrimitiveImpl",
    "SemaphoreImpl",
    "barrier_impls",
    "missing_notes",
    "primitive_impls",
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


PRIMITIVE_KINDS: tuple[str, ...] = tuple(PRIMITIVE_WORKLOADS)
"""The primitives besides semaphores and barriers, in the order of the workloads."""


@dataclass(frozen=True)
class PrimitiveImpl:
    """A lock, capacity limiter, event or condition implementation, and how to drive it.

    A lock or a limiter (one token) is held with ``async with`` by the tasks
    that wait on it, and taken and given back with :meth:`acquire` and
    :meth:`release` by the task that runs the workload.  An event is waited on
    with :attr:`wait` and set with ``set()``; a condition is waited on with
    :attr:`wait` inside ``async with``, and notified with ``notify()`` and
    ``notify_all()``.
    """

    name: str
    family: str | None
    """The only context family it runs in, or None for every one."""
    kind: str
    """One of :data:`PRIMITIVE_KINDS`: what loopsync row it is compared with."""
    make: Callable[[], Any]
    waiting: Callable[[Any], int]
    """The number of tasks blocked on it (on a condition: in ``wait()``)."""
    held: Callable[[Any], bool] = lambda primitive: False
    """True while a lock, token or condition's lock is held."""
    acquire_attr: str = "acquire"
    """The name of the coroutine method that takes a lock or limiter."""
    release_attr: str = "release"
    """The name of the method that gives a lock or limiter back."""
    wait_attr: str = "wait"
    """The name of the coroutine method that waits on an event or condition;
    '' if the primitive is awaited itself (aiologic's)."""
    fifo: bool = True
    """Whether blocked tasks are promised the lock, token, or (condition) the
    lock after a notification, in arrival order."""
    differs_only_when_free: bool = False
    """True if it only differs from another row when the lock is free (anyio's
    ``fast_acquire``): the storms and memory, where every task blocks, leave it out."""
    reference: bool = False
    """True for a yardstick rather than a peer: it runs in the storms only."""

    @property
    def is_loopsync(self) -> bool:
        """True for loopsync's own primitive."""
        return self.name.startswith(LOOPSYNC)

    def acquire(self, primitive: Any) -> Callable[[], Awaitable[object]]:
        """Return the bound method that takes *primitive*, a lock or limiter."""
        method: Callable[[], Awaitable[object]] = getattr(primitive, self.acquire_attr)
        return method

    def release(self, primitive: Any) -> Callable[[], object]:
        """Return the bound method that gives *primitive*, a lock or limiter, back."""
        method: Callable[[], object] = getattr(primitive, self.release_attr)
        return method

    def waiter(self, primitive: Any) -> Callable[[], Awaitable[object]]:
        """Return a callable whose result is awaited for one wait on *primitive*,
        an event or condition."""
        if not self.wait_attr:
            return lambda: primitive
        method: Callable[[], Awaitable[object]] = getattr(primitive, self.wait_attr)
        return method


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


class FuturesOnlyLock(FuturesOnly):
    """:class:`FuturesOnly` with one permit, used with ``async with``: the
    yardstick of the lock and limiter storms."""

    def __init__(self) -> None:
        super().__init__(1)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()


class FuturesOnlyEvent:
    """The least an event can do under asyncio, as a yardstick: a list of
    futures, a cancelled one left for set() to pass over."""

    def __init__(self) -> None:
        self.flag = False
        self._futures: list[asyncio.Future[None]] = []

    async def wait(self) -> None:
        """Wait until set."""
        if self.flag:
            return
        future = asyncio.get_running_loop().create_future()
        self._futures.append(future)
        await future

    def set(self) -> None:
        """Wake every task still waiting."""
        self.flag = True
        for future in self._futures:
            if not future.done():
                future.set_result(None)
        self._futures.clear()

    def waiting(self) -> int:
        """Count the tasks still waiting."""
        return sum(not future.done() for future in self._futures)


class FuturesOnlyCondition:
    """The least a condition can do under asyncio, as a yardstick: a
    :class:`FuturesOnlyLock` and a deque of futures, a cancelled one left for
    notify() to pass over.  As asyncio's, wait() takes the lock back before it
    returns or raises."""

    def __init__(self) -> None:
        self.lock = FuturesOnlyLock()
        self._futures: deque[asyncio.Future[None]] = deque()

    async def __aenter__(self) -> None:
        await self.lock.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.lock.release()

    def locked(self) -> bool:
        """True if the lock is held."""
        return not self.lock.value

    async def wait(self) -> None:
        """Release the lock, wait until notified, take the lock back."""
        self.lock.release()
        future = asyncio.get_running_loop().create_future()
        self._futures.append(future)
        try:
            await future
        finally:
            cancelled = None
            while True:
                try:
                    await self.lock.acquire()
                    break
                except asyncio.CancelledError as exc:
                    cancelled = exc
            if cancelled is not None:
                raise cancelled

    def notify(self, n: int = 1) -> None:
        """Wake up to *n* tasks still waiting."""
        while n and self._futures:
            future = self._futures.popleft()
            if not future.done():
                future.set_result(None)
                n -= 1

    def notify_all(self) -> None:
        """Wake every task still waiting."""
        self.notify(len(self._futures))

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


def _stats_tasks_waiting(primitive: Any) -> int:
    """Count the tasks blocked on a primitive through its statistics()."""
    return int(primitive.statistics().tasks_waiting)


def _asyncio_waiters(primitive: Any) -> int:
    """Count the tasks blocked on an asyncio lock, event or condition (private state)."""
    waiters = primitive._waiters
    return len(waiters) if waiters else 0


def _locked(primitive: Any) -> bool:
    """True if a lock or condition is held."""
    return bool(primitive.locked())


def _borrowed(limiter: Any) -> bool:
    """True if a capacity limiter has a token lent."""
    return bool(limiter.borrowed_tokens)


def _aiologic_waiting(primitive: Any) -> int:
    """Count the tasks blocked on an aiologic primitive."""
    return int(primitive.waiting)


def _anyio_lock(fast_acquire: bool) -> Callable[[], anyio.Lock]:
    """Return a factory of anyio locks with *fast_acquire* set."""

    def make() -> anyio.Lock:
        """Create the lock."""
        return anyio.Lock(fast_acquire=fast_acquire)

    return make


def _lock_impls(aiologic: Any) -> list[PrimitiveImpl]:
    impls = [
        PrimitiveImpl("asyncio.Lock", "asyncio", "Lock", asyncio.Lock, _asyncio_waiters, _locked),
        PrimitiveImpl("trio.Lock", "trio", "Lock", trio.Lock, _stats_tasks_waiting, _locked),
    ]
    for fast in (False, True):
        impls.append(
            PrimitiveImpl(
                "anyio.Lock(fast_acquire)" if fast else "anyio.Lock",
                None,
                "Lock",
                _anyio_lock(fast),
                _stats_tasks_waiting,
                _locked,
                differs_only_when_free=fast,
            )
        )
    if aiologic is not None:
        impls.append(
            PrimitiveImpl(
                "aiologic.Lock",
                None,
                "Lock",
                aiologic.Lock,
                _aiologic_waiting,
                _locked,
                acquire_attr="async_acquire",
                release_attr="async_release",
            )
        )
    impls.append(
        PrimitiveImpl(
            YARDSTICK,
            "asyncio",
            "Lock",
            FuturesOnlyLock,
            FuturesOnly.waiting,
            lambda lock: not lock.value,
            reference=True,
        )
    )
    return impls


def _limiter_impls(aiologic: Any) -> list[PrimitiveImpl]:
    # One token: held by one task at a time, as a lock.
    impls = [
        PrimitiveImpl(
            "trio.CapacityLimiter",
            "trio",
            "CapacityLimiter",
            lambda: trio.CapacityLimiter(1),
            _stats_tasks_waiting,
            _borrowed,
        ),
        PrimitiveImpl(
            "anyio.CapacityLimiter",
            None,
            "CapacityLimiter",
            lambda: anyio.CapacityLimiter(1),
            _stats_tasks_waiting,
            _borrowed,
        ),
    ]
    if aiologic is not None:
        impls.append(
            PrimitiveImpl(
                "aiologic.CapacityLimiter",
                None,
                "CapacityLimiter",
                lambda: aiologic.CapacityLimiter(1),
                _aiologic_waiting,
                _borrowed,
                acquire_attr="async_acquire",
                release_attr="async_release",
            )
        )
    impls.append(
        PrimitiveImpl(
            YARDSTICK,
            "asyncio",
            "CapacityLimiter",
            FuturesOnlyLock,
            FuturesOnly.waiting,
            lambda lock: not lock.value,
            reference=True,
        )
    )
    return impls


def _event_impls(aiologic: Any) -> list[PrimitiveImpl]:
    impls = [
        PrimitiveImpl("asyncio.Event", "asyncio", "Event", asyncio.Event, _asyncio_waiters),
        PrimitiveImpl("trio.Event", "trio", "Event", trio.Event, _stats_tasks_waiting),
        PrimitiveImpl("anyio.Event", None, "Event", anyio.Event, _stats_tasks_waiting),
    ]
    if aiologic is not None:
        impls.append(
            PrimitiveImpl(
                "aiologic.Event", None, "Event", aiologic.Event, _aiologic_waiting, wait_attr=""
            )
        )
    impls.append(
        PrimitiveImpl(
            YARDSTICK,
            "asyncio",
            "Event",
            FuturesOnlyEvent,
            FuturesOnlyEvent.waiting,
            reference=True,
        )
    )
    return impls


def _condition_impls(aiologic: Any) -> list[PrimitiveImpl]:
    impls = [
        PrimitiveImpl(
            "asyncio.Condition",
            "asyncio",
            "Condition",
            asyncio.Condition,
            _asyncio_waiters,
            _locked,
        ),
        PrimitiveImpl(
            "trio.Condition", "trio", "Condition", trio.Condition, _stats_tasks_waiting, _locked
        ),
        # A notified task waits on an anyio event, then takes the lock again
        # once it runs: under trio, whose scheduler may run a batch of woken
        # tasks in reverse, not necessarily in the order they were notified.
        PrimitiveImpl(
            "anyio.Condition",
            None,
            "Condition",
            anyio.Condition,
            _stats_tasks_waiting,
            _locked,
            fifo=False,
        ),
    ]
    if aiologic is not None:
        # With a plain lock (its default is reentrant); its notified tasks
        # race for the lock as they run, as anyio's.
        impls.append(
            PrimitiveImpl(
                "aiologic.Condition",
                None,
                "Condition",
                lambda: aiologic.Condition(aiologic.Lock()),
                _aiologic_waiting,
                lambda cond: bool(cond.lock.locked()),
                wait_attr="",
                fifo=False,
            )
        )
    impls.append(
        PrimitiveImpl(
            YARDSTICK,
            "asyncio",
            "Condition",
            FuturesOnlyCondition,
            FuturesOnlyCondition.waiting,
            _locked,
            reference=True,
        )
    )
    return impls


def primitive_impls(kind: str) -> list[PrimitiveImpl]:
    """Return every implementation of *kind* (one of :data:`PRIMITIVE_KINDS`)
    that is installed, peers first, loopsync's last."""
    aiologic = _aiologic()
    peers = {
        "Lock": _lock_impls,
        "CapacityLimiter": _limiter_impls,
        "Event": _event_impls,
        "Condition": _condition_impls,
    }[kind](aiologic)
    ours = {
        "Lock": PrimitiveImpl(
            "loopsync.Lock", None, "Lock", loopsync.Lock, _stats_tasks_waiting, _locked
        ),
        "CapacityLimiter": PrimitiveImpl(
            "loopsync.CapacityLimiter",
            None,
            "CapacityLimiter",
            lambda: loopsync.CapacityLimiter(1),
            _stats_tasks_waiting,
            _borrowed,
        ),
        "Event": PrimitiveImpl(
            "loopsync.Event", None, "Event", loopsync.Event, _stats_tasks_waiting
        ),
        "Condition": PrimitiveImpl(
            "loopsync.Condition",
            None,
            "Condition",
            loopsync.Condition,
            _stats_tasks_waiting,
            _locked,
        ),
    }[kind]
    return [*peers, ours]


def missing_notes() -> list[str]:
    """Say which peers are missing here, so that their absence is not silent."""
    notes = []
    if _aiologic() is None:
        notes.append("aiologic is not installed: its rows are skipped")
    if not hasattr(asyncio, "Barrier"):
        notes.append("asyncio.Barrier needs Python 3.11+: its rows are skipped")
    return notes
