"""Differential tests: loopsync's CapacityLimiter against trio's, and a model.

Hypothesis draws random programs: lists of actions that a controller task
carries out one after the other (spawn a task that borrows a token, for
itself with ``acquire()`` or for a named borrower with
``acquire_on_behalf_of()``, then holds it until told to give it back or
gives it back at once; tell a holder to give back; cancel a task;
``acquire_on_behalf_of_nowait()`` and ``release_on_behalf_of()`` from the
controller; change ``total_tokens``, to invalid values too; let the tasks
run).  Named borrowers come from a pool of three, so that a borrower asked
for while it holds a token or while another task waits for it, or given
back by another than its taker, is tried as well.  Each run records a
trace: what every task did, the outcome of every action (with the
exception's type and message), and, after it, ``statistics()`` (the
borrowers sorted by name, tasks by the names the test gave them) and
``available_tokens``.  The traces must be equal.

- trio and anyio on trio: the oracle is :class:`trio.CapacityLimiter`.  trio
  runs the tasks of a batch in random order, so every action that makes a
  task runnable gets a step of its own, after which the controller lets the
  tasks run until all of them are blocked; the events of each such step are
  compared as a set.  Tasks woken by one action need not commute (one gives
  back a borrower's token that another was about to take), so both runs
  draw trio's orders from the program (see ``differential.trio_batch_order``).
- asyncio has no capacity limiter; loopsync's follows trio's rules there,
  with asyncio's timing.  Two tests check it:

  * against a model (:class:`Model`): trio's rules, its parking lot
    replaced by a queue of asyncio futures, with the two rules loopsync
    documents for asyncio: acquiring a free token does not yield, and a task
    lent a token but cancelled before it resumes gives the token back (and
    it is lent on).  A model, rather than a skip, because those races are
    where an implementation on asyncio goes wrong; the model is short enough
    to be checked by reading.  Programs may let only one to three loop
    iterations pass between actions, to hit those races, and are compared
    exactly, on asyncio, uvloop and anyio on asyncio.
  * against trio's own limiter itself, run under trio, where every action is
    followed by letting all tasks run until they block: once everything has
    settled, loopsync under asyncio must agree with trio, which runs the
    tasks woken together in the order they were woken, as asyncio does.

Not compared: ``repr()``.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
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
from libs import AsyncioLib, Handle, Lib, TaskGroup, TrioLib

# --------------------------------------------------------------------------
# Programs


@dataclass(frozen=True)
class Spawn:
    """Start a task that borrows a token, for itself with ``acquire()`` if
    *borrower* is None, else for *borrower* with ``acquire_on_behalf_of()``,
    then holds it until told to give it back if *hold*, or gives it back at
    once."""

    borrower: str | None
    hold: bool = True


@dataclass(frozen=True)
class Release:
    """Tell a holding task to give its token back: the k-th (cyclically, by
    task number) of those not told yet."""

    k: int


@dataclass(frozen=True)
class Cancel:
    """Cancel a task that has not finished and was not cancelled yet: the k-th
    (cyclically, by task number) of those in *phase* ("acquiring": in
    acquire(), whether or not it was lent a token already; "holding"), or of
    all of them if *phase* is None."""

    k: int
    phase: str | None = None


@dataclass(frozen=True)
class AcquireNowait:
    """``acquire_on_behalf_of_nowait(borrower)`` from the controller."""

    borrower: str


@dataclass(frozen=True)
class ReleaseFor:
    """``release_on_behalf_of(borrower)`` from the controller."""

    borrower: str


@dataclass(frozen=True)
class SetTotal:
    """Set ``total_tokens``."""

    total: float


Action = Spawn | Release | Cancel | AcquireNowait | ReleaseFor | SetTotal | Run


@dataclass(frozen=True)
class Program:
    total: float
    actions: list[Action]


BORROWERS = ["x", "y", "z"]
borrowers = st.sampled_from(BORROWERS)

# Mostly tasks borrowing and giving back, and often only one loop iteration
# between actions.
actions: st.SearchStrategy[Action] = weighted(
    (1, st.builds(Spawn, borrower=st.none())),
    (1, st.builds(Spawn, borrower=st.none() | borrowers, hold=st.booleans())),
    (1, st.builds(Spawn, borrower=borrowers)),
    (2, st.builds(Release, k=st.integers(0, 3))),
    (1, st.builds(Cancel, k=st.integers(0, 3))),
    (1, st.builds(Cancel, k=st.integers(0, 1), phase=st.sampled_from(["acquiring", "holding"]))),
    (1, st.builds(AcquireNowait, borrower=borrowers)),
    (1, st.builds(ReleaseFor, borrower=borrowers)),
    (1, st.builds(SetTotal, total=st.sampled_from([0, 1, 2, 3, math.inf]))),
    (1, st.builds(SetTotal, total=st.sampled_from([-1, 1.5]))),
    (1, st.builds(Run, iterations=st.sampled_from([1, 1, 2, 3]))),
    (1, st.just(Run(None))),
)
programs = st.builds(
    Program,
    total=st.sampled_from([0, 1, 1, 2, 3]),
    actions=st.lists(actions, min_size=5, max_size=40),
)


# --------------------------------------------------------------------------
# The model


class _ModelWouldBlock(Exception):
    pass


class Model:
    """trio's CapacityLimiter on asyncio: a set of borrowers and a FIFO of
    (future, borrower), with asyncio's rules (see the module docstring).  A
    cancelled future stays in the queue until its task runs; the tasks that
    lend pass it over, as the one that counts waiting tasks does."""

    def __init__(self, total_tokens: float) -> None:
        self.borrowers: set[object] = set()
        self.queue: deque[tuple[asyncio.Future[None], object]] = deque()
        self.total_tokens = total_tokens

    @property
    def total_tokens(self) -> float:
        return self._total_tokens

    @total_tokens.setter
    def total_tokens(self, value: float) -> None:
        if not isinstance(value, int) and value != math.inf:
            raise TypeError("total_tokens must be an int or math.inf")
        if value < 0:
            raise ValueError("total_tokens must be >= 0")
        self._total_tokens = value
        self._lend()

    @property
    def available_tokens(self) -> float:
        return self._total_tokens - len(self.borrowers)

    def waiting(self) -> int:
        return sum(not future.done() for future, _ in self.queue)

    def _lend(self) -> None:
        # As trio: as many tasks as tokens are free, even if two of them wait
        # for the same borrower, which then holds one token.
        free = self._total_tokens - len(self.borrowers)
        while free > 0 and self.queue:
            future, borrower = self.queue.popleft()
            if not future.done():
                future.set_result(None)
                self.borrowers.add(borrower)
                free -= 1

    def _check_not_borrowing(self, borrower: object) -> None:
        if borrower in self.borrowers:
            raise RuntimeError(
                "this borrower is already holding one of this CapacityLimiter's tokens"
            )

    def acquire_on_behalf_of_nowait(self, borrower: object) -> None:
        self._check_not_borrowing(borrower)
        if len(self.borrowers) >= self._total_tokens or self.waiting():
            raise _ModelWouldBlock
        self.borrowers.add(borrower)

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        self._check_not_borrowing(borrower)
        if len(self.borrowers) < self._total_tokens and not self.waiting():
            self.borrowers.add(borrower)
            return
        future = asyncio.get_running_loop().create_future()
        self.queue.append((future, borrower))
        try:
            await future
        except BaseException:
            if not (future.cancelled() or future.cancel()):
                # Lent a token, cancelled before resuming: give it back.
                self.borrowers.discard(borrower)
                self._lend()
            raise

    async def acquire(self) -> None:
        await self.acquire_on_behalf_of(asyncio.current_task())

    def release_on_behalf_of(self, borrower: object) -> None:
        if borrower not in self.borrowers:
            raise RuntimeError("this borrower isn't holding any of this CapacityLimiter's tokens")
        self.borrowers.remove(borrower)
        self._lend()

    def release(self) -> None:
        self.release_on_behalf_of(asyncio.current_task())


# --------------------------------------------------------------------------
# The limiters under test, behind one interface


@dataclass
class Subject:
    """A limiter under test, what refuses to lend at once, and how to read
    its state: (borrowed, total, borrowers, waiting)."""

    limiter: Any
    would_block: type[BaseException]
    state: Callable[[Any], tuple[int, float, list[object], int]]


def _statistics(limiter: Any) -> tuple[int, float, list[object], int]:
    stats = limiter.statistics()
    assert stats.borrowed_tokens == limiter.borrowed_tokens
    assert stats.total_tokens == limiter.total_tokens
    return stats.borrowed_tokens, stats.total_tokens, list(stats.borrowers), stats.tasks_waiting


def loopsync_subject(total: float, lib: Lib) -> Subject:
    # Under trio, what refuses must also be a trio.WouldBlock.
    would_block = trio.WouldBlock if lib.family == "trio" else loopsync.WouldBlock
    return Subject(loopsync.CapacityLimiter(total), would_block, _statistics)


def trio_oracle(total: float, lib: Lib) -> Subject:
    return Subject(trio.CapacityLimiter(total), trio.WouldBlock, _statistics)


def model_oracle(total: float, lib: Lib) -> Subject:
    def state(model: Model) -> tuple[int, float, list[object], int]:
        return len(model.borrowers), model.total_tokens, list(model.borrowers), model.waiting()

    return Subject(Model(total), _ModelWouldBlock, state)


# --------------------------------------------------------------------------
# Running a program


@dataclass
class Worker:
    name: str
    borrower: str | None
    hold: bool
    release_event: Any  # asyncio.Event or trio.Event
    phase: str = "spawned"  # then "acquiring", "holding", "done"
    told: bool = False
    cancelled: bool = False
    handle: Handle = field(default_factory=lambda: Handle(""))


class Controller:
    """Carries out a program's actions against one limiter.

    *settle_each*: let the tasks run until they block after every action
    (the comparison of asyncio with trio).
    """

    def __init__(self, subject: Subject, lib: Lib, trace: Trace, settle_each: bool) -> None:
        self.subject = subject
        self.lib = lib
        self.trace = trace
        self.settle_each = settle_each
        self.trio = lib.family == "trio"
        self.names = Names()
        self.workers: list[Worker] = []
        self.event_class: Callable[[], Any] = trio.Event if self.trio else asyncio.Event
        # Under trio: whether an action since the last settle made a task
        # runnable.
        self.woken = False

    def current_task(self) -> Any:
        return trio.lowlevel.current_task() if self.trio else asyncio.current_task()

    def describe(self, exc: BaseException) -> str:
        if isinstance(exc, self.lib.cancelled):
            return "Cancelled"
        if isinstance(exc, self.subject.would_block):
            return "WouldBlock"
        return f"{type(exc).__name__}({str(exc)!r})"

    def observe(self) -> str:
        limiter = self.subject.limiter
        borrowed, total, borrowers, waiting = self.subject.state(limiter)
        names = sorted(self.names.of(borrower) for borrower in borrowers)
        return (
            f"borrowed={borrowed} total={total} borrowers=[{', '.join(names)}] "
            f"waiting={waiting} available={limiter.available_tokens}"
        )

    def step(self, text: str) -> None:
        self.trace.step(f"{text} => {self.observe()}")

    async def let_run(self, iterations: int | None) -> None:
        self.step(await let_tasks_run(self.lib, iterations))
        self.woken = False

    async def work(self, worker: Worker) -> None:
        limiter, trace = self.subject.limiter, self.trace
        self.names.add(self.current_task(), worker.name)
        worker.phase = "acquiring"
        if worker.borrower is None:
            how, acquire, release = "acquire()", limiter.acquire, limiter.release
        else:
            how = f"acquire_on_behalf_of({worker.borrower!r})"

            async def acquire() -> None:
                await limiter.acquire_on_behalf_of(worker.borrower)

            def release() -> None:
                limiter.release_on_behalf_of(worker.borrower)

        trace.event(f"{worker.name} calls {how}")
        try:
            await acquire()
        except BaseException as exc:
            worker.phase = "done"
            trace.event(f"{worker.name} {how} raised {self.describe(exc)}")
            raise
        trace.event(f"{worker.name} borrowed")
        worker.phase = "holding"
        try:
            if worker.hold:
                await worker.release_event.wait()
        except BaseException as exc:
            trace.event(f"{worker.name} cancelled while holding ({self.describe(exc)})")
            raise
        finally:
            worker.phase = "done"
            trace.event(f"{worker.name} gives back")
            try:
                release()
            except RuntimeError as exc:
                trace.event(f"{worker.name} giving back raised {self.describe(exc)}")
            else:
                trace.event(f"{worker.name} gave back")

    def pick(self, action: Release | Cancel) -> Worker | None:
        if isinstance(action, Release):
            holding = [w for w in self.workers if w.phase == "holding" and w.hold and not w.told]
            return pick_cyclic(holding, action.k)
        return pick_to_cancel(self.workers, action.k, action.phase)

    def wakes_a_task(self, action: Action) -> bool:
        """Whether *action* makes a task runnable."""
        if isinstance(action, Release | Cancel):
            return self.pick(action) is not None
        return isinstance(action, Spawn | ReleaseFor | SetTotal)

    async def run(self, program: Program, group: TaskGroup) -> None:
        self.names.add(self.current_task(), "controller")
        self.step("start")
        for action in program.actions:
            if self.trio and not self.settle_each and self.wakes_a_task(action):
                # trio runs the tasks of a batch in random order, and tasks
                # that borrow or give back do not commute: one at a time.
                if self.woken:
                    await self.let_run(None)
                self.woken = True
            await self.do(action, group)
            if self.settle_each and not isinstance(action, Run):
                await self.let_run(None)
        await self.let_run(None)
        # One at a time: under trio, tasks that give back for the same
        # borrower do not commute either.
        for worker in self.workers:
            if worker.phase != "done" and not worker.cancelled:
                worker.handle.cancel()
                self.step(f"cleanup: cancel {worker.name}, {await let_tasks_run(self.lib, None)}")

    async def do(self, action: Action, group: TaskGroup) -> None:
        limiter = self.subject.limiter
        if isinstance(action, Spawn):
            name = f"t{len(self.workers)}"
            worker = Worker(name, action.borrower, action.hold, self.event_class())
            self.workers.append(worker)
            worker.handle = group.start(self.work, worker, name=worker.name)
            then = "holds" if action.hold else "gives back at once"
            self.step(f"spawn {worker.name} (for {action.borrower or 'itself'}, {then})")
        elif isinstance(action, Release):
            holder = self.pick(action)
            if holder is None:
                self.step("tell a holder to give back: there is none")
            else:
                holder.told = True
                holder.release_event.set()
                self.step(f"tell {holder.name} to give back")
        elif isinstance(action, Cancel):
            target = self.pick(action)
            if target is None:
                self.step("cancel: no task left")
                return
            target.cancelled = True
            target.handle.cancel()
            self.step(f"cancel {target.name} ({target.phase})")
        elif isinstance(action, AcquireNowait):
            what = f"acquire_on_behalf_of_nowait({action.borrower!r})"
            try:
                limiter.acquire_on_behalf_of_nowait(action.borrower)
            except (self.subject.would_block, RuntimeError) as exc:
                self.step(f"{what} raised {self.describe(exc)}")
            else:
                self.step(f"{what} succeeded")
        elif isinstance(action, ReleaseFor):
            what = f"release_on_behalf_of({action.borrower!r})"
            try:
                limiter.release_on_behalf_of(action.borrower)
            except RuntimeError as exc:
                self.step(f"{what} raised {self.describe(exc)}")
            else:
                self.step(f"{what} succeeded")
        elif isinstance(action, SetTotal):
            try:
                limiter.total_tokens = action.total
            except (TypeError, ValueError) as exc:
                self.step(f"total_tokens = {action.total} raised {self.describe(exc)}")
            else:
                self.step(f"total_tokens = {action.total}")
        else:
            await self.let_run(None if self.settle_each else action.iterations)


Factory = Callable[[float, Lib], Subject]


def _run(
    program: Program, lib: Lib, make_subject: Factory, settle_each: bool = False
) -> list[str | list[str]]:
    return run_program(
        lib,
        program,
        lambda trace: Controller(make_subject(program.total, lib), lib, trace, settle_each),
        ordered=lib.family == "asyncio" and not settle_each,
        # Settled after each action, the tasks wait in the order they were
        # spawned: trio then wakes and runs them in asyncio's order.
        spawn_order=settle_each,
    )


# --------------------------------------------------------------------------
# Tests


@pytest.mark.family("trio")
@SETTINGS
# Lowering total_tokens takes no token back; a release then lends none.
@example(
    program=Program(2, [Spawn(None), Spawn(None), Spawn("y"), Run(None), SetTotal(1), Release(0)])
)
# The controller gives back t0's token for it; t0's own release is refused.
@example(program=Program(1, [Spawn("x"), Spawn("y"), Run(None), ReleaseFor("x"), Release(0)]))
# t0 and t1 wait for "x", t2 for itself.  Raising total_tokens to 2 wakes
# two tasks, as many as tokens are free: t0 and t1, between whom "x" holds
# one token; t2 waits on with a token free, which neither the controller nor
# a new task takes past it.
@example(
    program=Program(
        0, [Spawn("x"), Spawn("x"), Spawn(None), SetTotal(2), AcquireNowait("z"), Spawn("y")]
    )
)
# The same, t0 and t1 giving back at once: whichever trio runs first gives
# "x" back, and the other is refused.
@example(program=Program(0, [Spawn("x", hold=False), Spawn("x", hold=False), SetTotal(2)]))
# t0 and t1 are woken together and give back at once.  If t0 runs first, its
# token for "x" goes to t2; if t1 does, t2 is woken for "x" while t0 holds it,
# and "x" is free once t0 gives it back.
@example(
    program=Program(0, [Spawn("x", hold=False), Spawn(None, hold=False), Spawn("x"), SetTotal(2)])
)
@given(program=programs)
def test_capacity_limiter_matches_trio(lib: Lib, program: Program) -> None:
    assert_same_trace(_run(program, lib, trio_oracle), _run(program, lib, loopsync_subject))


@pytest.mark.parametrize("loop", ASYNCIO_LIBS, ids=str)
@SETTINGS
# t1 is lent t0's token, then cancelled before it resumes: the token goes on
# to t2.
@example(
    program=Program(
        1, [Spawn(None), Spawn("x"), Spawn("y"), Run(1), Release(0), Run(1), Cancel(0, "acquiring")]
    )
)
# The same with the token lent by raising total_tokens; until t0 has run,
# "x" holds it, and the controller cannot take a token for "x".
@example(
    program=Program(
        0,
        [
            Spawn("x"),
            Spawn("y"),
            Run(None),
            SetTotal(1),
            Cancel(0),
            AcquireNowait("x"),
            Run(None),
        ],
    )
)
@given(program=programs)
def test_capacity_limiter_matches_model_under_asyncio(loop: Lib, program: Program) -> None:
    assert_same_trace(_run(program, loop, model_oracle), _run(program, loop, loopsync_subject))


@SETTINGS
# t2 and t3 are woken together; t2, first as in asyncio, gives its token for
# "x" to t4.  (t0 and t1 come first so that trio's random order, left to
# itself, would run t3 first.)
@example(
    program=Program(
        0,
        [
            *[Spawn(None), Spawn(None), SetTotal(2), Release(0), Release(0), SetTotal(0)],
            *[Spawn("x", hold=False), Spawn(None, hold=False), Spawn("x"), SetTotal(2)],
        ],
    )
)
@given(program=programs)
def test_capacity_limiter_under_asyncio_settles_as_trio(program: Program) -> None:
    expected = _run(program, TrioLib(), trio_oracle, settle_each=True)
    actual = _run(program, AsyncioLib(), loopsync_subject, settle_each=True)
    assert_same_trace(expected, actual)
