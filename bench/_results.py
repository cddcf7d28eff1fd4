"""Samples, medians and the loopsync/peer ratios computed from them."""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

__all__ = [
    "PRIMITIVE_WORKLOADS",
    "YARDSTICK",
    "Results",
    "Sample",
    "Series",
    "is_loopsync",
    "loopsync_counterpart",
]

YARDSTICK = "futures only (yardstick)"
"""The row that shows what a storm costs its context, whatever the semaphore."""

PRIMITIVE_WORKLOADS = {
    "Lock": "lock",
    "CapacityLimiter": "limiter",
    "Event": "event",
    "Condition": "condition",
}
"""Each primitive besides semaphores and barriers, and the name that selects
its workloads (``--only``), which is also the prefix of their names."""


def loopsync_counterpart(kind: str) -> str:
    """The loopsync row that rows of *kind* are compared with."""
    return "import loopsync" if kind == "module" else f"loopsync.{kind}"


def is_loopsync(impl: str) -> bool:
    """True for a row that measures loopsync itself."""
    return impl.startswith("loopsync.") or impl == "import loopsync"


@dataclass
class Sample:
    """One run of one implementation, as measured and checked."""

    workload: str
    """For example ``"uncontended"`` or ``"storm/cancel-reverse"``."""
    param: str
    """The parameter as shown in tables, for example ``"W=10000"``."""
    x: float
    """The parameter as a number, for plots and growth factors."""
    context: str
    impl: str
    kind: str
    """What loopsync primitive this one is compared with."""
    rep: int
    """Repetition number; -1 for a warm-up run, which is checked but not used."""
    value: float
    unit: str
    higher_is_better: bool
    wall: float
    """Seconds the whole run took, set-up included."""
    errors: list[str] = field(default_factory=list)
    skipped: str = ""
    """Why the run was not made (too slow to be worth it), if it was not."""

    @property
    def ok(self) -> bool:
        """True if the run was made and passed every check."""
        return not self.errors and not self.skipped and not math.isnan(self.value)

    @property
    def failed(self) -> bool:
        """True if the run was made and failed a check."""
        return bool(self.errors)


@dataclass
class Series:
    """The timed samples of one implementation at one parameter in one context."""

    samples: list[Sample]

    @property
    def failed(self) -> bool:
        """True if any run (warm-up included) failed a check."""
        return any(s.failed for s in self.samples)

    @property
    def skipped(self) -> str:
        """Why the runs were skipped, or '' if they were made."""
        return next((s.skipped for s in self.samples if s.skipped), "")

    @property
    def median(self) -> float | None:
        """The median of the timed runs, or None if any failed or none were made."""
        if self.failed:
            return None
        values = [s.value for s in self.samples if s.rep >= 0 and s.ok]
        return statistics.median(values) if values else None

    def by_rep(self) -> dict[int, float]:
        """The value of each timed repetition that passed its checks."""
        return {s.rep: s.value for s in self.samples if s.rep >= 0 and s.ok}


class Results:
    """Every sample of a benchmark run, with the look-ups the report needs."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.notes: list[str] = []
        self._series: dict[tuple[str, str, str, str], list[Sample]] = {}

    def add(self, sample: Sample) -> None:
        """Record *sample*; a failed check is printed at once, to stderr."""
        self.samples.append(sample)
        key = (sample.workload, sample.param, sample.context, sample.impl)
        self._series.setdefault(key, []).append(sample)
        if sample.failed:
            where = f"{sample.workload} {sample.param} | {sample.context} | {sample.impl}"
            if sample.rep < 0:
                where += " (warm-up)"
            for error in sample.errors:
                print(f"CHECK FAILED: {where}: {error}", file=sys.stderr, flush=True)

    def failures(self) -> list[Sample]:
        """Every run that failed a check."""
        return [s for s in self.samples if s.failed]

    def series(self, workload: str, param: str, context: str, impl: str) -> Series:
        """The samples of one implementation at one parameter in one context."""
        return Series(list(self._series.get((workload, param, context, impl), ())))

    def params(self, workload: str) -> list[tuple[str, float]]:
        """The parameters run for *workload*, in the order they were run."""
        seen: dict[str, float] = {}
        for s in self.samples:
            if s.workload == workload and s.rep >= 0:
                seen.setdefault(s.param, s.x)
        return list(seen.items())

    def impls(self, workload: str) -> list[tuple[str, str]]:
        """(implementation, kind) pairs run for *workload*, in order of first run."""
        seen: dict[str, str] = {}
        for s in self.samples:
            if s.workload == workload:
                seen.setdefault(s.impl, s.kind)
        return list(seen.items())

    def contexts(self, workload: str) -> list[str]:
        """The contexts *workload* was run in, in order."""
        return list(dict.fromkeys(s.context for s in self.samples if s.workload == workload))

    def ratio(self, workload: str, param: str, context: str, mine: str, peer: str) -> float | None:
        """*mine*'s cost over *peer*'s, paired run by run; below 1, *mine* is better.

        Each timed run of the peer is paired with the run of *mine* of the same
        repetition, made next to it in this process; the ratio is the median
        of the per-pair ratios.  For rates (ops/s) the cost is the inverse.
        None if either failed a check or no pair of runs was made.
        """
        ours = self.series(workload, param, context, mine)
        theirs = self.series(workload, param, context, peer)
        if ours.failed or theirs.failed or not ours.samples:
            return None
        a, b = ours.by_rep(), theirs.by_rep()
        higher_is_better = ours.samples[0].higher_is_better
        pairs = []
        for rep in sorted(a.keys() & b.keys()):
            mine_value, peer_value = a[rep], b[rep]
            if higher_is_better:
                mine_value, peer_value = peer_value, mine_value
            if peer_value > 0:
                pairs.append(mine_value / peer_value)
        return statistics.median(pairs) if pairs else None

    def loopsync_ratio(self, workload: str, param: str, context: str, peer: str) -> float | None:
        """loopsync's cost over *peer*'s, against the loopsync primitive of the same kind.

        The kind is read from *peer*'s samples of *workload*: the yardstick's
        row has one name and a kind per primitive.
        """
        kind = next((s.kind for s in self.samples if s.impl == peer and s.workload == workload), "")
        return self.ratio(workload, param, context, loopsync_counterpart(kind), peer)

    def medians(self) -> Iterable[dict[str, object]]:
        """One record per (workload, parameter, context, implementation)."""
        keys = dict.fromkeys(
            (s.workload, s.param, s.x, s.context, s.impl, s.unit) for s in self.samples
        )
        for workload, param, x, context, impl, unit in keys:
            series = self.series(workload, param, context, impl)
            yield {
                "workload": workload,
                "param": param,
                "x": x,
                "context": context,
                "impl": impl,
                "unit": unit,
                "median": series.median,
                "failed": series.failed,
                "skipped": series.skipped,
                "ratio_loopsync_over_this": None
                if is_loopsync(impl)
                else self.loopsync_ratio(workload, param, context, impl),
            }

    def as_json(self) -> list[dict[str, object]]:
        """Every sample, as plain data."""
        return [asdict(s) | {"ok": s.ok} for s in self.samples]
