"""Differential tests: loopsync's Lock against the library's own.

Hypothesis draws random programs: lists of actions that a controller task
carries out one after the other (spawn a task that acquires, with
``acquire()`` or as ``async with`` does, and holds the lock until told to
release it; tell a holder to release, or to exit without releasing; cancel a
task; ``acquire_nowait()`` and ``release()`` from the controller; let the
tasks run).  Each program runs twice, once against the library's own lock
(the oracle) and once against loopsync's, and each run records a trace: what
every task did, the outcome of every action, exceptions with their type and
message, and what the lock looked like after each action.  The two traces
must be equal.

- asyncio, uvloop and anyio on asyncio: the oracle is :class:`asyncio.Lock`
  of Python 3.13, on every Python (see
  :func:`differential.asyncio_locks_313`).  Scheduling is deterministic, so
  the traces are compared exactly: ``locked()``, the number of tasks
  waiting, and what ``acquire()`` returns.  Programs may run several actions
  in the same loop iteration, or let only one to three iterations pass
  between actions, to catch the races around a waiter that was handed the
  lock but has not resumed yet (bpo-27585).

  That includes a release() that finds the first queued waiter cancelled
  while its task has not run yet: asyncio's lock then wakes nobody, and the
  cancelled task wakes the next waiter when it runs.

- trio and anyio on trio: the oracle is :class:`trio.Lock`, compared on
  ``locked()`` and ``statistics()``, its owner told by the task's name.
  trio runs the tasks of a batch in random order, so the controller only
  ever lets tasks run until all of them are blocked, and the events of each
  such step are compared as a set.  A holder that exits without releasing
  breaks the lock: its waiters and later ``acquire()`` calls raise
  ``BrokenResourceError``.

Not compared: the return value of ``acquire()`` under trio (loopsync's is
True under every library, trio's is None), ``repr()`` (loopsync's counts the
tasks still waiting only), and ``statistics().owner`` under asyncio, where
loopsync's is always None (asyncio's locks have no owner, nor statistics).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest
import trio
from hypothesis import example, given
from hypothesis import strategies as st

import loopsync
from differential import (
    ASYNCIO_LIBS,
    SETTINGS,
    Names,
    OracleWouldBlock,
    Run,
    Trace,
    acquire_nowait_asyncio,
    assert_same_trace,
    let_tasks_run,
    pick_cyclic,
    pick_to_cancel,
    run_program,
    weighted,
)
from libs import AsyncioLib, Handle, Lib, TaskGroup

# --------------------------------------------------------------------------
# Programs


@dataclass(frozen=True)
class Spawn:
    """Start a task that acquires the lock, with ``acquire()`` and
    ``release()``, or with ``__aenter__()`` and ``__aexit__()`` (as ``async
    with`` does) if *context*, then holds it until told to release."""

    context: bool


@dataclass(frozen=True)
class Release:
    """Tell a holding task to release: the k-th (cyclically, by task number)
    of those not told yet.  With *abandon*, a task that used ``acquire()``
    exits without releasing instead."""

    k: int
    abandon: bool = False


@dataclass(frozen=True)
class Cancel:
    """Cancel a task that has not finished and was not cancelled yet: the k-th
    (cyclically, by task number) of those in *phase* ("acquiring": in
    acquire(), whether or not it was handed the lock already; "holding"), or
    of all of them if *phase* is None."""

    k: int
    phase: str | None = None


@dataclass(frozen=True)
class AcquireNowait:
    """``acquire_nowait()`` from the controller, which then holds the lock."""


@dataclass(frozen=True)
class ControllerRelease:
    """``release()`` from the controller, whether or not it holds the lock."""


Action = Spawn | Release | Cancel | AcquireNowait | ControllerRelease | Run


@dataclass(frozen=True)
class Program:
    actions: list[Action]


# Hand-offs and cancellations between two loop iterations are what the
# programs are for.
actions: st.SearchStrategy[Action] = weighted(
    (2, st.builds(Spawn, context=st.booleans())),
    (1, st.builds(Release, k=st.integers(0, 3))),
    (1, st.builds(Release, k=st.integers(0, 3), abandon=st.just(True))),
    (1, st.builds(Cancel, k=st.integers(0, 3))),
    (1, st.builds(Cancel, k=st.integers(0, 1), phase=st.sampled_from(["acquiring", "holding"]))),
    (1, st.just(AcquireNowait())),
    (1, st.just(ControllerRelease())),
    (1, st.builds(Run, iterations=st.sampled_from([1, 1, 2, 3]))),
    (1, st.just(Run(None))),
)
programs = st.builds(Program, actions=st.lists(actions, min_size=5, max_size=40))


# --------------------------------------------------------------------------
# The locks under test, behind one interface


class Subject:
    """A lock as the controller and the tasks see it."""

    would_block: type[BaseException]

    def __init__(self, lock: Any) -> None:
        self.lock = lock

    def acquire_nowait(self) -> None:
        self.lock.acquire_nowait()

    def observe(self, names: Names) -> str:
        """Describe the state: ``locked()``, the waiting tasks and, under
        trio, ``statistics()``."""
        raise NotImplementedError


class LoopsyncSubject(Subject):
    def __init__(self, lib: Lib) -> None:
        super().__init__(loopsync.Lock())
        self.trio = lib.family == "trio"
        # Under trio, what refuses must also be a trio.WouldBlock.
        self.would_block = trio.WouldBlock if self.trio else loopsync.WouldBlock

    def observe(self, names: Names) -> str:
        stats = self.lock.statistics()
        if self.trio:
            return _describe_trio(self.lock.locked(), stats, names)
        assert stats.locked == self.lock.locked()
        return f"locked={self.lock.locked()} waiting={stats.tasks_waiting}"


class AsyncioOracle(Subject):
    would_block = OracleWouldBlock

    def __init__(self, locks: ModuleType) -> None:
        super().__init__(locks.Lock())

    def acquire_nowait(self) -> None:
        acquire_nowait_asyncio(self.lock)

    def observe(self, names: Names) -> str:
        # loopsync's tasks_waiting counts the tasks blocked in acquire() that
        # were neither handed the lock nor cancelled: in asyncio, the futures
        # of the queue that are not done yet.
        waiting = sum(not fut.done() for fut in self.lock._waiters or ())
        return f"locked={self.lock.locked()} waiting={waiting}"


class TrioOracle(Subject):
    would_block = trio.WouldBlock

    def __init__(self) -> None:
        super().__init__(trio.Lock())

    def observe(self, names: Names) -> str:
        return _describe_trio(self.lock.locked(), self.lock.statistics(), names)


def _describe_trio(locked: bool, stats: Any, names: Names) -> str:
    return (
        f"locked={locked} statistics=(locked={stats.locked}, "
        f"owner={names.of(stats.owner)}, waiting={stats.tasks_waiting})"
    )


# --------------------------------------------------------------------------
# Running a program


@dataclass
class Worker:
    name: str
    context: bool
    release_event: Any  # asyncio.Event or trio.Event
    phase: str = "spawned"  # then "acquiring", "holding", "done"
    told: bool = False
    abandon: bool = False
    cancelled: bool = False
    handle: Handle = field(default_factory=lambda: Handle(""))


class Controller:
    """Carries out a program's actions against one lock."""

    def __init__(self, subject: Subject, lib: Lib, trace: Trace) -> None:
        self.subject = subject
        self.lib = lib
        self.trace = trace
        self.trio = lib.family == "trio"
        self.names = Names()
        self.workers: list[Worker] = []
        self.event_class: Callable[[], Any] = trio.Event if self.trio else asyncio.Event
        # Under trio: how many actions since the last settle made a task
        # runnable that will then use the lock, and whether one of them
        # started a task.
        self.wakers = 0
        self.spawned = False

    def current_task(self) -> Any:
        return trio.lowlevel.current_task() if self.trio else asyncio.current_task()

    def describe(self, exc: BaseException) -> str:
        if isinstance(exc, self.lib.cancelled):
            return "Cancelled"
        if isinstance(exc, self.subject.would_block):
            return "WouldBlock"
        return f"{type(exc).__name__}({self.names.in_text(str(exc))!r})"

    def step(self, text: str) -> None:
        self.trace.step(f"{text} => {self.subject.observe(self.names)}")

    async def let_run(self, iterations: int | None) -> None:
        self.step(await let_tasks_run(self.lib, iterations))
        self.wakers = 0
        self.spawned = False

    async def work(self, worker: Worker) -> None:
        lock, trace = self.subject.lock, self.trace
        self.names.add(self.current_task(), worker.name)
        worker.phase = "acquiring"
        how = "__aenter__()" if worker.context else "acquire()"
        trace.event(f"{worker.name} calls {how}")
        try:
            result = await (lock.__aenter__() if worker.context else lock.acquire())
        except BaseException as exc:
            worker.phase = "done"
            trace.event(f"{worker.name} {how} raised {self.describe(exc)}")
            raise
        # Under trio, acquire() returns None, loopsync's True.
        shown = "" if self.trio else f", {how} returned {result!r}"
        trace.event(f"{worker.name} acquired{shown}")
        worker.phase = "holding"
        error: BaseException | None = None
        try:
            await worker.release_event.wait()
        except BaseException as exc:
            trace.event(f"{worker.name} cancelled while holding ({self.describe(exc)})")
            error = exc
            raise
        else:
            if worker.abandon and not worker.context:
                worker.phase = "done"
                trace.event(f"{worker.name} exits without releasing")
                return
        finally:
            if worker.phase != "done":
                worker.phase = "done"
                how = "__aexit__()" if worker.context else "release()"
                trace.event(f"{worker.name} calls {how}")
                try:
                    if worker.context:
                        await lock.__aexit__(type(error), error, None)
                    else:
                        lock.release()
                except RuntimeError as exc:
                    trace.event(f"{worker.name} {how} raised {self.describe(exc)}")
                else:
                    trace.event(f"{worker.name} released")

    def pick(self, action: Release | Cancel) -> Worker | None:
        if isinstance(action, Release):
            holding = [w for w in self.workers if w.phase == "holding" and not w.told]
            return pick_cyclic(holding, action.k)
        return pick_to_cancel(self.workers, action.k, action.phase)

    def wakes_a_task(self, action: Action) -> bool:
        """Whether *action* makes a task runnable that will then use the lock."""
        if isinstance(action, Cancel):
            target = self.pick(action)
            return target is not None and target.phase == "holding"
        return isinstance(action, Spawn | Release)

    async def run(self, program: Program, group: TaskGroup) -> None:
        self.names.add(self.current_task(), "controller")
        self.step("start")
        for action in program.actions:
            if self.trio and self.wakes_a_task(action):
                # trio runs the tasks of a batch in random order.  A task
                # arriving in acquire() does not commute with the others: it
                # gets a step of its own.
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
            worker = Worker(f"t{len(self.workers)}", action.context, self.event_class())
            self.workers.append(worker)
            worker.handle = group.start(self.work, worker, name=worker.name)
            self.step(f"spawn {worker.name} ({'async with' if action.context else 'acquire()'})")
        elif isinstance(action, Release):
            holder = self.pick(action)
            if holder is None:
                self.step("tell a holder to release: there is none")
            else:
                holder.told = True
                holder.abandon = action.abandon
                holder.release_event.set()
                leave = "exit" if action.abandon and not holder.context else "release"
                self.step(f"tell {holder.name} to {leave}")
        elif isinstance(action, Cancel):
            target = self.pick(action)
            if target is None:
                self.step("cancel: no task left")
                return
            target.cancelled = True
            target.handle.cancel()
            self.step(f"cancel {target.name} ({target.phase})")
        elif isinstance(action, AcquireNowait):
            try:
                subject.acquire_nowait()
            except (subject.would_block, RuntimeError) as exc:
                self.step(f"acquire_nowait() raised {self.describe(exc)}")
            else:
                self.step("acquire_nowait() succeeded")
        elif isinstance(action, ControllerRelease):
            try:
                subject.lock.release()
            except RuntimeError as exc:
                self.step(f"release() raised {self.describe(exc)}")
            else:
                self.step("release() succeeded")
        else:
            await self.let_run(action.iterations)


def _run(program: Program, lib: Lib, make_subject: Callable[[], Subject]) -> list[str | list[str]]:
    return run_program(lib, program, lambda trace: Controller(make_subject(), lib, trace))


def _check(program: Program, lib: Lib, oracle: Callable[[], Subject]) -> None:
    assert_same_trace(_run(program, lib, oracle), _run(program, lib, lambda: LoopsyncSubject(lib)))


# --------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("loop", ASYNCIO_LIBS, ids=str)
@SETTINGS
# bpo-27585: t1 is handed the lock by t0's release(), then cancelled before
# it runs; the lock must go on to t2.
@example(
    program=Program(
        [Spawn(False), Spawn(False), Spawn(False), Run(1), Release(0), Run(1), Cancel(0)]
    )
)
# The same, handed over by the controller's release() (asyncio's locks have
# no owner), to a task in ``async with``; t0's __aexit__() then releases the
# lock t2 holds, and t2's release() fails.
@example(
    program=Program(
        [Spawn(True), Spawn(True), Spawn(False), Run(1), ControllerRelease(), Cancel(1)]
    )
)
# release() finds t0, first, cancelled before it ran: it wakes nobody, and
# t0 wakes t1 as it leaves (asyncio's rule; see the test below).
@example(
    program=Program(
        [AcquireNowait(), Spawn(False), Spawn(False), Run(None), Cancel(0), ControllerRelease()]
    )
)
@given(program=programs)
def test_lock_matches_asyncio(loop: Lib, program: Program, locks: ModuleType) -> None:
    _check(program, loop, lambda: AsyncioOracle(locks))


@pytest.mark.family("trio")
@SETTINGS
# release() of a lock that no task has used yet: refused as trio refuses it,
# for the controller does not own it.
@example(program=Program([ControllerRelease(), AcquireNowait(), ControllerRelease()]))
# t0 exits holding the lock: its waiter t1, and t2 arriving later, raise
# BrokenResourceError naming t0.
@example(
    program=Program(
        [Spawn(False), Spawn(True), Run(None), Release(0, abandon=True), Run(None), Spawn(False)]
    )
)
# The controller may not release t0's lock; cancelled, t0 passes it to t1.
@example(program=Program([Spawn(False), Spawn(True), Run(None), ControllerRelease(), Cancel(0)]))
@given(program=programs)
def test_lock_matches_trio(lib: Lib, program: Program) -> None:
    _check(program, lib, TrioOracle)


def test_release_past_a_cancelled_waiter_wakes_nobody(locks: ModuleType) -> None:
    """The controller holds the lock, t0 and t1 queue, t0 is cancelled, and
    the controller releases before t0 has run: as asyncio's, the lock wakes
    nobody, and t0's clean-up wakes t1, which resumes an iteration later."""
    program = Program(
        [
            AcquireNowait(),
            Spawn(False),
            Spawn(False),
            Run(None),
            Cancel(0),
            ControllerRelease(),
            Run(1),
            Run(1),
        ]
    )
    lib = AsyncioLib()
    expected = _run(program, lib, lambda: AsyncioOracle(locks))
    assert expected[6:11] == [
        "cancel t0 (acquiring) => locked=True waiting=1",
        "release() succeeded => locked=False waiting=1",
        ["t0 acquire() raised Cancelled"],
        "run 1 iteration(s) => locked=False waiting=0",
        ["t1 acquired, acquire() returned True"],
    ]
    assert _run(program, lib, lambda: LoopsyncSubject(lib)) == expected
