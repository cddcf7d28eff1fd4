"""Differential tests: loopsync.redis's Semaphore and Lock against the
library's own, in-process.

Hypothesis draws programs: a semaphore of value 1 or 2, or a lock, and a list
of actions that a controller task carries out one after the other (start a
task that takes a permit, with ``async with`` or ``acquire_nowait()``, through
one of two sessions on clients of their own, as two processes would, and holds
it until told to release; tell a holder to release; cancel a task, waiting or
holding).  Each program runs twice: against the library's own primitive in
one process (the oracle: asyncio's of Python 3.13 under the asyncio family,
trio's under trio) and against loopsync.redis on a real server.

After each action the oracle's tasks run until all of them are blocked, and
the state is recorded: which tasks hold a permit, which wait, how each
finished task ended, and how many permits are borrowed and tasks waiting (for
loopsync.redis, as ``statistics()`` reads them from the server, beside
``locked()``).  Wake-ups cross the network, so loopsync.redis's tasks are
given until they show that same state, and then the server, up to
:data:`GIVE_UP_AFTER` seconds, which no correct run comes near; a state not
reached is a difference.  The sessions poll too rarely, and the leases last
too long, to play any part: each state must come from the hand-offs and the
wake-ups alone.  A task that would hold a permit while ``value`` others do is
recorded too, whenever it happens, and the fencing tokens must increase in
the order the permits were granted.

Not compared: what ``release()`` of a permit not held does (asyncio's
semaphore adds a permit, loopsync.redis's counts them on the server and
raises; see test_redis.py), and the races of a cancellation that arrives while
a request is on its way, whose outcome depends on the network (see the
deterministic cancellations of test_redis_failures.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
import trio
from hypothesis import example, given, settings
from hypothesis import strategies as st

import loopsync
import loopsync.redis
from differential import (
    OracleWouldBlock,
    acquire_nowait_asyncio,
    assert_same_trace,
    asyncio_locks_313,
    pick_cyclic,
    weighted,
)
from libs import Handle, Lib, TaskGroup
from redis_helpers import session, unique_name
from redis_server import RedisServer

# Each program makes two sessions and waits on the server after each action:
# far fewer programs than the in-process tests run.
SETTINGS = settings(max_examples=6, deadline=None, derandomize=True, database=None)

GIVE_UP_AFTER = 5.0
"""Seconds loopsync.redis's tasks are given to reach the oracle's state."""

# Far longer than any program: no task polls, no lease expires and no waiter
# lapses, so each state must come from hand-offs and wake-ups alone.
POLL_INTERVAL = LEASE = 60.0

# --------------------------------------------------------------------------
# Programs


@dataclass(frozen=True)
class Spawn:
    """Start a task that takes a permit through session 0 or 1, with ``async
    with`` or, if *nowait*, ``acquire_nowait()``, then holds it until told to
    release."""

    session: int
    nowait: bool = False


@dataclass(frozen=True)
class Release:
    """Tell a holding task to release: the k-th (cyclically, by task number)."""

    k: int


@dataclass(frozen=True)
class Cancel:
    """Cancel a task that has not finished: the k-th (cyclically, by task
    number), waiting or holding."""

    k: int


Action = Spawn | Release | Cancel


@dataclass(frozen=True)
class Program:
    lock: bool
    """A Lock, else a Semaphore of *value*."""
    value: int
    actions: list[Action]


# Mostly tasks arriving, so that a release hands a permit on to a queue of
# several tasks, of both sessions.
actions: st.SearchStrategy[Action] = weighted(
    (3, st.builds(Spawn, session=st.integers(0, 1))),
    (1, st.builds(Spawn, session=st.integers(0, 1), nowait=st.just(True))),
    (2, st.builds(Release, k=st.integers(0, 3))),
    (1, st.builds(Cancel, k=st.integers(0, 3))),
)


@st.composite
def programs(draw: st.DrawFn) -> Program:
    lock = draw(st.booleans())
    value = 1 if lock else draw(st.integers(1, 2))
    return Program(lock, value, draw(st.lists(actions, min_size=8, max_size=20)))


# --------------------------------------------------------------------------
# The tasks, and the primitives behind one interface


@dataclass
class Worker:
    """The controller's record of one task."""

    name: str
    release: Any  # the native event that tells it to release
    handle: Handle | None = None
    phase: str = "waiting"  # then "holding", "releasing", "done"
    ending: str = ""


class Subject:
    """A primitive as the tasks and the controller see it, and its tasks."""

    would_block: type[BaseException] = loopsync.WouldBlock

    def __init__(self, value: int) -> None:
        self.value = value
        self.workers: list[Worker] = []
        self.over_capacity: list[str] = []

    def hold(self, session: int, nowait: bool) -> contextlib.AbstractAsyncContextManager[object]:
        """Hold a permit for the body of an ``async with``."""
        raise NotImplementedError

    async def counts(self) -> tuple[int, int, bool]:
        """Permits borrowed, tasks waiting, and ``locked()``, as it tells them."""
        raise NotImplementedError


class OracleSubject(Subject):
    def __init__(self, primitive: Any, value: int, would_block: type[BaseException]) -> None:
        super().__init__(value)
        self.primitive = primitive
        self.would_block = would_block

    @contextlib.asynccontextmanager
    async def hold(self, session: int, nowait: bool) -> AsyncIterator[object]:
        if nowait:
            self._acquire_nowait()
        else:
            await self.primitive.acquire()
        try:
            yield None
        finally:
            self.primitive.release()

    def _acquire_nowait(self) -> None:
        if self.would_block is trio.WouldBlock:
            self.primitive.acquire_nowait()
        else:
            acquire_nowait_asyncio(self.primitive)

    async def counts(self) -> tuple[int, int, bool]:
        # The oracle's own count of its holders is the tasks' record of it.
        holding = sum(worker.phase == "holding" for worker in self.workers)
        waiting = sum(worker.phase == "waiting" for worker in self.workers)
        if isinstance(self.primitive, trio.Semaphore):  # which has no locked()
            return holding, waiting, self.primitive.value == 0
        return holding, waiting, self.primitive.locked()


class RedisSubject(Subject):
    def __init__(self, semaphores: list[loopsync.redis.Semaphore], value: int) -> None:
        super().__init__(value)
        self.semaphores = semaphores
        self.tokens: list[int] = []  # in the order the permits were granted

    @contextlib.asynccontextmanager
    async def hold(self, session: int, nowait: bool) -> AsyncIterator[object]:
        semaphore = self.semaphores[session]
        if nowait:
            permit = await semaphore.acquire_nowait()
        else:
            permit = await semaphore.acquire()
        self.tokens.append(permit.fencing_token)
        try:
            yield permit
        finally:
            await semaphore.release(permit)

    async def counts(self) -> tuple[int, int, bool]:
        statistics = await self.semaphores[0].statistics()
        return statistics.borrowed, statistics.tasks_waiting, await self.semaphores[1].locked()


async def work(subject: Subject, worker: Worker, action: Spawn) -> None:
    try:
        async with subject.hold(action.session, action.nowait):
            holding = [other.name for other in subject.workers if other.phase == "holding"]
            if len(holding) >= subject.value:
                subject.over_capacity.append(f"{worker.name} took a permit while {holding} held")
            worker.phase = "holding"
            try:
                await worker.release.wait()
                worker.ending = "released"
            finally:
                worker.ending = worker.ending or "cancelled while holding"
                # Before the permit goes back: the next holder may run before
                # this task's release() returns.
                worker.phase = "releasing"
    except subject.would_block:
        worker.ending = "would block"
    except Exception as exc:
        worker.ending = f"raised {type(exc).__name__}: {exc}"
    finally:
        worker.ending = worker.ending or "cancelled while waiting"
        worker.phase = "done"


# --------------------------------------------------------------------------
# The controller


def describe_tasks(workers: list[Worker]) -> str:
    """Describe what the tasks did, in the same words for both runs."""

    def names(phase: str) -> str:
        return " ".join(worker.name for worker in workers if worker.phase == phase) or "-"

    ended = ", ".join(f"{worker.name} {worker.ending}" for worker in workers if worker.ending)
    return (
        f"holding {names('holding')}; waiting {names('waiting')}; releasing {names('releasing')};"
        f" ended: {ended or '-'}"
    )


async def describe_counts(subject: Subject) -> str:
    borrowed, waiting, locked = await subject.counts()
    return f"borrowed={borrowed} waiting={waiting} locked={locked}"


def cancel_all(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.phase != "done":
            assert worker.handle is not None
            worker.handle.cancel()


async def control(
    lib: Lib, program: Program, subject: Subject, group: TaskGroup, expected: list[str] | None
) -> list[str]:
    """Carry out *program*; return the state after each action and after the
    end, where every task left is cancelled.  With *expected* (the oracle's),
    wait for each state in turn instead of letting the tasks settle."""
    workers = subject.workers
    trace: list[str] = []

    async def settle(label: str) -> str:
        async def state() -> str:
            return f"{label}: {describe_tasks(workers)}; {await describe_counts(subject)}"

        if expected is None:
            await lib.settle()
            return await state()
        # Wake-ups cross the network: wait for the tasks to show the oracle's
        # state, then for the server to.  Not asking the server meanwhile:
        # every script hands free permits on, and would make up for a missed
        # hand-off.
        entry = expected[len(trace)]
        with anyio.move_on_after(GIVE_UP_AFTER):
            while not entry.startswith(f"{label}: {describe_tasks(workers)}; "):
                await anyio.lowlevel.checkpoint()
            while await state() != entry:
                await anyio.lowlevel.checkpoint()
        return await state()

    for action in [*program.actions, None]:
        if isinstance(action, Spawn):
            worker = Worker(f"t{len(workers)}", lib.new_event())
            workers.append(worker)
            worker.handle = group.start(work, subject, worker, action)
        elif isinstance(action, Release):
            holding = [worker for worker in workers if worker.phase == "holding"]
            target = pick_cyclic(holding, action.k)
            if target is not None:
                target.release.set()
        elif isinstance(action, Cancel):
            running = [worker for worker in workers if worker.phase != "done"]
            target = pick_cyclic(running, action.k)
            if target is not None:
                assert target.handle is not None
                target.handle.cancel()
        else:
            cancel_all(workers)
        trace.append(await settle(f"{action or 'cancel every task left'}"))
        if expected is not None and trace[-1] != expected[len(trace) - 1]:
            # The rest would only repeat the difference; the task group
            # would wait for the tasks left.
            cancel_all(workers)
            break
    trace.append(f"over capacity: {subject.over_capacity or '-'}")
    return trace


def run_oracle(lib: Lib, program: Program) -> list[str]:
    async def main() -> list[str]:
        if lib.family == "trio":
            subject = OracleSubject(
                trio.Lock() if program.lock else trio.Semaphore(program.value),
                program.value,
                trio.WouldBlock,
            )
        else:
            locks = asyncio_locks_313()
            subject = OracleSubject(
                locks.Lock() if program.lock else locks.Semaphore(program.value),
                program.value,
                OracleWouldBlock,
            )
        async with lib.task_group() as group:
            return await control(lib, program, subject, group, None)

    return lib.run(main)


def run_redis(lib: Lib, program: Program, server: RedisServer, expected: list[str]) -> list[str]:
    async def main() -> list[str]:
        name = unique_name("differential")
        async with (
            session(server, poll_interval=POLL_INTERVAL) as first,
            session(server, poll_interval=POLL_INTERVAL) as second,
        ):
            if program.lock:
                semaphores = [
                    loopsync.redis.Lock(entered, name, lease=LEASE) for entered in (first, second)
                ]
            else:
                semaphores = [
                    loopsync.redis.Semaphore(entered, name, program.value, lease=LEASE)
                    for entered in (first, second)
                ]
            subject = RedisSubject(semaphores, program.value)
            async with lib.task_group() as group:
                trace = await control(lib, program, subject, group, expected)
            assert subject.tokens == sorted(set(subject.tokens)), subject.tokens
            return trace

    return lib.run(main)


# --------------------------------------------------------------------------
# Tests


@SETTINGS
# A release hands the permit to the head of the queue, of the other session;
# a holder cancelled hands it on in turn.
@example(
    program=Program(False, 1, [Spawn(0), Spawn(1), Spawn(0), Release(0), Cancel(0), Release(0)])
)
# acquire_nowait() refused while a task waits, a waiting task cancelled.
@example(program=Program(True, 1, [Spawn(0), Spawn(1), Spawn(0, nowait=True), Cancel(1)]))
@given(program=programs())
def test_redis_primitives_match_the_librarys_own(
    lib: Lib, redis_server: RedisServer, program: Program
) -> None:
    expected = run_oracle(lib, program)
    assert_same_trace(expected, run_redis(lib, program, redis_server, expected))


@pytest.mark.parametrize("lock", [False, True], ids=["semaphore", "lock"])
def test_the_oracle_records_what_the_tasks_did(lib: Lib, lock: bool) -> None:
    # t1 waits behind t0; cancelling t0 while it holds hands the permit on.
    program = Program(lock, 1, [Spawn(0), Spawn(1), Cancel(0), Release(0)])
    assert run_oracle(lib, program) == [
        "Spawn(session=0, nowait=False): holding t0; waiting -; releasing -; ended: -;"
        " borrowed=1 waiting=0 locked=True",
        "Spawn(session=1, nowait=False): holding t0; waiting t1; releasing -; ended: -;"
        " borrowed=1 waiting=1 locked=True",
        "Cancel(k=0): holding t1; waiting -; releasing -; ended: t0 cancelled while holding;"
        " borrowed=1 waiting=0 locked=True",
        "Release(k=0): holding -; waiting -; releasing -;"
        " ended: t0 cancelled while holding, t1 released; borrowed=0 waiting=0 locked=False",
        "cancel every task left: holding -; waiting -; releasing -;"
        " ended: t0 cancelled while holding, t1 released; borrowed=0 waiting=0 locked=False",
        "over capacity: -",
    ]
