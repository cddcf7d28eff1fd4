"""Benchmark loopsync against its peers under asyncio, uvloop, trio and anyio.

Usage::

    python bench/run.py            # full run, a few minutes
    python bench/run.py --quick    # under a minute, smaller sizes
    python bench/run.py --smoke    # a few seconds: result checks only
    python bench/run.py --json results.json --plot scaling.png

Every run gets a fresh event loop and checks its own result; a failed check
is printed at once and makes the program exit with status 1.  Performance
targets are reported, never enforced.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

try:
    import loopsync
except ImportError:  # run from a checkout where loopsync is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    import loopsync

from _contexts import Context, available_contexts
from _impls import (
    PRIMITIVE_KINDS,
    BarrierImpl,
    PrimitiveImpl,
    SemaphoreImpl,
    barrier_impls,
    missing_notes,
    primitive_impls,
    semaphore_impls,
)
from _report import machine_info, plot, print_tables, print_targets, targets
from _results import PRIMITIVE_WORKLOADS, Results, Sample
from _workloads import (
    CANCEL_KINDS,
    STORM_KINDS,
    BarrierParam,
    ContendedParam,
    Outcome,
    WakeParam,
    barrier_rounds,
    condition_notify_all,
    condition_ping_pong,
    contended,
    event_set,
    import_time,
    memory_per_waiter,
    primitive_memory,
    primitive_storm,
    run_in_context,
    storm,
    uncontended,
    with_contended,
    with_uncontended,
)

Impl = SemaphoreImpl | BarrierImpl | PrimitiveImpl
Workload = Callable[..., Coroutine[Any, Any, Outcome]]


@dataclass(frozen=True)
class Settings:
    """Sizes and repetitions of one mode."""

    mode: str
    reps: int
    """Timed repetitions of each implementation, interleaved."""
    warmup: bool
    """Run each implementation once, checked but not timed, before the timed runs."""
    uncontended_pairs: int
    contended_tasks: int
    contended_ops: int
    """Acquisitions per task in the contended hand-off."""
    storm_sizes: tuple[int, ...]
    storm_reps: tuple[int, ...]
    """Timed repetitions at each storm size."""
    storm_budget: float
    """Skip a storm size for an implementation whose run there is projected to
    take longer than this many seconds (from its growth at smaller sizes)."""
    barrier_parties: tuple[int, ...]
    barrier_waits: int
    """Waits per run; a run has ``barrier_waits // parties`` rounds."""
    memory_waiters: int
    memory_reps: int
    import_reps: int
    event_waiters: tuple[int, ...]
    event_reps: tuple[int, ...]
    """Timed repetitions at each number of waiters of an event."""
    condition_waiters: tuple[int, ...]
    condition_reps: tuple[int, ...]
    wakeups: int
    """Tasks woken per run of a wake-up workload: ``max(1, wakeups // N)``
    rounds of N waiters (one round at the largest sizes)."""
    ping_pong_exchanges: int
    give_up_after: float
    """Seconds after which a run that has not finished counts as a failed check."""


MODES = {
    "full": Settings(
        mode="full",
        reps=5,
        warmup=True,
        uncontended_pairs=20_000,
        contended_tasks=100,
        contended_ops=100,
        storm_sizes=(1_000, 10_000, 50_000),
        storm_reps=(5, 3, 3),
        storm_budget=2.0,
        barrier_parties=(2, 10, 100),
        barrier_waits=8_000,
        memory_waiters=1_000,
        memory_reps=3,
        import_reps=9,
        event_waiters=(10, 1_000, 100_000),
        event_reps=(5, 5, 3),
        condition_waiters=(10, 1_000, 10_000),
        condition_reps=(5, 5, 3),
        wakeups=20_000,
        ping_pong_exchanges=5_000,
        give_up_after=120.0,
    ),
    "quick": Settings(
        mode="quick",
        reps=3,
        warmup=True,
        uncontended_pairs=5_000,
        contended_tasks=100,
        contended_ops=20,
        storm_sizes=(200, 1_000, 5_000),
        storm_reps=(3, 2, 1),
        storm_budget=math.inf,
        barrier_parties=(2, 10, 100),
        barrier_waits=3_000,
        memory_waiters=500,
        memory_reps=2,
        import_reps=5,
        event_waiters=(10, 1_000, 100_000),
        event_reps=(3, 3, 1),
        condition_waiters=(10, 1_000),
        condition_reps=(3, 3),
        wakeups=5_000,
        ping_pong_exchanges=2_000,
        give_up_after=60.0,
    ),
    "smoke": Settings(
        mode="smoke",
        reps=1,
        warmup=False,
        uncontended_pairs=100,
        contended_tasks=20,
        contended_ops=5,
        storm_sizes=(20, 100),
        storm_reps=(1, 1),
        storm_budget=math.inf,
        barrier_parties=(2, 10, 100),
        barrier_waits=300,
        memory_waiters=20,
        memory_reps=1,
        import_reps=1,
        event_waiters=(10, 100),
        event_reps=(1, 1),
        condition_waiters=(10, 100),
        condition_reps=(1, 1),
        wakeups=200,
        ping_pong_exchanges=50,
        give_up_after=20.0,
    ),
}

SUPERLINEAR = 1.3
"""A growth exponent from which a run over the storm budget is skipped."""

WORKLOADS = (
    "uncontended",
    "contended",
    "storms",
    "barrier",
    "memory",
    "import",
    *PRIMITIVE_WORKLOADS.values(),
)
"""What --only selects: the semaphore and barrier workloads one by one, and
then every workload of one primitive (lock, limiter, event, condition)."""
TITLES = {
    "uncontended": "Uncontended async with, ns per acquire/release pair",
    "contended": "Contended hand-off, 100 tasks, acquisitions per second",
    **{f"storm/{kind}": f"Storm {kind}, time until all finished" for kind in STORM_KINDS},
    "barrier": "Barrier, time per round",
    "memory": "Memory per blocked waiter, task included",
    "import": "Import time in a new interpreter (python -X importtime)",
    "lock/uncontended": "Lock, uncontended async with, ns per acquire/release pair",
    "lock/contended": "Lock, contended hand-off, 100 tasks, acquisitions per second",
    "limiter/uncontended": "CapacityLimiter, uncontended async with, ns per acquire/release pair",
    "event/set": "Event, one set() waking N waiters, time until all resumed",
    "condition/notify-all": (
        "Condition, one notify_all() waking N waiters, time until all hold the lock again"
    ),
    "condition/ping-pong": "Condition, producer/consumer ping-pong, time per item",
    **{
        f"{group}/storm/{kind}": f"{primitive} storm {kind}, time until all cancelled finished"
        for primitive, group in PRIMITIVE_WORKLOADS.items()
        for kind in CANCEL_KINDS
    },
    **{
        f"{group}/memory": f"{primitive}, memory per blocked waiter, task included"
        for primitive, group in PRIMITIVE_WORKLOADS.items()
    },
}
PLOT_ROWS = (
    *((f"storm/{kind}", f"{kind}\ns, all finished", "waiters") for kind in STORM_KINDS),
    ("barrier", "barrier\ns per round", "parties"),
    *(
        (
            f"{group}/storm/cancel-reverse",
            f"{primitive}\ncancel-reverse\ns, all finished",
            "waiters",
        )
        for primitive, group in PRIMITIVE_WORKLOADS.items()
    ),
    ("event/set", "Event.set()\ns, all resumed", "waiters"),
    ("condition/notify-all", "notify_all()\ns, all resumed", "waiters"),
)
"""What --plot draws, the rows that were run: (workload, y-axis label, x-axis label)."""


class Bench:
    """Runs the workloads, interleaving implementations, and collects the samples."""

    def __init__(self, settings: Settings, contexts: list[Context], verbose: bool) -> None:
        self.settings = settings
        self.contexts = contexts
        self.verbose = verbose
        self.results = Results()
        self.runs = 0

    def _progress(self, text: str) -> None:
        """Print a progress line to stderr unless quiet."""
        if self.verbose:
            print(text, file=sys.stderr, flush=True)

    def measure(
        self,
        workload: str,
        fn: Workload,
        impls: Sequence[Impl],
        params: Sequence[tuple[str, float, object]],
        reps: Sequence[int],
        unit: str,
        higher_is_better: bool = False,
        budget: float = math.inf,
    ) -> None:
        """Run *fn* for every context, parameter and implementation.

        Within a context, each timed repetition runs every implementation once,
        in turn (A B C A B C ...), so that drift in the machine's speed affects
        them alike.  A warm-up round at the first parameter comes first.
        """
        for ctx in self.contexts:
            usable = [i for i in impls if i.family in (None, ctx.family)]
            started = time.perf_counter()
            if self.settings.warmup:
                label, x, param = params[0]
                for impl in usable:
                    self._one(workload, fn, ctx, impl, label, x, param, -1, unit, higher_is_better)
            for (label, x, param), rep_count in zip(params, reps, strict=True):
                skip = {
                    impl.name: self._projection(workload, ctx, impl, x, budget) for impl in usable
                }
                # An implementation whose run took over twice the budget, though
                # its projection let it run, shows its growth in that one run.
                run_once: set[str] = set()
                for rep in range(rep_count):
                    for impl in usable:
                        if skip[impl.name]:
                            if rep == 0:
                                self._skip(workload, ctx, impl, label, x, unit, skip[impl.name])
                            continue
                        if impl.name in run_once:
                            continue
                        wall = self._one(
                            workload, fn, ctx, impl, label, x, param, rep, unit, higher_is_better
                        )
                        if wall > 2 * budget:
                            run_once.add(impl.name)
            self._progress(
                f"  {workload:<22} {ctx.name:<14} {time.perf_counter() - started:6.1f} s"
            )

    def _one(
        self,
        workload: str,
        fn: Workload,
        ctx: Context,
        impl: Impl,
        label: str,
        x: float,
        param: object,
        rep: int,
        unit: str,
        higher_is_better: bool,
    ) -> float:
        """Run one implementation once, record the sample and return the run's
        wall time in seconds."""
        started = time.perf_counter()
        outcome = run_in_context(
            ctx,
            fn,
            impl,
            param,
            self.settings.give_up_after,
            label=f"{workload} {label} | {ctx.name} | {impl.name}",
        )
        self.runs += 1
        wall = time.perf_counter() - started
        self.results.add(
            Sample(
                workload=workload,
                param=label,
                x=x,
                context=ctx.name,
                impl=impl.name,
                kind=impl.kind,
                rep=rep,
                value=outcome.value,
                unit=unit,
                higher_is_better=higher_is_better,
                wall=wall,
                errors=outcome.errors,
            )
        )
        return wall

    def _skip(
        self, workload: str, ctx: Context, impl: Impl, label: str, x: float, unit: str, why: str
    ) -> None:
        """Record that *impl* is not run at this size, and why."""
        self._progress(f"    skipped {impl.name} at {label} in {ctx.name}: {why}")
        self.results.add(
            Sample(
                workload=workload,
                param=label,
                x=x,
                context=ctx.name,
                impl=impl.name,
                kind=impl.kind,
                rep=0,
                value=math.nan,
                unit=unit,
                higher_is_better=False,
                wall=0.0,
                skipped=why,
            )
        )

    def _projection(self, workload: str, ctx: Context, impl: Impl, x: float, budget: float) -> str:
        """Say why *impl* should not be run at size *x*, or return '' to run it."""
        # A run's wall time is split into its timed part, projected with the
        # growth exponent that part showed between the two sizes before *x*
        # (linear if there is only one), and the rest (spawning, checking),
        # projected as linear.  A run projected over the budget is skipped if
        # it grows faster than linearly (so the linear ones are all run, on a
        # slow machine too), or if it is projected over four times the budget.
        if math.isinf(budget):
            return ""
        earlier: list[tuple[float, float, float]] = []
        for label, size in self.results.params(workload):
            if size >= x:
                continue
            series = self.results.series(workload, label, ctx.name, impl.name)
            if series.skipped:
                return f"skipped at a smaller size ({label})"
            runs = sorted((s.value, s.wall) for s in series.samples if s.rep >= 0 and s.ok)
            if runs:
                earlier.append((size, *runs[len(runs) // 2]))
        if not earlier:
            return ""
        exponent = 1.0
        if len(earlier) >= 2:
            (x0, t0, _), (x1, t1, _) = earlier[-2], earlier[-1]
            if t0 > 0 and t1 > 0:
                exponent = min(max(math.log(t1 / t0) / math.log(x1 / x0), 1.0), 3.0)
        size, timed, wall = earlier[-1]
        scale = x / size
        projected = max(wall - timed, 0.0) * scale + timed * scale**exponent
        if projected <= budget or (exponent < SUPERLINEAR and projected <= 4 * budget):
            return ""
        return f"projected {projected:.1f} s per run (timed part growing as W^{exponent:.1f})"

    def run_all(self, selected: Sequence[str]) -> None:
        """Run the selected workloads, in the order of :data:`WORKLOADS`."""
        s = self.settings
        every_sem = semaphore_impls()
        sems = [i for i in every_sem if not i.reference]
        plain = [i for i in sems if not i.bounded]
        if "uncontended" in selected:
            self.measure(
                "uncontended",
                uncontended,
                sems,
                [(f"{s.uncontended_pairs} pairs", s.uncontended_pairs, s.uncontended_pairs)],
                [s.reps],
                "ns",
            )
        if "contended" in selected:
            contended_params = [
                (
                    f"Semaphore({permits})",
                    permits,
                    ContendedParam(permits, s.contended_tasks, s.contended_ops),
                )
                for permits in (1, 10)
            ]
            self.measure(
                "contended",
                contended,
                sems,
                contended_params,
                [s.reps] * 2,
                "ops/s",
                higher_is_better=True,
            )
        if "storms" in selected:
            for kind in STORM_KINDS:
                self.measure(
                    f"storm/{kind}",
                    storm,
                    [i for i in every_sem if not i.bounded and not i.differs_only_when_free],
                    [(f"W={w}", w, (kind, w)) for w in s.storm_sizes],
                    s.storm_reps,
                    "s",
                    budget=s.storm_budget,
                )
        if "barrier" in selected:
            self.measure(
                "barrier",
                barrier_rounds,
                barrier_impls(),
                [
                    (f"{p} parties", p, BarrierParam(p, max(s.barrier_waits // p, 2)))
                    for p in s.barrier_parties
                ],
                [s.reps] * len(s.barrier_parties),
                "s",
            )
        if "memory" in selected:
            self.measure(
                "memory",
                memory_per_waiter,
                plain,
                [(f"W={s.memory_waiters}", s.memory_waiters, s.memory_waiters)],
                [s.memory_reps],
                "B",
            )
        if "import" in selected:
            self.measure_imports()
        for primitive in PRIMITIVE_KINDS:
            if PRIMITIVE_WORKLOADS[primitive] in selected:
                self.run_primitive(primitive)

    def run_primitive(self, primitive: str) -> None:
        """Run every workload of *primitive* (one of :data:`PRIMITIVE_KINDS`)."""
        s = self.settings
        group = PRIMITIVE_WORKLOADS[primitive]
        every = primitive_impls(primitive)
        peers = [i for i in every if not i.reference]
        blocking = [i for i in every if not i.differs_only_when_free]
        if primitive in ("Lock", "CapacityLimiter"):
            self.measure(
                f"{group}/uncontended",
                with_uncontended,
                peers,
                [(f"{s.uncontended_pairs} pairs", s.uncontended_pairs, s.uncontended_pairs)],
                [s.reps],
                "ns",
            )
        if primitive == "Lock":
            self.measure(
                f"{group}/contended",
                with_contended,
                peers,
                [("Lock", 1, ContendedParam(1, s.contended_tasks, s.contended_ops))],
                [s.reps],
                "ops/s",
                higher_is_better=True,
            )
        if primitive == "Event":
            self.measure(
                f"{group}/set",
                event_set,
                peers,
                [(f"N={n}", n, WakeParam(n, max(1, s.wakeups // n))) for n in s.event_waiters],
                s.event_reps,
                "s",
            )
        if primitive == "Condition":
            self.measure(
                f"{group}/notify-all",
                condition_notify_all,
                peers,
                [(f"N={n}", n, WakeParam(n, max(1, s.wakeups // n))) for n in s.condition_waiters],
                s.condition_reps,
                "s",
            )
            self.measure(
                f"{group}/ping-pong",
                condition_ping_pong,
                peers,
                [(f"{s.ping_pong_exchanges} items", 2, s.ping_pong_exchanges)],
                [s.reps],
                "s",
            )
        for kind in CANCEL_KINDS:
            self.measure(
                f"{group}/storm/{kind}",
                primitive_storm,
                blocking,
                [(f"W={w}", w, (kind, w)) for w in s.storm_sizes],
                s.storm_reps,
                "s",
                budget=s.storm_budget,
            )
        self.measure(
            f"{group}/memory",
            primitive_memory,
            [i for i in blocking if not i.reference],
            [(f"W={s.memory_waiters}", s.memory_waiters, s.memory_waiters)],
            [s.memory_reps],
            "B",
        )

    def measure_imports(self) -> None:
        """Cold ``import loopsync`` against ``import asyncio``, each in a new interpreter.

        Both read compiled bytecode, as an installed package does: the
        interpreters share a private bytecode cache, filled by the warm-up
        round, so that neither the source tree nor PYTHONDONTWRITEBYTECODE
        decides whether loopsync is compiled on every import.
        """
        with tempfile.TemporaryDirectory(prefix="loopsync-bench-pycache-") as cache:
            env = dict(os.environ)
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = cache
            src = str(Path(loopsync.__file__).resolve().parent.parent)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
            self._measure_imports(env)

    def _measure_imports(self, env: dict[str, str]) -> None:
        """Run the import rounds, interleaved, with *env*."""
        started = time.perf_counter()
        reps = self.settings.import_reps
        for rep in range(-1 if self.settings.warmup else 0, reps):
            for module in ("loopsync", "asyncio"):
                outcome = import_time(module, env)
                self.runs += 1
                self.results.add(
                    Sample(
                        workload="import",
                        param="cold",
                        x=0,
                        context="python",
                        impl=f"import {module}",
                        kind="module",
                        rep=rep,
                        value=outcome.value,
                        unit="ms",
                        higher_is_better=False,
                        wall=0.0,
                        errors=outcome.errors,
                    )
                )
        self._progress(f"  {'import':<22} {'python':<14} {time.perf_counter() - started:6.1f} s")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description="Benchmark loopsync against its peers; every run checks its result.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    mode.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, result checks only; one-line summary, non-zero exit on a failed check",
    )
    parser.add_argument("--json", metavar="PATH", help="write every sample and the machine info")
    parser.add_argument("--plot", metavar="PATH.png", help="draw the scaling curves (matplotlib)")
    parser.add_argument(
        "--only",
        metavar="W[,W...]",
        help=f"run only these workloads, of: {', '.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--contexts",
        metavar="C[,C...]",
        help="run only in these contexts, of: asyncio, uvloop, trio, anyio-asyncio, anyio-trio",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return parser.parse_args(argv)


def _pick(option: str | None, known: Sequence[str], what: str) -> list[str]:
    """Return the names chosen by a comma-separated *option*, or all of *known*."""
    if option is None:
        return list(known)
    chosen = [name.strip() for name in option.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return 1 if any result check failed, else 0."""
    args = _parse_args(argv)
    settings = MODES["smoke" if args.smoke else "quick" if args.quick else "full"]
    contexts, notes = available_contexts()
    names = _pick(args.contexts, [c.name for c in contexts], "context")
    contexts = [c for c in contexts if c.name in names]
    selected = _pick(args.only, WORKLOADS, "workload")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SystemExit("--plot needs matplotlib: pip install matplotlib") from None
    machine = machine_info(Path(loopsync.__file__).resolve().parent, loopsync.__version__)

    bench = Bench(settings, contexts, verbose=not (args.quiet or args.smoke))
    bench.results.notes = notes + missing_notes()
    # Everything imported so far lives until the end: keep it out of the
    # collection made before every run, which then only sees what runs left.
    gc.freeze()
    started = time.perf_counter()
    bench._progress(f"loopsync benchmark, {settings.mode} mode: {', '.join(names)}")
    bench.run_all(selected)
    elapsed = time.perf_counter() - started
    results = bench.results
    failures = results.failures()
    found = []

    if args.smoke:
        failed_checks = sum(len(s.errors) for s in failures)
        status = "OK" if not failures else f"FAILED ({failed_checks} failed checks)"
        skipped = "".join(f"; {note}" for note in results.notes)
        print(
            f"smoke {status}: {bench.runs} runs in {len(contexts)} contexts, "
            f"{len(failures)} failed, {elapsed:.1f} s{skipped}"
        )
    else:
        print()
        for note in results.notes:
            print(f"note: {note}")
        print_tables(results, {w: t for w, t in TITLES.items() if results.params(w)})
        found = targets(results)
        print_targets(found)
        print()
        if failures:
            print(f"RESULT CHECKS FAILED in {len(failures)} run(s):")
            for sample in failures:
                print(f"  {sample.workload} {sample.param} | {sample.context} | {sample.impl}")
                for error in sample.errors:
                    print(f"      {error}")
        else:
            print(f"All result checks passed ({bench.runs} runs, {elapsed:.0f} s).")

    if args.json:
        document = {
            "machine": machine,
            "settings": asdict(settings),
            "contexts": names,
            "workloads": selected,
            "elapsed_s": elapsed,
            "notes": results.notes,
            "samples": results.as_json(),
            "medians": list(results.medians()),
            "targets": [asdict(t) | {"passed": t.passed} for t in found],
            "failed_checks": [
                {
                    "workload": s.workload,
                    "param": s.param,
                    "context": s.context,
                    "impl": s.impl,
                    "errors": s.errors,
                }
                for s in failures
            ],
        }
        Path(args.json).write_text(json.dumps(document, indent=1, default=str) + "\n")
    if args.plot:
        plot(results, args.plot, PLOT_ROWS)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
