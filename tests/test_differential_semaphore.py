"""Differential tests: loopsync's semaphores against the library's own.

Hypothesis draws random programs: lists of actions that a controller task
carries out one after the other (spawn a task that acquires, tell a holder to
release, cancel a task, ``acquire_nowait()``, an extra ``release()``, let the
tasks run).  Each program runs twice, once against the library's own
semaphore (the oracle) and once against loopsync's, and each run records a
trace: what every task did, the outcome of every action and what the
semaphore looked like after it.  The two traces must be equal.

- asyncio, uvloop and anyio on asyncio: the oracle is
  :class:`asyncio.Semaphore` (or ``BoundedSemaphore``) of Python 3.13, on
  every Python (see :func:`differential.asyncio_locks_313`).  Scheduling is
  deterministic, so the traces are compared exactly.  Programs may run
  several actions in the same loop iteration, or let only one to three
  iterations pass between actions, to catch the races around a waiter that
  was handed a permit but has not resumed yet.
- trio and anyio on trio: the oracle is :class:`trio.Semaphore` (with
  ``max_value`` for the bounded one).  trio runs the tasks of a batch in
  random order, so the controller only ever lets tasks run until all of them
  are blocked, and the events of each such step are compared as a set.

Not compared: the return value of ``acquire()`` under trio (loopsync's is
documented to be True under every library, trio's is None), and ``repr()``,
whose waiter count differs by design: asyncio's counts every future still in
its queue, including those of tasks handed a permit or cancelled that have not
resumed yet, while loopsync's counts the tasks still waiting, as
``statistics()`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest
import trio
from hypothesis import example, given
from hypothesis import strategies as st

import loopsync
from differential import (
    ASYNCIO_LIBS,
    SETTINGS,
    Run,
    Trace,
    assert_same_trace,
    asyncio_locks_313,
    let_tasks_run,
    pick_cyclic,
    pick_to_cancel,
    run_program,
    weighted,
)
from libs import Handle, Lib, TaskGroup

# --------------------------------------------------------------------------
# Programs


@dataclass(frozen=True)
class Spawn:
    """Start a task that acquires, then holds until told to release, or
    releases at once."""

    hold: bool


@dataclass(frozen=True)
class Release:
    """Tell a holding task to release: the k-th (cyclically, by task number)
    of those not told yet."""

    k: int


@dataclass(frozen=True)
class Cancel:
    """Cancel a task that has not finished and was not cancelled yet: the k-th
    (cyclically, by task number) of those in *phase* ("acquiring": in
    acquire(), whether or not it was handed a permit already; "holding"), or
    of all of them if *phase* is None."""

    k: int
    phase: str | None = None


@dataclass(frozen=True)
class AcquireNowait:
    """``acquire_nowait()`` from the controller, which then keeps the permit."""


@dataclass(frozen=True)
class ExtraRelease:
    """``release()`` from the controller, whether or not it holds a permit."""


Action = Spawn | Release | Cancel | AcquireNowait | ExtraRelease | Run


@dataclass(frozen=True)
class Program:
    value: int
    bounded: bool
    actions: list[Action]


# Hand-offs and cancellations between two loop iterations are what the
# programs are for.
actions: st.SearchStrategy[Action] = weighted(
    (1, st.builds(Spawn, hold=st.booleans())),
    (1, st.builds(Spawn, hold=st.just(True))),
    (1, st.builds(Release, k=st.integers(0, 3))),
    (1, st.builds(Cancel, k=st.integers(0, 3))),
    (1, st.builds(Cancel, k=st.integers(0, 1), phase=st.sampled_from(["acquiring", "holding"]))),
    (1, st.just(AcquireNowait())),
    (2, st.just(ExtraRelease())),
    (1, st.builds(Run, iterations=st.sampled_from([1, 1, 2, 3]))),
    (1, st.just(Run(None))),
)
programs = st.builds(
    Program,
    value=st.integers(0, 3),
    bounded=st.booleans(),
    actions=st.lists(actions, min_size=5, max_size=40),
)


# --------------------------------------------------------------------------
# The semaphores under test, behind one interface


class Subject(Protocol):
    """A semaphore as the controller and the tasks see it."""

    would_block: type[BaseException]

    async def acquire(self) -> object: ...

    def release(self) -> None: ...

    def acquire_nowait(self) -> None: ...

    def observe(self) -> str:
        """Describe the state: ``locked()``, the value and the waiting tasks."""
        ...


def _describe_state(locked: bool, value: int, waiting: int) -> str:
    return f"locked={locked} value={value} waiting={waiting}"


class LoopsyncSubject:
    would_block: type[BaseException] = loopsync.WouldBlock

    def __init__(self, value: int, bounded: bool) -> None:
        self.sem = loopsync.BoundedSemaphore(value) if bounded else loopsync.Semaphore(value)

    async def acquire(self) -> object:
        return await self.sem.acquire()

    def release(self) -> None:
        self.sem.release()

    def acquire_nowait(self) -> None:
        self.sem.acquire_nowait()

    def observe(self) -> str:
        sem = self.sem
        return _describe_state(sem.locked(), sem.value, sem.statistics().tasks_waiting)


class _OracleWouldBlock(Exception):
    pass


class AsyncioOracle:
    would_block: type[BaseException] = _OracleWouldBlock

    def __init__(self, value: int, bounded: bool) -> None:
        locks = asyncio_locks_313()
        self.sem = locks.BoundedSemaphore(value) if bounded else locks.Semaphore(value)

    async def acquire(self) -> object:
        return await self.sem.acquire()

    def release(self) -> None:
        self.sem.release()

    def acquire_nowait(self) -> None:
        # asyncio has no acquire_nowait(); its equivalent is an acquire() that
        # does not suspend, which is exactly when locked() is false.
        if self.sem.locked():
            raise _OracleWouldBlock
        coro = self.sem.acquire()
        try:
            coro.send(None)
        except StopIteration:
            return
        coro.close()
        raise AssertionError("asyncio.Semaphore.acquire() suspended although not locked()")

    def observe(self) -> str:
        sem: Any = self.sem
        # loopsync's tasks_waiting counts the tasks blocked in acquire() that
        # were neither handed a permit nor cancelled: in asyncio, the futures
        # of the queue that are not done yet.
        waiting = sum(not fut.done() for fut in sem._waiters or ())
        return _describe_state(sem.locked(), sem._value, waiting)


class TrioOracle:
    would_block: type[BaseException] = trio.WouldBlock

    def __init__(self, value: int, bounded: bool) -> None:
        self.sem = trio.Semaphore(value, max_value=value if bounded else None)

    async def acquire(self) -> object:
        await self.sem.acquire()
        return None

    def release(self) -> None:
        self.sem.release()

    def acquire_nowait(self) -> None:
        self.sem.acquire_nowait()

    def observe(self) -> str:
        # trio.Semaphore has no locked(); under trio a task can take a permit
        # at once exactly when the value is not zero.
        sem = self.sem
        return _describe_state(sem.value == 0, sem.value, sem.statistics().tasks_waiting)


# --------------------------------------------------------------------------
# Running a program


@dataclass
class Worker:
    name: str
    hold: bool
    release_event: Any  # asyncio.Event or trio.Event
    phase: str = "spawned"  # then "acquiring", "holding", "done"
    told: bool = False
    cancelled: bool = False
    handle: Handle = field(default_factory=lambda: Handle(""))


def _exception_name(exc: BaseException, cancelled: type[BaseException]) -> str:
    return "Cancelled" if isinstance(exc, cancelled) else type(exc).__name__


async def _work(
    worker: Worker, subject: Subject, trace: Trace, lib: Lib, show_result: bool
) -> None:
    worker.phase = "acquiring"
    trace.event(f"{worker.name} calls acquire()")
    try:
        result = await subject.acquire()
    except BaseException as exc:
        worker.phase = "done"
        trace.event(f"{worker.name} acquire() raised {_exception_name(exc, lib.cancelled)}")
        raise
    trace.event(
        f"{worker.name} acquired" + (f", acquire() returned {result!r}" if show_result else "")
    )
    worker.phase = "holding"
    try:
        if worker.hold:
            await worker.release_event.wait()
    except BaseException as exc:
        trace.event(
            f"{worker.name} cancelled while holding ({_exception_name(exc, lib.cancelled)})"
        )
        raise
    finally:
        worker.phase = "done"
        # Under trio, tasks that release in the same step do so in random
        # order, and with a bounded semaphore which of them gets ValueError
        # depends on it: only the number of such errors is compared there.
        who = worker.name if trace.ordered else "a task"
        trace.event(f"{worker.name} calls release()")
        try:
            subject.release()
        except ValueError:
            trace.event(f"{who}: release() raised ValueError")
        else:
            trace.event(f"{who}: release() succeeded")


class Controller:
    """Carries out a program's actions against one semaphore."""

    def __init__(self, subject: Subject, lib: Lib, trace: Trace, show_result: bool) -> None:
        self.subject = subject
        self.lib = lib
        self.trace = trace
        self.show_result = show_result
        self.workers: list[Worker] = []
        self.event_class: Callable[[], Any] = trio.Event if lib.family == "trio" else asyncio.Event
        # Under trio: how many actions since the last settle made a task
        # runnable that will then use the semaphore, and whether one of them
        # started a task.
        self.wakers = 0
        self.spawned = False

    def step(self, text: str) -> None:
        self.trace.step(f"{text} => {self.subject.observe()}")

    async def let_run(self, iterations: int | None) -> None:
        self.step(await let_tasks_run(self.lib, iterations))
        self.wakers = 0
        self.spawned = False

    def pick(self, action: Release | Cancel) -> Worker | None:
        if isinstance(action, Release):
            holding = [w for w in self.workers if w.phase == "holding" and w.hold and not w.told]
            return pick_cyclic(holding, action.k)
        return pick_to_cancel(self.workers, action.k, action.phase)

    def wakes_a_task(self, action: Action) -> bool:
        """Whether *action* makes a task runnable that will then call
        acquire() or release()."""
        if isinstance(action, Cancel):
            target = self.pick(action)
            return target is not None and target.phase == "holding"
        return isinstance(action, Spawn | Release | ExtraRelease)

    async def run(self, program: Program, group: TaskGroup) -> None:
        self.step("start")
        for action in program.actions:
            if self.lib.family == "trio" and self.wakes_a_task(action):
                # trio runs the tasks of a batch in random order.  Tasks that
                # release commute (up to which one gets ValueError, see
                # _work()), but a task arriving in acquire() does not commute
                # with the others: it gets a step of its own.
                if self.wakers and (self.spawned or isinstance(action, Spawn)):
                    await self.let_run(None)
                self.wakers += 1
                self.spawned |= isinstance(action, Spawn)
            await self.do(action, group)
        await self.let_run(None)
        for worker in self.workers:
            if worker.phase != "done" and not worker.cancelled:
                worker.handle.cancel()
        self.step(f"cleanup: cancel every task, {await let_tasks_run(self.lib, None)}")

    async def do(self, action: Action, group: TaskGroup) -> None:
        subject = self.subject
        if isinstance(action, Spawn):
            worker = Worker(f"t{len(self.workers)}", action.hold, self.event_class())
            self.workers.append(worker)
            worker.handle = group.start(
                _work, worker, subject, self.trace, self.lib, self.show_result, name=worker.name
            )
            self.step(f"spawn {worker.name} ({'holds' if action.hold else 'releases at once'})")
        elif isinstance(action, Release):
            holder = self.pick(action)
            if holder is None:
                self.step("tell a holder to release: there is none")
            else:
                holder.told = True
                holder.release_event.set()
                self.step(f"tell {holder.name} to release")
        elif isinstance(action, Cancel):
            target = self.pick(action)
            if target is None:
                self.step("cancel: no task left")
            else:
                target.cancelled = True
                target.handle.cancel()
                self.step(f"cancel {target.name} ({target.phase})")
        elif isinstance(action, AcquireNowait):
            try:
                subject.acquire_nowait()
            except subject.would_block:
                self.step("acquire_nowait() raised WouldBlock")
            else:
                self.step("acquire_nowait() succeeded")
        elif isinstance(action, ExtraRelease):
            try:
                subject.release()
            except ValueError:
                self.step("release() raised ValueError")
            else:
                self.step("release() succeeded")
        else:
            await self.let_run(action.iterations)


def _run(
    program: Program,
    lib: Lib,
    make_subject: Callable[[int, bool], Subject],
    show_result: bool,
) -> list[str | list[str]]:
    return run_program(
        lib,
        program,
        lambda trace: Controller(
            make_subject(program.value, program.bounded), lib, trace, show_result
        ),
    )


def _check(
    program: Program, lib: Lib, oracle: Callable[[int, bool], Subject], show_result: bool
) -> None:
    assert_same_trace(
        _run(program, lib, oracle, show_result), _run(program, lib, LoopsyncSubject, show_result)
    )


# --------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("loop", ASYNCIO_LIBS, ids=str)
@SETTINGS
# t1 and t2 queue behind the hand-off to t0 though two permits are free; t0,
# resuming, wakes both in the same iteration (gh-111693).
@example(
    program=Program(
        value=0,
        bounded=False,
        actions=[Spawn(hold=True), Run(1), Spawn(hold=True), Spawn(hold=True)]
        + [ExtraRelease()] * 3
        + [Run(1)],
    )
)
@given(program=programs)
def test_semaphore_matches_asyncio(loop: Lib, program: Program) -> None:
    asyncio_locks_313()  # skipped at once if there is no oracle
    _check(program, loop, AsyncioOracle, show_result=True)


@pytest.mark.family("trio")
@SETTINGS
# t0 waits on a BoundedSemaphore(0); the controller's release() hands t0 the
# permit, as trio does, instead of raising ValueError.
@example(
    program=Program(value=0, bounded=True, actions=[Spawn(hold=True), Run(None), ExtraRelease()])
)
@given(program=programs)
def test_semaphore_matches_trio(lib: Lib, program: Program) -> None:
    _check(program, lib, TrioOracle, show_result=False)
