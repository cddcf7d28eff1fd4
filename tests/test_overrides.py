"""Methods a user replaces, and which calls of the library's own reach them.

asyncio's, trio's and anyio's ``async with`` call ``acquire()`` and
``release()`` as the instance resolves them: a subclass's, or ones patched on
the class or the instance, as tests do with :func:`unittest.mock.patch`.
asyncio's Semaphore asks ``locked()`` before it takes a permit, its
BoundedSemaphore calls Semaphore's ``release()``, and its Condition calls
its lock's ``locked()``, ``release()`` and ``acquire()`` from ``wait()``, and
``notify()`` from ``notify_all()``.  Each test runs the same program over the
running library's primitive and loopsync's, where the library has one, and
compares the calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import sys
from collections.abc import Callable
from typing import Any
from unittest import mock

import anyio
import pytest
import trio

import loopsync
from libs import Lib

_NATIVE = {
    "asyncio": {
        "Lock": asyncio.Lock,
        "Semaphore": asyncio.Semaphore,
        "BoundedSemaphore": asyncio.BoundedSemaphore,
        "Condition": asyncio.Condition,
        # asyncio has none: anyio's, which follows trio's, as loopsync's does.
        "CapacityLimiter": anyio.CapacityLimiter,
    },
    "trio": {
        "Lock": trio.Lock,
        "Semaphore": trio.Semaphore,
        "BoundedSemaphore": None,  # trio has none
        "Condition": trio.Condition,
        "CapacityLimiter": trio.CapacityLimiter,
    },
}
_ENTERED = ["Lock", "Semaphore", "BoundedSemaphore", "CapacityLimiter"]


def _make(cls: Any, kind: str) -> Any:
    return cls(1) if kind in ("Semaphore", "BoundedSemaphore", "CapacityLimiter") else cls()


def _pair(lib: Lib, kind: str) -> list[Callable[[], Any]]:
    """Return makers of the running library's *kind* and loopsync's."""
    native = _NATIVE[lib.family][kind]
    if native is None:
        pytest.skip(f"{lib.family} has no {kind}")
    return [lambda: _make(native, kind), lambda: _make(getattr(loopsync, kind), kind)]


def _logging(target: Any, name: str, log: list[str]) -> Any:
    """Return a patch of *target*'s *name* that notes each call in *log*."""
    original = getattr(target, name)
    if inspect.iscoroutinefunction(original):

        async def patched(*args: Any) -> Any:
            log.append(name)
            return await original(*args)

    else:

        def patched(*args: Any) -> Any:  # type: ignore[misc]
            log.append(name)
            return original(*args)

    return mock.patch.object(target, name, patched)


@pytest.mark.parametrize("kind", _ENTERED)
async def test_async_with_calls_an_acquire_and_release_patched_on_the_instance(
    lib: Lib, kind: str
) -> None:
    logs = []
    makers = _pair(lib, kind)
    if kind == "CapacityLimiter" and lib.family == "asyncio":
        makers[0] = makers[1]  # anyio's has slots: no patch on the instance
    for make in makers:
        primitive = make()
        log: list[str] = []
        with _logging(primitive, "acquire", log), _logging(primitive, "release", log):
            async with primitive as entered:
                log.append(f"inside, bound {entered!r}")
        logs.append(log)
    assert logs[1] == logs[0] == ["acquire", "inside, bound None", "release"]


@pytest.mark.parametrize("kind", _ENTERED)
async def test_async_with_calls_an_acquire_and_release_patched_on_the_class(
    lib: Lib, kind: str
) -> None:
    logs = []
    for make in _pair(lib, kind):
        cls = type(make())
        log: list[str] = []
        with _logging(cls, "acquire", log), _logging(cls, "release", log):
            primitive = make()
            async with primitive:
                await lib.checkpoint()
        logs.append(log)
    assert logs[1] == logs[0] == ["acquire", "release"]


@pytest.mark.parametrize("kind", ["Lock", "Semaphore", "CapacityLimiter"])
async def test_async_with_calls_a_subclass_s_acquire_from_its_own_aenter(
    lib: Lib, kind: str
) -> None:
    # A subclass that extends both, calling the base class's __aenter__ and
    # __aexit__, as asyncio's, trio's and anyio's call acquire() and release().
    log: list[str] = []

    class Traced(getattr(loopsync, kind)):  # type: ignore[misc]
        async def acquire(self) -> Any:
            log.append("acquire")
            return await super().acquire()

        def release(self) -> None:
            log.append("release")
            super().release()

        async def __aenter__(self) -> Any:
            log.append("enter")
            return await super().__aenter__()

        async def __aexit__(self, *exc_info: Any) -> Any:
            log.append("exit")
            return await super().__aexit__(*exc_info)

    async with _make(Traced, kind):
        pass
    assert log == ["enter", "acquire", "exit", "release"]


@pytest.mark.parametrize("where", ["instance", "subclass"])
async def test_acquire_asks_a_semaphore_s_own_locked_under_asyncio(lib: Lib, where: str) -> None:
    # A semaphore paused by its locked(): asyncio's acquire() asks it, so a
    # task waits, though a permit is free, until a release hands it one.
    # trio's has no locked(), and applies its own rule.
    outcomes = []
    makers = _pair(lib, "Semaphore")[1 if lib.family == "trio" else 0 :]
    for make in makers:
        sem = make()
        if where == "subclass":

            class Paused(type(sem)):  # type: ignore[misc]
                def locked(self) -> bool:
                    return True

            sem = Paused(1)
        else:
            sem.locked = lambda: True
        async with lib.task_group() as group:
            waiter = await lib.start_queued(group, sem.acquire)
            waited = not waiter.done
            sem.release()
        outcomes.append((waited, waiter.outcome, sem._value))
    expected = (lib.family == "asyncio", "returned", 1)
    assert outcomes == [expected] * len(makers)


async def test_notify_all_calls_notify_as_the_native_does(lib: Lib) -> None:
    # Patched on the condition, and overridden beside a notify_all() that
    # calls the base class's: asyncio's notify_all() calls notify().
    logs = []
    for make in _pair(lib, "Condition"):
        cond = make()
        log: list[str] = []

        async def wait(cond: Any = cond) -> None:
            async with cond:
                await cond.wait()

        async with lib.task_group() as group:
            for _ in range(2):
                await lib.start_queued(group, wait)
            with _logging(cond, "notify", log):
                async with cond:
                    cond.notify_all()
        logs.append(log)
    assert logs[1] == logs[0] == (["notify"] if lib.family == "asyncio" else [])


async def test_notify_all_calls_notify_overridden_beside_it_under_asyncio(lib: Lib) -> None:
    # trio's notify_all() does not call notify() (its Condition has no
    # subclasses): under trio, neither does this.
    calls: list[str] = []

    class Condition(loopsync.Condition):
        def notify(self, n: float = 1) -> None:
            calls.append(f"notify({n})")
            super().notify(n)

        def notify_all(self) -> None:
            calls.append("notify_all")
            super().notify_all()

    cond = Condition()

    async def wait() -> None:
        async with cond:
            await cond.wait()

    async with lib.task_group() as group:
        for _ in range(3):
            await lib.start_queued(group, wait)
        async with cond:
            cond.notify_all()
    assert calls == ["notify_all", "notify(3)"][: 2 if lib.family == "asyncio" else 1]


@pytest.mark.family("asyncio")
async def test_notify_all_leaves_the_check_of_the_lock_to_notify_as_asyncio_s_does(
    lib: Lib,
) -> None:
    # A notify() that checks nothing: asyncio's notify_all() calls it on a
    # condition whose lock is not held, with the number of waiters.
    calls = []
    for cls in (asyncio.Condition, loopsync.Condition):
        cond = cls()
        cond.notify = lambda n=1, log=calls: log.append(n)  # type: ignore[method-assign]
        cond.notify_all()
    assert calls == [0, 0]


async def test_acquire_nowait_applies_the_semaphore_s_own_rule(lib: Lib) -> None:
    # As trio's, which has no locked() to ask (asyncio's has no acquire_nowait()).
    sem = loopsync.Semaphore(1)
    sem.locked = lambda: True  # type: ignore[method-assign]
    sem.acquire_nowait()
    assert sem.value == 0
    with pytest.raises(loopsync.WouldBlock):
        sem.acquire_nowait()


@pytest.mark.family("asyncio")
async def test_a_locked_that_says_free_takes_a_permit_past_0_as_asyncio_s_does(lib: Lib) -> None:
    values = []
    for cls in (asyncio.Semaphore, loopsync.Semaphore):

        class Free(cls):  # type: ignore[misc, valid-type]
            def locked(self) -> bool:
                return False

        sem = Free(0)
        await sem.acquire()
        taken = sem._value
        copied = copy.copy(sem)._value
        sem.release()
        values.append((taken, copied, sem._value))
    assert values == [(-1, -1, 0)] * 2


def _counting_notify(cls: Any) -> Any:
    """Return a condition of a subclass of *cls* whose notify() notes each
    count it is passed in ``passed``."""

    class Counted(cls):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.passed: list[int] = []

        def notify(self, n: int = 1) -> None:
            self.passed.append(n)
            super().notify(n)

    return Counted()


@pytest.mark.family("asyncio")
@pytest.mark.parametrize("schedule", ["notify first", "twice", "a waiter cancelled and gone"])
async def test_notify_all_passes_the_tasks_not_resumed_from_wait_as_asyncio_s_does(
    lib: Lib, schedule: str
) -> None:
    # asyncio's notify_all() passes its count of waiters, which keeps a
    # notified task until it resumes, and drops a cancelled one as it leaves
    # (having notified the first in its place, from 3.13: gh-112202).
    counts = []
    natives = (
        [asyncio.Condition] if sys.version_info >= (3, 13) or "cancelled" not in schedule else []
    )
    for cls in (*natives, loopsync.Condition):
        cond = _counting_notify(cls)

        async def wait(cond: Any = cond) -> None:
            async with cond:
                await cond.wait()

        async with lib.task_group() as group:
            waiters = [await lib.start_queued(group, wait) for _ in range(4)]
            if schedule == "a waiter cancelled and gone":
                waiters[1].cancel()
                await lib.settle()
            async with cond:
                if schedule == "notify first":
                    cond.notify()
                cond.notify_all()
                if schedule == "twice":
                    cond.notify_all()
        counts.append(cond.passed)
    expected = {
        "notify first": [1, 4],
        "twice": [4, 4],
        "a waiter cancelled and gone": [2],
    }[schedule]
    assert counts == [expected] * (len(natives) + 1)


def test_notify_all_outside_any_library_calls_notify_as_asyncio_s_does() -> None:
    # From synchronous code: after asyncio.run() returned, with the lock
    # still held, and with a lock never taken.
    calls = []
    for cls in (asyncio.Condition, loopsync.Condition):
        held, free = cls(), cls()

        async def take(cond: Any = held) -> None:
            await cond.acquire()

        asyncio.run(take())
        for cond in (held, free):
            cond.notify = lambda n=1, held=cond is held: calls.append((held, n))
            cond.notify_all()
    assert calls == [(True, 0), (False, 0)] * 2


@pytest.mark.parametrize("where", ["instance", "class"])
async def test_wait_calls_the_lock_s_methods_patched_as_the_native_does(
    lib: Lib, where: str
) -> None:
    # Patched before the condition is made, which asyncio's binds them at:
    # its wait() asks locked(), releases, and acquires again through them.
    # trio's checks the owner itself, and the lock is handed back to it.
    logs = []
    for make_lock, make_condition in zip(_pair(lib, "Lock"), _pair(lib, "Condition"), strict=True):
        log: list[str] = []
        lock = make_lock()
        target = lock if where == "instance" else type(lock)
        with (
            _logging(target, "acquire", log),
            _logging(target, "release", log),
            _logging(target, "locked", log),
        ):
            cond = type(make_condition())(lock)

            async def wait(cond: Any = cond) -> None:
                async with cond:
                    await cond.wait()

            async with lib.task_group() as group:
                await lib.start_queued(group, wait)
                async with cond:
                    cond.notify()
        logs.append(log)
    if lib.family == "asyncio":
        waits = ["acquire", "locked", "release"]
        notifies = ["acquire", "locked", "release"]
        resumes = ["acquire", "release"]
    else:
        waits, notifies, resumes = ["acquire", "release"], ["acquire", "release"], ["release"]
    assert logs[1] == logs[0] == waits + notifies + resumes


@pytest.mark.family("asyncio")
@pytest.mark.parametrize("where", ["patched", "mixed in"])
async def test_a_bounded_semaphore_s_release_calls_semaphore_s_as_asyncio_s_does(
    lib: Lib, where: str
) -> None:
    # asyncio's checks its bound, then calls super().release(): a release()
    # patched on Semaphore, or a mixin's in the subclass's order, runs.
    logs = []
    for module in (asyncio, loopsync):
        log: list[str] = []
        patch = _logging(module.Semaphore, "release", log)
        with patch if where == "patched" else contextlib.nullcontext():
            sem = module.BoundedSemaphore(1) if where == "patched" else _mixed_in(module, log)
            async with sem:
                pass
            with pytest.raises(ValueError, match="BoundedSemaphore released too many times"):
                sem.release()
        logs.append(log)
    assert logs[1] == logs[0] == ["release"]


def _mixed_in(module: Any, log: list[str]) -> Any:
    """Return a BoundedSemaphore(1) of *module* whose class has, after
    BoundedSemaphore, a Semaphore subclass whose release() notes each call."""

    class Counting(module.Semaphore):  # type: ignore[misc, name-defined]
        def release(self) -> None:
            log.append("release")
            super().release()

    class Bounded(module.BoundedSemaphore, Counting):  # type: ignore[misc, name-defined]
        pass

    return Bounded(1)
