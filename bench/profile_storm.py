"""Profile the timed part of one storm and say which library the time goes to.

Usage::

    python bench/profile_storm.py    # 10k waiters cancelled in reverse, anyio on asyncio
    python bench/profile_storm.py --context asyncio --kind release --waiters 50000

For each implementation (the context's own semaphore, under the asyncio
family the ``futures only`` yardstick, and loopsync's Semaphore) it prints the
storm's time without the profiler (median of a few runs) and its ratio to the
context's own semaphore's, then, from one run under
``cProfile``, how the profiled time splits between anyio, asyncio, trio,
loopsync, the benchmark's own code and the rest, and the functions that took
the most of it.  A function written in C counts for the library that calls
it (``deque.remove`` called by ``asyncio.Semaphore`` is asyncio's), and so
does a function of asyncio that anyio calls.

Only the timed part is profiled: the workloads read their clock
(``_workloads.perf_counter``) once when the timed part starts and once when it
ends, and this script substitutes a clock that turns the profiler on at the
first read and off at the second.  The profiler slows Python code down more
than C code, so the shares are a guide to where the time goes, and the times
without the profiler are the ones to compare.
"""

from __future__ import annotations

import argparse
import cProfile
import math
import pstats
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

try:
    import loopsync  # noqa: F401
except ImportError:  # run from a checkout where loopsync is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import _workloads
from _contexts import Context, available_contexts
from _impls import SemaphoreImpl, semaphore_impls
from _workloads import STORM_KINDS, run_in_context, storm

OWNERS = ("anyio", "asyncio", "trio", "loopsync", "bench")
"""Where a function's time is counted: the directory of these its file is in."""

SHARED_CONTEXTS = sys.modules[Context.__module__].__file__
"""The file of the contexts the benchmark shares with the tests: the benchmark's code."""


class ProfilingClock:
    """A clock that profiles the stretch between its first and second reading."""

    def __init__(self) -> None:
        self.profile = cProfile.Profile()
        self._readings = 0

    def __call__(self) -> float:
        self._readings += 1
        if self._readings == 1:
            now = time.perf_counter()
            self.profile.enable()
            return now
        if self._readings == 2:
            self.profile.disable()
        return time.perf_counter()


def owner_of(filename: str) -> str:
    """Return the library a function's file belongs to, or "other".

    The innermost matching directory wins, wherever the project is checked out;
    the contexts the benchmark shares with the tests count as the benchmark's.
    """
    if filename == SHARED_CONTEXTS:
        return "bench"
    for part in reversed(Path(filename).parts[:-1]):
        if part in OWNERS:
            return part
    return "other"


def shares(stats: pstats.Stats) -> tuple[dict[str, float], list[tuple[float, str]]]:
    """Split the profiled time by owner; also return the costliest functions.

    A function counts for the library its file is in, with two exceptions
    that follow the caller.  A C function (its file is ``~``) has no file of
    its own.  And a function of asyncio that anyio calls counts as anyio's:
    its cancel scopes schedule callbacks and format task reprs with asyncio's
    code.  The time of such a function is shared out among its callers; in
    the list of functions, it is marked with the caller that spent most time
    in it.
    """
    raw = stats.stats  # type: ignore[attr-defined]
    owners: dict[tuple[str, int, str], str] = {}

    def owner(func: tuple[str, int, str], seen: frozenset[tuple[str, int, str]]) -> str:
        if func in owners:
            return owners[func]
        filename = func[0]
        result = "other" if filename == "~" else owner_of(filename)
        callers = raw[func][4]
        if result in ("other", "asyncio") and callers and func not in seen:
            caller = max(callers, key=lambda key: callers[key][2])
            inherited = owner(caller, seen | {func})
            if filename == "~" or inherited == "anyio":
                result = inherited
        owners[func] = result
        return result

    by_owner: dict[str, float] = defaultdict(float)
    functions: list[tuple[float, str]] = []
    for func, (_, _, tottime, _, callers) in raw.items():
        filename, line, name = func
        func_owner = owner(func, frozenset())
        inherits = filename == "~" or owner_of(filename) == "asyncio"
        from_callers = sum(stat[2] for stat in callers.values()) if inherits else 0
        if from_callers:
            # Shared out among the callers, by the time each spent in it.
            for caller, stat in callers.items():
                inherited = owner(caller, frozenset())
                if filename != "~" and inherited != "anyio":
                    inherited = "asyncio"
                by_owner[inherited] += tottime * stat[2] / from_callers
        else:
            by_owner[func_owner] += tottime
        where = name if filename == "~" else f"{Path(filename).name}:{line} {name}"
        functions.append((tottime, f"[{func_owner}] {where}"))
    functions.sort(reverse=True)
    return by_owner, functions


def measure(
    ctx: Context, impl: SemaphoreImpl, kind: str, waiters: int, runs: int
) -> tuple[float, pstats.Stats]:
    """Return the median unprofiled time of *runs* storms, and one profiled storm."""
    param = (kind, waiters)
    times = []
    for _ in range(runs):
        outcome = run_in_context(ctx, storm, impl, param, give_up_after=60)
        if not outcome.ok:
            sys.exit(f"{impl.name} in {ctx.name}: {'; '.join(outcome.errors)}")
        times.append(outcome.value)
    clock = ProfilingClock()
    _workloads.perf_counter = clock
    try:
        outcome = run_in_context(ctx, storm, impl, param, give_up_after=60)
    finally:
        _workloads.perf_counter = time.perf_counter
    if not outcome.ok:
        sys.exit(f"{impl.name} in {ctx.name}, profiled: {'; '.join(outcome.errors)}")
    return statistics.median(times), pstats.Stats(clock.profile)


def main(argv: Sequence[str] | None = None) -> int:
    """Profile the storm for each implementation and print the split."""
    contexts = {ctx.name: ctx for ctx in available_contexts()[0]}
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--context", default="anyio-asyncio", choices=sorted(contexts))
    parser.add_argument("--kind", default="cancel-reverse", choices=STORM_KINDS)
    parser.add_argument("--waiters", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3, help="unprofiled runs (median)")
    parser.add_argument("--top", type=int, default=8, help="costliest functions to list")
    args = parser.parse_args(argv)
    ctx = contexts[args.context]
    impls = [
        impl
        for impl in semaphore_impls()
        if not impl.bounded
        and not impl.differs_only_when_free
        and impl.family in (None, ctx.family)
        and (impl.is_loopsync or impl.reference or impl.name.startswith(ctx.family))
    ]
    # The context's own semaphore first, so that the others can be compared with it.
    impls.sort(key=lambda impl: not impl.name.startswith(ctx.family))
    native_seconds = math.nan
    print(f"storm/{args.kind}, W={args.waiters}, in {ctx.name}")
    for impl in impls:
        seconds, stats = measure(ctx, impl, args.kind, args.waiters, args.runs)
        if impl.name.startswith(ctx.family):
            native_seconds = seconds
        by_owner, functions = shares(stats)
        total = sum(by_owner.values()) or 1.0
        split = ", ".join(
            f"{owner} {by_owner[owner] / total:.0%}"
            for owner in (*OWNERS, "other")
            if by_owner.get(owner, 0) >= 0.005 * total
        )
        per_waiter = seconds / args.waiters * 1e6
        ratio = "" if seconds is native_seconds else f", {seconds / native_seconds:.2f} of its time"
        print(f"\n{impl.name}: {seconds * 1e3:.1f} ms ({per_waiter:.2f} µs per waiter{ratio})")
        print(f"  profiled time by library: {split}")
        for tottime, where in functions[: args.top]:
            print(f"  {tottime / total:5.1%}  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
