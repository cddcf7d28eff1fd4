"""Differential tests: loopsync's Event against the library's own.

Hypothesis draws random programs: lists of actions that a controller task
carries out one after the other (spawn a task that calls ``wait()`` once or
twice, ``set()``, ``clear()``, cancel a task, let the tasks run).  Each
program runs twice, once against the library's own event (the oracle) and
once against loopsync's, and each run records a trace: what every task did,
the outcome of every action and, after it, ``is_set()`` and the number of
tasks waiting.  The two traces must be equal.

- asyncio, uvloop and anyio on asyncio: the oracle is :class:`asyncio.Event`
  of Python 3.13, on every Python (see
  :func:`differential.asyncio_locks_313`).  Scheduling is deterministic, so
  the traces are compared exactly, what ``wait()`` returns included.
  Programs may run several actions in the same loop iteration, or let only
  one to three iterations pass between actions, so that ``clear()`` and
  cancellations come between a ``set()`` and the moment the tasks it woke
  resume.
- trio and anyio on trio: the oracle is :class:`trio.Event`, compared on
  ``is_set()`` and ``statistics()``.  trio's event has no ``clear()``, so
  the programs run under trio never clear (loopsync's ``clear()`` under trio
  has no oracle to be compared with).  trio runs the tasks of a batch in
  random order, so the events of the tasks between two actions are compared
  as a set; they commute, for only the controller sets the event.

Not compared: the return value of ``wait()`` under trio (loopsync's is True
under every library, trio's is None), and ``repr()``, whose waiter count
differs by design (loopsync's counts the tasks still waiting only).
"""

from __future__ import annotations

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
    Run,
    Trace,
    assert_same_trace,
    let_tasks_run,
    run_program,
    weighted,
)
from libs import Handle, Lib, TaskGroup

# --------------------------------------------------------------------------
# Programs


@dataclass(frozen=True)
class Spawn:
    """Start a task that calls ``wait()`` *rounds* times, stopping at the
    first exception."""

    rounds: int


@dataclass(frozen=True)
class Set:
    """``set()`` from the controller."""


@dataclass(frozen=True)
class Clear:
    """``clear()`` from the controller (asyncio only)."""


@dataclass(frozen=True)
class Cancel:
    """Cancel a task that has not finished and was not cancelled yet: the k-th
    of them (cyclically, by task number)."""

    k: int


Action = Spawn | Set | Clear | Cancel | Run


@dataclass(frozen=True)
class Program:
    actions: list[Action]


def _programs(clear: bool) -> st.SearchStrategy[Program]:
    # Mostly tasks arriving, and often only one loop iteration between actions.
    choices: list[tuple[int, st.SearchStrategy[Action]]] = [
        (2, st.builds(Spawn, rounds=st.integers(1, 2))),
        (1, st.just(Set())),
        (1, st.builds(Cancel, k=st.integers(0, 3))),
        (1, st.builds(Run, iterations=st.sampled_from([1, 1, 2, 3]))),
        (1, st.just(Run(None))),
    ]
    if clear:
        choices.append((2, st.just(Clear())))
    return st.builds(Program, actions=st.lists(weighted(*choices), min_size=5, max_size=40))


# --------------------------------------------------------------------------
# The events under test


@dataclass
class Subject:
    """An event under test, and how to count the tasks waiting on it."""

    event: Any
    waiting: Callable[[Any], int]

    def observe(self) -> str:
        return f"is_set={self.event.is_set()} waiting={self.waiting(self.event)}"


def loopsync_subject() -> Subject:
    return Subject(loopsync.Event(), lambda event: event.statistics().tasks_waiting)


def asyncio_oracle(locks: ModuleType) -> Subject:
    # loopsync's tasks_waiting counts the tasks blocked in wait() that were
    # neither woken nor cancelled: in asyncio, the futures of the queue that
    # are not done yet.
    return Subject(locks.Event(), lambda event: sum(not fut.done() for fut in event._waiters))


def trio_oracle() -> Subject:
    return Subject(trio.Event(), lambda event: event.statistics().tasks_waiting)


# --------------------------------------------------------------------------
# Running a program


@dataclass
class Worker:
    name: str
    rounds: int
    phase: str = "spawned"  # then "waiting", "done"
    cancelled: bool = False
    handle: Handle = field(default_factory=lambda: Handle(""))


class Controller:
    """Carries out a program's actions against one event."""

    def __init__(self, subject: Subject, lib: Lib, trace: Trace) -> None:
        self.subject = subject
        self.lib = lib
        self.trace = trace
        self.trio = lib.family == "trio"
        self.workers: list[Worker] = []

    def step(self, text: str) -> None:
        self.trace.step(f"{text} => {self.subject.observe()}")

    async def work(self, worker: Worker) -> None:
        trace = self.trace
        try:
            for round_ in range(1, worker.rounds + 1):
                worker.phase = "waiting"
                trace.event(f"{worker.name} calls wait() ({round_})")
                try:
                    result = await self.subject.event.wait()
                except BaseException as exc:
                    name = "Cancelled" if isinstance(exc, self.lib.cancelled) else repr(exc)
                    trace.event(f"{worker.name} wait() ({round_}) raised {name}")
                    raise
                # Under trio, wait() returns None, loopsync's True.
                shown = "" if self.trio else f" {result!r}"
                trace.event(f"{worker.name} wait() ({round_}) returned{shown}")
        finally:
            worker.phase = "done"

    async def run(self, program: Program, group: TaskGroup) -> None:
        self.step("start")
        for action in program.actions:
            await self.do(action, group)
        await self.let_run(None)
        for worker in self.workers:
            if worker.phase != "done" and not worker.cancelled:
                worker.handle.cancel()
        self.step(f"cleanup: cancel every task, {await let_tasks_run(self.lib, None)}")

    async def let_run(self, iterations: int | None) -> None:
        self.step(await let_tasks_run(self.lib, iterations))

    async def do(self, action: Action, group: TaskGroup) -> None:
        event = self.subject.event
        if isinstance(action, Spawn):
            worker = Worker(f"t{len(self.workers)}", action.rounds)
            self.workers.append(worker)
            worker.handle = group.start(self.work, worker, name=worker.name)
            self.step(f"spawn {worker.name} (waits {action.rounds} time(s))")
        elif isinstance(action, Set):
            event.set()
            self.step("set()")
        elif isinstance(action, Clear):
            event.clear()
            self.step("clear()")
        elif isinstance(action, Cancel):
            candidates = [w for w in self.workers if w.phase != "done" and not w.cancelled]
            if not candidates:
                self.step("cancel: no task left")
                return
            target = candidates[action.k % len(candidates)]
            target.cancelled = True
            target.handle.cancel()
            self.step(f"cancel {target.name} ({target.phase})")
        else:
            await self.let_run(action.iterations)


def _run(program: Program, lib: Lib, subject: Subject) -> list[str | list[str]]:
    return run_program(lib, program, lambda trace: Controller(subject, lib, trace))


def _check(program: Program, lib: Lib, oracle: Callable[[], Subject]) -> None:
    assert_same_trace(_run(program, lib, oracle()), _run(program, lib, loopsync_subject()))


# --------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("loop", ASYNCIO_LIBS, ids=str)
@SETTINGS
# set() then clear() before the waiters run: both still return from their
# first wait(); t1's second wait() blocks.
@example(program=Program([Spawn(1), Spawn(2), Run(1), Set(), Clear(), Run(None)]))
# The same, and a task arriving while the event is set again, then cleared,
# in one loop iteration: it never waits.
@example(program=Program([Spawn(2), Run(1), Set(), Clear(), Set(), Spawn(1), Clear(), Run(1)]))
# t0 is woken by set(), then cancelled before it runs: it raises
# CancelledError, and t1, woken with it, still returns.
@example(program=Program([Spawn(1), Spawn(1), Run(1), Set(), Cancel(0), Run(None)]))
@given(program=_programs(clear=True))
def test_event_matches_asyncio(loop: Lib, program: Program, locks: ModuleType) -> None:
    _check(program, loop, lambda: asyncio_oracle(locks))


@pytest.mark.family("trio")
@SETTINGS
# t0 is woken by set() and cancelled before it runs: trio has rescheduled it,
# so its first wait() returns, and its second, a checkpoint, raises Cancelled.
@example(program=Program([Spawn(2), Run(None), Set(), Cancel(0), Run(None)]))
@given(program=_programs(clear=False))
def test_event_matches_trio(lib: Lib, program: Program) -> None:
    _check(program, lib, trio_oracle)
