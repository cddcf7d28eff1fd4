"""Differential tests: loopsync's Condition against the library's own.

Hypothesis draws random programs: lists of actions that a controller task
carries out one after the other.  Every task it spawns first acquires the
condition's lock, then does one thing:

- ``wait()``, or ``wait_for()`` a shared predicate (an item is there; it
  then takes it), and then either releases the lock at once or holds it
  until told to release;
- hold the lock until told to release it;
- put 0 to 2 items there, then ``notify(n)`` or ``notify_all()``, and
  release.

The controller also tells holders to release, cancels tasks, calls
``notify()`` itself (which must fail unless, under asyncio, some task holds
the lock) and lets the tasks run.  Each program runs twice, once against the
library's own condition (the oracle) and once against loopsync's, and each
run records a trace: what every task did (each call of the predicate
included, so that spurious wake-ups show), the outcome of every action, and,
after it, ``locked()``, the tasks waiting on the condition and on its lock.
The two traces must be equal.

- asyncio, uvloop and anyio on asyncio: the oracle is
  :class:`asyncio.Condition` of Python 3.13, on every Python (see
  :func:`differential.asyncio_locks_313`). Scheduling is deterministic, so
  the traces are compared exactly.  Programs may let only one to three loop
  iterations pass between actions, so that a task is cancelled after it was
  notified and before it resumes (gh-112202: the notification must pass to
  another waiter).

  A release that finds the first task queued for the lock cancelled but not
  run yet wakes nobody, as asyncio's, and the cancelled task wakes the next
  one when it runs (``test_differential_lock`` compares it); here only tasks
  release the lock, so the traces show that rule only through their releases.

- trio and anyio on trio: the oracle is :class:`trio.Condition`, compared on
  ``locked()`` and ``statistics()``, the lock's owner told by the task's
  name.  trio's condition has no ``wait_for()``: the oracle's is the usual
  loop around ``wait()``.  trio runs the tasks of a batch in random order,
  so every action that makes a task runnable gets a step of its own, after
  which the controller lets the tasks run until all of them are blocked; the
  events of each such step are compared as a set.

Not compared: the return value of ``acquire()`` and ``wait()`` under trio
(loopsync's are True under every library, trio's None), ``repr()``, and the
lock's owner under asyncio (see ``test_differential_lock``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
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
    Run,
    Trace,
    assert_same_trace,
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
    """Start a task that acquires the lock, then calls ``wait()`` ("wait"),
    or ``wait_for()`` until an item is there and takes it ("wait_for"), or
    does nothing ("hold"); then holds the lock until told to release if
    *hold* (always for "hold"), or releases it at once."""

    kind: str
    hold: bool = False


@dataclass(frozen=True)
class Notify:
    """Start a task that acquires the lock, puts *produce* items there, then
    calls ``notify(n)``, or ``notify_all()`` if *n* is None, and releases."""

    n: int | None
    produce: int = 0


@dataclass(frozen=True)
class ControllerNotify:
    """``notify(n)`` (``notify_all()`` if *n* is None) from the controller,
    which never holds the lock."""

    n: int | None


@dataclass(frozen=True)
class Release:
    """Tell a holding task to release: the k-th (cyclically, by task number)
    of those not told yet."""

    k: int


@dataclass(frozen=True)
class Cancel:
    """Cancel a task that has not finished and was not cancelled yet: the k-th
    (cyclically, by task number) of those in *phase* ("acquiring": in its
    first acquire(); "waiting": in wait() or wait_for(); "holding"), or of all
    of them if *phase* is None."""

    k: int
    phase: str | None = None


Action = Spawn | Notify | ControllerNotify | Release | Cancel | Run


@dataclass(frozen=True)
class Program:
    actions: list[Action]


# Mostly waiters and notifications, and often only one loop iteration
# between actions.
actions: st.SearchStrategy[Action] = weighted(
    (2, st.builds(Spawn, kind=st.sampled_from(["wait", "wait_for"]), hold=st.booleans())),
    (1, st.builds(Spawn, kind=st.just("hold"), hold=st.just(True))),
    (2, st.builds(Notify, n=st.sampled_from([1, 1, 2, None]), produce=st.integers(0, 2))),
    (1, st.builds(ControllerNotify, n=st.sampled_from([1, None]))),
    (1, st.builds(Release, k=st.integers(0, 3))),
    (1, st.builds(Cancel, k=st.integers(0, 3))),
    (1, st.builds(Cancel, k=st.integers(0, 1), phase=st.sampled_from(["acquiring", "waiting"]))),
    (1, st.builds(Run, iterations=st.sampled_from([1, 1, 2, 3]))),
    (1, st.just(Run(None))),
)
programs = st.builds(Program, actions=st.lists(actions, min_size=5, max_size=40))


# --------------------------------------------------------------------------
# The conditions under test, behind one interface


class Subject:
    """A condition as the controller and the tasks see it."""

    def __init__(self, cond: Any) -> None:
        self.cond = cond

    async def wait_for(self, predicate: Callable[[], object]) -> object:
        return await self.cond.wait_for(predicate)

    def observe(self, names: Names) -> str:
        """Describe the state: ``locked()``, the tasks waiting on the
        condition and on its lock and, under trio, the lock's owner."""
        raise NotImplementedError


class LoopsyncSubject(Subject):
    def __init__(self, lib: Lib) -> None:
        self.trio = lib.family == "trio"
        super().__init__(loopsync.Condition())

    def observe(self, names: Names) -> str:
        stats = self.cond.statistics()
        if self.trio:
            return _describe_trio(self.cond.locked(), stats, names)
        return _describe(self.cond.locked(), stats.tasks_waiting, stats.lock_statistics)


class AsyncioOracle(Subject):
    def __init__(self, locks: ModuleType) -> None:
        super().__init__(locks.Condition())

    def observe(self, names: Names) -> str:
        # loopsync's tasks_waiting counts the tasks blocked that were neither
        # woken nor cancelled: in asyncio, the futures that are not done yet.
        cond = self.cond
        lock_waiting = sum(not fut.done() for fut in cond._lock._waiters or ())
        waiting = sum(not fut.done() for fut in cond._waiters)
        return _describe(cond.locked(), waiting, lock_waiting)


class TrioOracle(Subject):
    def __init__(self) -> None:
        super().__init__(trio.Condition())

    async def wait_for(self, predicate: Callable[[], object]) -> object:
        # trio's condition has no wait_for(): the usual loop.
        result = predicate()
        while not result:
            await self.cond.wait()
            result = predicate()
        return result

    def observe(self, names: Names) -> str:
        return _describe_trio(self.cond.locked(), self.cond.statistics(), names)


def _describe(locked: bool, waiting: int, lock_waiting: Any) -> str:
    if not isinstance(lock_waiting, int):
        lock_waiting = lock_waiting.tasks_waiting
    return f"locked={locked} waiting={waiting} lock_waiting={lock_waiting}"


def _describe_trio(locked: bool, stats: Any, names: Names) -> str:
    lock = stats.lock_statistics
    return (
        f"locked={locked} waiting={stats.tasks_waiting} lock=(locked={lock.locked}, "
        f"owner={names.of(lock.owner)}, waiting={lock.tasks_waiting})"
    )


# --------------------------------------------------------------------------
# Running a program


@dataclass
class Worker:
    name: str
    kind: str  # "wait", "wait_for", "hold" or "notify"
    hold: bool
    release_event: Any  # asyncio.Event or trio.Event
    n: int | None = None
    produce: int = 0
    phase: str = "spawned"  # then "acquiring", "waiting", "holding", "done"
    told: bool = False
    cancelled: bool = False
    handle: Handle = field(default_factory=lambda: Handle(""))


class Controller:
    """Carries out a program's actions against one condition."""

    def __init__(self, subject: Subject, lib: Lib, trace: Trace) -> None:
        self.subject = subject
        self.lib = lib
        self.trace = trace
        self.trio = lib.family == "trio"
        self.names = Names()
        self.workers: list[Worker] = []
        self.items = 0
        self.event_class: Callable[[], Any] = trio.Event if self.trio else asyncio.Event
        # Under trio: whether an action since the last settle made a task
        # runnable.
        self.woken = False

    def current_task(self) -> Any:
        return trio.lowlevel.current_task() if self.trio else asyncio.current_task()

    def describe(self, exc: BaseException) -> str:
        if isinstance(exc, self.lib.cancelled):
            return "Cancelled"
        return f"{type(exc).__name__}({str(exc)!r})"

    def step(self, text: str) -> None:
        self.trace.step(f"{text} => {self.subject.observe(self.names)} items={self.items}")

    async def let_run(self, iterations: int | None) -> None:
        self.step(await let_tasks_run(self.lib, iterations))
        self.woken = False

    async def call(self, worker: Worker, what: str, fn: Callable[[], Awaitable[object]]) -> None:
        """Call ``fn()``, tracing the call and its outcome."""
        self.trace.event(f"{worker.name} calls {what}")
        try:
            result = await fn()
        except BaseException as exc:
            self.trace.event(f"{worker.name} {what} raised {self.describe(exc)}")
            raise
        # Under trio, acquire() and wait() return None, loopsync's True.
        shown = "" if self.trio and what != "wait_for()" else f" {result!r}"
        self.trace.event(f"{worker.name} {what} returned{shown}")

    def predicate(self, worker: Worker) -> Callable[[], bool]:
        def there_is_an_item() -> bool:
            self.trace.event(f"{worker.name} checks: {self.items} item(s)")
            return self.items > 0

        return there_is_an_item

    async def work(self, worker: Worker) -> None:
        cond, trace = self.subject.cond, self.trace
        self.names.add(self.current_task(), worker.name)
        worker.phase = "acquiring"
        try:
            await self.call(worker, "acquire()", cond.acquire)
        except BaseException:
            worker.phase = "done"
            raise
        try:
            if worker.kind == "wait":
                worker.phase = "waiting"
                await self.call(worker, "wait()", cond.wait)
            elif worker.kind == "wait_for":
                worker.phase = "waiting"
                predicate = self.predicate(worker)
                await self.call(worker, "wait_for()", lambda: self.subject.wait_for(predicate))
                self.items -= 1
                trace.event(f"{worker.name} takes an item")
            elif worker.kind == "notify":
                self.items += worker.produce
                what = "notify_all()" if worker.n is None else f"notify({worker.n})"
                trace.event(f"{worker.name} puts {worker.produce} item(s), calls {what}")
                if worker.n is None:
                    cond.notify_all()
                else:
                    cond.notify(worker.n)
            worker.phase = "holding"
            if worker.hold:
                try:
                    await worker.release_event.wait()
                except BaseException as exc:
                    trace.event(f"{worker.name} cancelled while holding ({self.describe(exc)})")
                    raise
        finally:
            worker.phase = "done"
            trace.event(f"{worker.name} calls release()")
            try:
                cond.release()
            except RuntimeError as exc:
                trace.event(f"{worker.name} release() raised {self.describe(exc)}")
            else:
                trace.event(f"{worker.name} released")

    def pick(self, action: Release | Cancel) -> Worker | None:
        if isinstance(action, Release):
            holding = [w for w in self.workers if w.phase == "holding" and w.hold and not w.told]
            return pick_cyclic(holding, action.k)
        return pick_to_cancel(self.workers, action.k, action.phase)

    def wakes_a_task(self, action: Action) -> bool:
        """Whether *action* makes a task runnable."""
        if isinstance(action, Release | Cancel):
            return self.pick(action) is not None
        return isinstance(action, Spawn | Notify)

    async def run(self, program: Program, group: TaskGroup) -> None:
        self.names.add(self.current_task(), "controller")
        self.step("start")
        for action in program.actions:
            if self.trio and self.wakes_a_task(action):
                # trio runs the tasks of a batch in random order, and tasks
                # that take the lock do not commute: one at a time.
                if self.woken:
                    await self.let_run(None)
                self.woken = True
            await self.do(action, group)
        await self.let_run(None)
        for worker in self.workers:
            if worker.phase != "done" and not worker.cancelled:
                worker.handle.cancel()
        self.step(f"cleanup: cancel every task, {await let_tasks_run(self.lib, None)}")

    def spawn(self, group: TaskGroup, kind: str, hold: bool, **more: Any) -> Worker:
        worker = Worker(f"t{len(self.workers)}", kind, hold, self.event_class(), **more)
        self.workers.append(worker)
        worker.handle = group.start(self.work, worker, name=worker.name)
        return worker

    async def do(self, action: Action, group: TaskGroup) -> None:
        cond = self.subject.cond
        if isinstance(action, Spawn):
            worker = self.spawn(group, action.kind, action.hold)
            then = "holds" if action.hold else "releases"
            self.step(f"spawn {worker.name} ({action.kind}, then {then})")
        elif isinstance(action, Notify):
            worker = self.spawn(group, "notify", False, n=action.n, produce=action.produce)
            self.step(f"spawn {worker.name} (puts {action.produce}, notifies {action.n})")
        elif isinstance(action, ControllerNotify):
            what = "notify_all()" if action.n is None else f"notify({action.n})"
            try:
                if action.n is None:
                    cond.notify_all()
                else:
                    cond.notify(action.n)
            except RuntimeError as exc:
                self.step(f"{what} raised {self.describe(exc)}")
            else:
                self.step(f"{what} succeeded")
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
                return
            target.cancelled = True
            target.handle.cancel()
            self.step(f"cancel {target.name} ({target.phase})")
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
# gh-112202: t2 notifies t0 and releases; t0 is cancelled before it resumes.
# It takes the lock back, raises CancelledError, and passes the notification
# on: t1 wakes.
@example(
    program=Program(
        [Spawn("wait"), Spawn("wait"), Run(None), Notify(1), Run(1), Cancel(0), Run(None)]
    )
)
# The same with wait_for(): t0 is notified of an item and cancelled; t1
# wakes in its place and takes the item.
@example(
    program=Program(
        [Spawn("wait_for"), Spawn("wait_for"), Run(None), Notify(1, 1), Run(1), Cancel(0)]
    )
)
# t0, notified while t1 holds the lock, waits for it behind t2; cancelled
# there, it queues for the lock again, behind t2, and raises once it has it.
@example(
    program=Program(
        [
            Spawn("wait"),
            Spawn("hold", True),
            Run(None),
            ControllerNotify(1),
            Run(1),
            Spawn("hold", True),
            Run(None),
            Cancel(0, "waiting"),
            Release(0),
            Run(None),
        ]
    )
)
@given(program=programs)
def test_condition_matches_asyncio(loop: Lib, program: Program, locks: ModuleType) -> None:
    _check(program, loop, lambda: AsyncioOracle(locks))


@pytest.mark.family("trio")
@SETTINGS
# notify_all() moves t0 and t1 to the lock's queue, without waking them; t0
# gets the lock, t3 queues behind t1.  t1, cancelled, leaves the lock's queue
# and queues again, behind t3; once it has the lock, it raises Cancelled.
@example(
    program=Program(
        [
            Spawn("wait", True),
            Spawn("wait"),
            Run(None),
            Notify(None),
            Spawn("hold", True),
            Cancel(0, "waiting"),
            Release(0),
        ]
    )
)
@given(program=programs)
def test_condition_matches_trio(lib: Lib, program: Program) -> None:
    _check(program, lib, TrioOracle)
