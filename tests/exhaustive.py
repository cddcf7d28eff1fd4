"""Differential runs of every program up to a given length.

hypothesis draws the differential tests' programs at random.  This module
tries every sequence of a few actions instead, from a small alphabet per
primitive, so that a small scope is covered whole, hand-offs and
cancellations one loop iteration apart included.  ``test_exhaustive.py``
runs every program of up to three actions; longer ones run by hand, about a
millisecond a program, stopping at the first difference::

    python tests/exhaustive.py lock 6            # against asyncio.Lock of 3.13
    python tests/exhaustive.py lock 6 --trio     # against trio.Lock

Each program runs under asyncio (``--trio``: trio) twice, against the oracle
of the primitive's differential test and against loopsync's, as that test
runs it (see its module docstring for what is compared).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import test_differential_barrier as barrier
import test_differential_capacity_limiter as limiter
import test_differential_condition as condition
import test_differential_event as event
import test_differential_lock as lock
import test_differential_semaphore as semaphore
from differential import Run, asyncio_locks_313
from libs import AsyncioLib, Lib, TrioLib

__all__ = ["CASES", "Case", "first_difference"]

Trace = list[str | list[str]]


@dataclass(frozen=True)
class Case:
    """One primitive's programs under one library, and how to run them."""

    alphabet: Sequence[Any]
    openers: tuple[type, ...]
    """A program starts with one of these (a task, or a held primitive)."""
    settings: Sequence[Any]
    """What a program holds beside its actions (a value, parties, ...)."""
    program: Callable[[Any, list[Any]], Any]
    traces: Callable[[Any, Lib], tuple[Trace, Trace]]
    """Run a program: the oracle's trace, then loopsync's."""

    def programs(self, length: int) -> Iterator[Any]:
        """Yield every program of *length* actions, for each setting."""
        for setting in self.settings:
            for actions in itertools.product(self.alphabet, repeat=length):
                if isinstance(actions[0], self.openers):
                    yield self.program(setting, list(actions))


_RUNS = [Run(1), Run(2), Run(None)]

_SEMAPHORE = [
    *[semaphore.Spawn(hold=True), semaphore.Spawn(hold=False), semaphore.Release(0)],
    *[semaphore.Cancel(0), semaphore.Cancel(1), semaphore.Cancel(0, "acquiring")],
    *[semaphore.Cancel(0, "holding"), semaphore.AcquireNowait(), semaphore.ExtraRelease()],
    *_RUNS,
]
_LOCK = [
    *[lock.Spawn(context=False), lock.Spawn(context=True), lock.Release(0)],
    *[lock.Release(0, abandon=True), lock.Cancel(0), lock.Cancel(1), lock.Cancel(0, "acquiring")],
    *[lock.Cancel(0, "holding"), lock.AcquireNowait(), lock.ControllerRelease()],
    *_RUNS,
]
_CONDITION = [
    *[condition.Spawn("wait"), condition.Spawn("wait_for", hold=True)],
    *[condition.Spawn("hold", hold=True), condition.Notify(1), condition.Notify(None, produce=1)],
    *[condition.ControllerNotify(1), condition.Release(0), condition.Cancel(0)],
    *[condition.Cancel(0, "waiting"), condition.Cancel(0, "acquiring")],
    *_RUNS,
]
_EVENT = [event.Spawn(1), event.Spawn(2), event.Set(), event.Cancel(0), event.Cancel(1), *_RUNS]
_BARRIER = [
    *[barrier.Spawn(1), barrier.Spawn(2), barrier.Fill(1), barrier.Cancel(0), barrier.Cancel(1)],
    *[barrier.Reset(), barrier.Abort(), *_RUNS],
]
_LIMITER = [
    *[limiter.Spawn(None), limiter.Spawn("x"), limiter.Spawn("x", hold=False)],
    *[limiter.Release(0), limiter.Cancel(0), limiter.Cancel(0, "acquiring")],
    *[limiter.AcquireNowait("x"), limiter.ReleaseFor("x"), limiter.SetTotal(0)],
    *[limiter.SetTotal(2), Run(1), Run(None)],
]


def _cases() -> dict[tuple[str, str], Case]:
    def semaphores(oracle: Any, show_result: bool) -> Case:
        return Case(
            _SEMAPHORE,
            (semaphore.Spawn,),
            [(value, bounded) for value in (0, 1, 2) for bounded in (False, True)],
            lambda setting, actions: semaphore.Program(*setting, actions),
            lambda program, lib: (
                semaphore._run(program, lib, oracle, show_result),
                semaphore._run(program, lib, semaphore.LoopsyncSubject, show_result),
            ),
        )

    def locking(
        module: Any, alphabet: list[Any], openers: tuple[type, ...], oracle: Callable[[], Any]
    ) -> Case:
        # The lock's and the condition's tests run programs alike.
        return Case(
            alphabet,
            openers,
            [None],
            lambda _, actions: module.Program(actions),
            lambda program, lib: (
                module._run(program, lib, oracle),
                module._run(program, lib, lambda: module.LoopsyncSubject(lib)),
            ),
        )

    def events(alphabet: list[Any], oracle: Callable[[], Any]) -> Case:
        return Case(
            alphabet,
            (event.Spawn,),
            [None],
            lambda _, actions: event.Program(actions),
            lambda program, lib: (
                event._run(program, lib, oracle()),
                event._run(program, lib, event.loopsync_subject()),
            ),
        )

    def limiters(oracle: Any) -> Case:
        return Case(
            _LIMITER,
            (limiter.Spawn,),
            [0, 1],
            limiter.Program,
            lambda program, lib: (
                limiter._run(program, lib, oracle),
                limiter._run(program, lib, limiter.loopsync_subject),
            ),
        )

    barriers = Case(
        _BARRIER,
        (barrier.Spawn, barrier.Fill),
        [1, 2, 3],
        barrier.Program,
        lambda program, lib: (
            barrier._run_differential(program, lib, barrier.asyncio_oracle(program.parties)),
            barrier._run_differential(program, lib, barrier.loopsync_subject(program.parties)),
        ),
    )
    lock_openers = (lock.Spawn, lock.AcquireNowait)
    condition_openers = (condition.Spawn, condition.Notify)
    return {
        ("semaphore", "asyncio"): semaphores(semaphore.AsyncioOracle, show_result=True),
        ("semaphore", "trio"): semaphores(semaphore.TrioOracle, show_result=False),
        ("lock", "asyncio"): locking(
            lock, _LOCK, lock_openers, lambda: lock.AsyncioOracle(asyncio_locks_313())
        ),
        ("lock", "trio"): locking(lock, _LOCK, lock_openers, lock.TrioOracle),
        ("condition", "asyncio"): locking(
            condition,
            _CONDITION,
            condition_openers,
            lambda: condition.AsyncioOracle(asyncio_locks_313()),
        ),
        ("condition", "trio"): locking(
            condition, _CONDITION, condition_openers, condition.TrioOracle
        ),
        ("event", "asyncio"): events(
            [*_EVENT, event.Clear()], lambda: event.asyncio_oracle(asyncio_locks_313())
        ),
        ("event", "trio"): events(_EVENT, event.trio_oracle),
        ("barrier", "asyncio"): barriers,
        ("capacity_limiter", "asyncio"): limiters(limiter.model_oracle),
        ("capacity_limiter", "trio"): limiters(limiter.trio_oracle),
    }


CASES = _cases()
"""(primitive, library family) -> its :class:`Case`."""


def first_difference(
    case: Case, lib: Lib, lengths: Sequence[int]
) -> tuple[int, tuple[Any, Trace, Trace] | None]:
    """Run every program of *case* of each of *lengths* under *lib*; return
    how many ran, and the first that differs, with both traces, if any."""
    count = 0
    for length in lengths:
        for program in case.programs(length):
            expected, actual = case.traces(program, lib)
            count += 1
            if actual != expected:
                return count, (program, expected, actual)
    return count, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("primitive", choices=sorted({name for name, _ in CASES}))
    parser.add_argument("length", type=int, help="the number of actions of each program")
    parser.add_argument("--trio", action="store_true", help="under trio, against trio's own")
    args = parser.parse_args()
    family = "trio" if args.trio else "asyncio"
    case = CASES.get((args.primitive, family))
    if case is None:
        parser.error(f"{args.primitive} has no differential test under {family}")
    lib = TrioLib() if args.trio else AsyncioLib()
    start = time.perf_counter()
    count, difference = first_difference(case, lib, [args.length])
    if difference is not None:
        program, expected, actual = difference
        print(f"differs after {count} programs: {program}")
        print(f"oracle:   {expected}\nloopsync: {actual}")
        return 1
    print(f"{count} programs, no difference ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
