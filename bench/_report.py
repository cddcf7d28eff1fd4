"""Tables, targets, machine information and plots for a benchmark run."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import itertools
import math
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _results import PRIMITIVE_WORKLOADS, YARDSTICK, Results, is_loopsync

__all__ = [
    "Target",
    "format_value",
    "machine_info",
    "plot",
    "print_tables",
    "print_targets",
    "targets",
]

ASYNCIO_FAMILY = ("asyncio", "uvloop", "anyio-asyncio")
IMPORT_TARGET = 0.5
"""``import loopsync`` counts as "a small fraction" of ``import asyncio`` at
most this share of its cold time."""


def format_value(value: float | None, unit: str) -> str:
    """Format a median for a table cell."""
    if value is None or math.isnan(value):
        return "-"
    if unit == "s":
        for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if value >= scale:
                return f"{value / scale:.3g} {name}"
        return f"{value * 1e9:.3g} ns"
    if unit == "ops/s":
        return f"{value / 1000:.1f} k/s"
    if unit == "ns":
        return f"{value:.0f} ns"
    if unit == "B":
        return f"{value:.0f} B"
    return f"{value:.3g} {unit}"


def _table(
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    cell: Callable[[str, str], str],
) -> str:
    """Lay out a table with one row per implementation and one column per context."""
    body = [[row, *(cell(row, column) for column in columns)] for row in rows]
    header = ["", *columns]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        """Lay out one row."""
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "-" * len(line(header))
    return "\n".join([title, rule, line(header), rule, *(line(r) for r in body), ""])


def _cell(results: Results, workload: str, param: str, context: str, impl: str) -> str:
    """Format one table cell: the median, and the loopsync/peer ratio for a peer."""
    series = results.series(workload, param, context, impl)
    if not series.samples:
        return ""
    if series.failed:
        return "CHECK FAILED"
    if series.skipped:
        return "skipped"
    text = format_value(series.median, series.samples[0].unit)
    if not is_loopsync(impl):
        ratio = results.loopsync_ratio(workload, param, context, impl)
        text += f" [{ratio:.2f}]" if ratio is not None else " [ -  ]"
    return text


LEGEND = (
    "Cells: median of the timed runs; [r] = loopsync's cost / this peer's, paired run by\n"
    "run in this process (below 1: loopsync is faster or leaner).  '' = not run in this\n"
    "context; 'skipped' = projected to exceed the per-run time budget."
)


def print_tables(results: Results, titles: dict[str, str]) -> None:
    """Print one table per workload and parameter, then the growth of the storms."""
    print(LEGEND)
    print()
    for workload, title in titles.items():
        impls = [impl for impl, _ in results.impls(workload)]
        contexts = results.contexts(workload)
        for param, _ in results.params(workload):

            def cell(impl: str, context: str, workload: str = workload, param: str = param) -> str:
                """Format the cell of one implementation in one context."""
                return _cell(results, workload, param, context, impl)

            print(_table(f"{title}, {param}", impls, contexts, cell))
        if _is_storm(workload) and len(results.params(workload)) > 1:
            print(_growth_table(results, workload, f"{title}: growth between sizes"))


def _is_storm(workload: str) -> bool:
    """True for a storm, of semaphores (``storm/...``) or of another primitive
    (``lock/storm/...``)."""
    return workload.startswith("storm/") or "/storm/" in workload


def growth(results: Results, workload: str, context: str, impl: str) -> list[float | None]:
    """Median time at each size over the median at the size before it."""
    medians = [
        results.series(workload, param, context, impl).median
        for param, _ in results.params(workload)
    ]
    return [
        b / a if a is not None and b is not None and a > 0 else None
        for a, b in itertools.pairwise(medians)
    ]


def _growth_table(results: Results, workload: str, title: str) -> str:
    """Lay out the growth factors of a storm between successive sizes."""
    params = results.params(workload)
    steps = [f"{int(a)}→{int(b)}" for (_, a), (_, b) in itertools.pairwise(params)]
    impls = [impl for impl, _ in results.impls(workload)]

    def cell(impl: str, context: str) -> str:
        """Format the cell of one implementation in one context."""
        if not results.series(workload, params[0][0], context, impl).samples:
            return ""
        factors = growth(results, workload, context, impl)
        return " ".join(f"x{f:.1f}" if f is not None else "x-" for f in factors)

    return _table(
        f"{title} ({', '.join(steps)} waiters; linear = the size ratio)",
        impls,
        results.contexts(workload),
        cell,
    )


@dataclass(frozen=True)
class Target:
    """One line of the Targets section."""

    label: str
    value: float | None
    limit: float
    why_missing: str = ""
    context_note: str = ""
    """What the context alone makes of the number, if that is measured."""

    @property
    def passed(self) -> bool:
        """True if the number was measured and is within the limit."""
        return self.value is not None and self.value <= self.limit

    def __str__(self) -> str:
        """Format the target as one line of the Targets section."""
        verdict = "PASS" if self.passed else "FAIL"
        value = f"{self.value:.2f}" if self.value is not None else "n/a"
        note = f"  ({self.why_missing})" if self.value is None and self.why_missing else ""
        if self.context_note:
            note += f"  ({self.context_note})"
        return f"{verdict}  {self.label} = {value} (target ≤ {self.limit:g}){note}"


def _why_missing(results: Results, workload: str, param: str, context: str, *impls: str) -> str:
    """Explain why a ratio could not be computed."""
    for impl in impls:
        series = results.series(workload, param, context, impl)
        if not series.samples:
            return f"{impl} not run"
        if series.failed:
            return f"{impl} failed a check"
        if series.skipped:
            return f"{impl} skipped: {series.skipped}"
    return "no paired runs"


def _ratio_target(
    results: Results,
    label: str,
    workload: str,
    param: str,
    context: str,
    peer: str,
    limit: float,
    mine: str = "",
) -> Target:
    """Build a target from the ratio of loopsync's primitive (*mine*, by
    default its Semaphore or Barrier) to *peer*."""
    if not mine:
        mine = "loopsync.Barrier" if peer.endswith("Barrier") else "loopsync.Semaphore"
    value = results.ratio(workload, param, context, mine, peer)
    why = "" if value is not None else _why_missing(results, workload, param, context, mine, peer)
    return Target(f"{label}: {mine}/{peer}", value, limit, why)


GROWTH_LIMIT = 6.0
"""The most a storm may cost more when its size grows 5x (scaled for other steps)."""


def _uncontended_targets(results: Results) -> list[Target]:
    """loopsync against the native semaphore of asyncio, uvloop and trio."""
    native = {
        "asyncio": "asyncio.Semaphore",
        "uvloop": "asyncio.Semaphore",
        "trio": "trio.Semaphore",
    }
    return [
        _ratio_target(
            results, f"uncontended, {context}", "uncontended", param, context, native[context], 1.0
        )
        for param, _ in results.params("uncontended")
        for context in results.contexts("uncontended")
        if context in native
    ]


def _contended_targets(results: Results) -> list[Target]:
    """loopsync against the fastest peer of each context."""
    found = []
    peers = [
        impl
        for impl, kind in results.impls("contended")
        if kind == "Semaphore" and not is_loopsync(impl)
    ]
    for param, _ in results.params("contended"):
        for context in results.contexts("contended"):
            rates = {
                peer: results.series("contended", param, context, peer).median for peer in peers
            }
            rated = {peer: rate for peer, rate in rates.items() if rate is not None}
            if not rated:
                found.append(Target(f"contended {param}, {context}", None, 1.0, "no peer rated"))
                continue
            fastest = max(rated, key=lambda peer: rated[peer])
            label = f"contended {param}, {context} (fastest peer)"
            found.append(_ratio_target(results, label, "contended", param, context, fastest, 1.0))
    return found


def _storm_targets(results: Results) -> list[Target]:
    """Linear growth of every storm, and cancelling in reverse against asyncio.Semaphore."""
    found = []
    storms = [w for w in dict.fromkeys(s.workload for s in results.samples) if w[:6] == "storm/"]
    for workload in storms:
        params = results.params(workload)
        if len(params) < 2:
            continue
        (_, small), (_, large) = params[-2], params[-1]
        for context in results.contexts(workload):
            factor = growth(results, workload, context, "loopsync.Semaphore")[-1]
            # Memory caches make even the yardstick (under trio, trio's own
            # semaphore, linear too) grow faster than linearly, by a different
            # amount from one run to the next.
            reference = YARDSTICK if context in ASYNCIO_FAMILY else "trio.Semaphore"
            floor = growth(results, workload, context, reference)[-1]
            found.append(
                Target(
                    f"{workload[6:]} growth {int(small)}→{int(large)}, {context}: "
                    "loopsync.Semaphore",
                    factor,
                    GROWTH_LIMIT * (large / small) / 5,
                    "" if factor is not None else "loopsync.Semaphore failed or was skipped",
                    f"{reference}: {floor:.2f}" if floor is not None else "",
                )
            )
    reverse = "storm/cancel-reverse"
    sizes = results.params(reverse)
    if sizes:
        at = next((param for param, x in sizes if x == 10_000), sizes[-1][0])
        for context in results.contexts(reverse):
            if context in ASYNCIO_FAMILY:
                label = f"cancel-reverse {at}, {context}"
                target = _ratio_target(
                    results, label, reverse, at, context, "asyncio.Semaphore", 0.2
                )
                floor = results.ratio(reverse, at, context, YARDSTICK, "asyncio.Semaphore")
                if floor is not None:
                    note = f"{YARDSTICK}: {floor:.2f}, the cost of the context itself"
                    target = dataclasses.replace(target, context_note=note)
                found.append(target)
    return found


def _barrier_targets(results: Results) -> list[Target]:
    """loopsync against asyncio.Barrier (10 and 100 parties) and aiologic.Barrier."""
    found = []
    for param, parties in results.params("barrier"):
        for context in results.contexts("barrier"):
            label = f"barrier {param}, {context}"
            if context in ASYNCIO_FAMILY and parties >= 10:
                found.append(
                    _ratio_target(results, label, "barrier", param, context, "asyncio.Barrier", 0.6)
                )
            found.append(
                _ratio_target(results, label, "barrier", param, context, "aiologic.Barrier", 1.0)
            )
    return found


def _memory_targets(results: Results) -> list[Target]:
    """loopsync's bytes per blocked waiter against asyncio.Semaphore's."""
    return [
        _ratio_target(
            results,
            f"memory per blocked waiter, {context}",
            "memory",
            param,
            context,
            "asyncio.Semaphore",
            1.0,
        )
        for param, _ in results.params("memory")
        for context in results.contexts("memory")
        if context in ASYNCIO_FAMILY
    ]


def _import_targets(results: Results) -> list[Target]:
    """Cold ``import loopsync`` against ``import asyncio``."""
    found = []
    for param, _ in results.params("import"):
        value = results.ratio("import", param, "python", "import loopsync", "import asyncio")
        found.append(
            Target(
                "cold import time: import loopsync / import asyncio",
                value,
                IMPORT_TARGET,
                "" if value is not None else "an import failed a check",
            )
        )
    return found


def _own(primitive: str, context: str) -> str:
    """The primitive of the library that runs *context*: asyncio's under the
    asyncio family, trio's under the trio family.  asyncio has no capacity
    limiter: there, anyio's."""
    if context in ASYNCIO_FAMILY:
        return "anyio.CapacityLimiter" if primitive == "CapacityLimiter" else f"asyncio.{primitive}"
    return f"trio.{primitive}"


ANYIO_CONTEXTS = ("anyio-asyncio", "anyio-trio")
LIMITER_UNDER_ASYNCIO = 0.5
"""loopsync's CapacityLimiter, uncontended under plain asyncio (which has none
of its own), against anyio's."""


def _primitive_uncontended_targets(results: Results) -> list[Target]:
    """loopsync's Lock and CapacityLimiter against the library's own (under
    anyio, anyio's)."""
    # Under anyio the lock's line also shows the ratio to
    # anyio.Lock(fast_acquire), which, unlike anyio's default and loopsync's
    # under trio, does not yield when the lock is free.
    found = []
    for primitive in ("Lock", "CapacityLimiter"):
        mine = f"loopsync.{primitive}"
        workload = f"{PRIMITIVE_WORKLOADS[primitive]}/uncontended"
        for param, _ in results.params(workload):
            for context in results.contexts(workload):
                limit = 1.0
                if context in ANYIO_CONTEXTS:
                    peer = f"anyio.{primitive}"
                elif primitive == "CapacityLimiter" and context in ASYNCIO_FAMILY:
                    peer, limit = "anyio.CapacityLimiter", LIMITER_UNDER_ASYNCIO
                else:
                    peer = _own(primitive, context)
                target = _ratio_target(
                    results,
                    f"{primitive} uncontended, {context}",
                    workload,
                    param,
                    context,
                    peer,
                    limit,
                    mine,
                )
                fast = "anyio.Lock(fast_acquire)"
                ratio = results.ratio(workload, param, context, mine, fast)
                if context in ANYIO_CONTEXTS and ratio is not None:
                    target = dataclasses.replace(target, context_note=f"{mine}/{fast}: {ratio:.2f}")
                found.append(target)
    return found


def _lock_contended_targets(results: Results) -> list[Target]:
    """loopsync's Lock against the fastest peer of each context."""
    found = []
    workload = "lock/contended"
    peers = [
        impl for impl, _ in results.impls(workload) if not is_loopsync(impl) and impl != YARDSTICK
    ]
    for param, _ in results.params(workload):
        for context in results.contexts(workload):
            rates = {peer: results.series(workload, param, context, peer).median for peer in peers}
            rated = {peer: rate for peer, rate in rates.items() if rate is not None}
            label = f"Lock contended, {context}"
            if not rated:
                found.append(Target(label, None, 1.0, "no peer rated"))
                continue
            fastest = max(rated, key=lambda peer: rated[peer])
            found.append(
                _ratio_target(
                    results,
                    f"{label} (fastest peer)",
                    workload,
                    param,
                    context,
                    fastest,
                    1.0,
                    "loopsync.Lock",
                )
            )
    return found


def _wake_up_targets(results: Results) -> list[Target]:
    """loopsync's Event and Condition against asyncio's, or trio's."""
    found = []
    for primitive, workload in (
        ("Event", "event/set"),
        ("Condition", "condition/notify-all"),
        ("Condition", "condition/ping-pong"),
    ):
        for param, _ in results.params(workload):
            for context in results.contexts(workload):
                found.append(
                    _ratio_target(
                        results,
                        f"{workload} {param}, {context}",
                        workload,
                        param,
                        context,
                        f"asyncio.{primitive}"
                        if context in ASYNCIO_FAMILY
                        else f"trio.{primitive}",
                        1.0,
                        f"loopsync.{primitive}",
                    )
                )
    return found


def _primitive_storm_targets(results: Results) -> list[Target]:
    """Linear growth of every cancellation storm of a lock, limiter, event or
    condition; each line also shows the growth of the library's own, and
    loopsync's ratio to it at the largest size."""
    found = []
    for primitive, group in PRIMITIVE_WORKLOADS.items():
        mine = f"loopsync.{primitive}"
        prefix = f"{group}/storm/"
        storms = [
            w for w in dict.fromkeys(s.workload for s in results.samples) if w.startswith(prefix)
        ]
        for workload in storms:
            params = results.params(workload)
            if len(params) < 2:
                continue
            (_, small), (large_param, large) = params[-2], params[-1]
            for context in results.contexts(workload):
                factor = growth(results, workload, context, mine)[-1]
                notes = []
                own = _own(primitive, context)
                own_growth = growth(results, workload, context, own)[-1]
                ratio = results.ratio(workload, large_param, context, mine, own)
                if own_growth is not None or ratio is not None:
                    grew = f"{own_growth:.1f}" if own_growth is not None else "-"
                    versus = f"{ratio:.2f}" if ratio is not None else "-"
                    notes.append(f"{own}: {grew}; {mine}/{own} at {large_param}: {versus}")
                if context in ASYNCIO_FAMILY:
                    floor = growth(results, workload, context, YARDSTICK)[-1]
                    if floor is not None:
                        notes.append(f"{YARDSTICK}: {floor:.1f}")
                found.append(
                    Target(
                        f"{primitive} {workload[len(prefix) :]} growth "
                        f"{int(small)}→{int(large)}, {context}: {mine}",
                        factor,
                        GROWTH_LIMIT * (large / small) / 5,
                        "" if factor is not None else f"{mine} failed or was skipped",
                        "; ".join(notes),
                    )
                )
    return found


def _primitive_memory_targets(results: Results) -> list[Target]:
    """loopsync's bytes per blocked waiter against the library's own."""
    found = []
    for primitive, group in PRIMITIVE_WORKLOADS.items():
        workload = f"{group}/memory"
        for param, _ in results.params(workload):
            for context in results.contexts(workload):
                found.append(
                    _ratio_target(
                        results,
                        f"{primitive} memory per blocked waiter, {context}",
                        workload,
                        param,
                        context,
                        _own(primitive, context),
                        1.0,
                        f"loopsync.{primitive}",
                    )
                )
    return found


def targets(results: Results) -> list[Target]:
    """Check the performance targets against this run's ratios (lower is better)."""
    return [
        *_uncontended_targets(results),
        *_contended_targets(results),
        *_storm_targets(results),
        *_barrier_targets(results),
        *_memory_targets(results),
        *_import_targets(results),
        *_primitive_uncontended_targets(results),
        *_lock_contended_targets(results),
        *_wake_up_targets(results),
        *_primitive_storm_targets(results),
        *_primitive_memory_targets(results),
    ]


def print_targets(found: list[Target]) -> None:
    """Print the Targets section."""
    print("Targets (ratios loopsync/peer from this run; lower is better)")
    print("-" * 60)
    for target in found:
        print(target)
    passed = sum(t.passed for t in found)
    print(f"{passed} of {len(found)} targets met")


def _cpu_model() -> str:
    """Return the CPU model name, from /proc/cpuinfo where there is one."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git_revision(where: Path) -> str | None:
    """Return ``git describe`` for the loopsync checkout, if it is one."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(where), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return proc.stdout.strip() or None


def machine_info(loopsync_dir: Path, loopsync_version: str) -> dict[str, object]:
    """Describe the machine and the versions benchmarked, for the JSON file."""
    versions: dict[str, str | None] = {"loopsync": loopsync_version}
    for name in ("trio", "anyio", "uvloop", "aiologic", "sniffio"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(affinity(0)) if affinity else os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": sys.version,
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "versions": versions,
        "loopsync_path": str(loopsync_dir),
        "loopsync_git": _git_revision(loopsync_dir),
    }


def _short(number: float) -> str:
    """Format a size for an axis: 200, 1k, 50k."""
    return f"{number / 1000:g}k" if number >= 1000 else f"{number:g}"


PLOT_COLORS = {
    "asyncio": "tab:blue",
    "trio": "tab:purple",
    "anyio": "tab:orange",
    "aiologic": "tab:green",
    "loopsync": "tab:red",
}
"""One color per library, the same in every panel."""


def plot(results: Results, path: str, rows: Sequence[tuple[str, str, str]]) -> None:
    """Draw time against size, log-log: one panel per row and context.

    Each row is a workload, with its y-axis and x-axis labels; the workloads
    that were not run are left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    rows = [row for row in rows if results.params(row[0])]
    contexts = list(dict.fromkeys(c for w, _, _ in rows for c in results.contexts(w)))
    if not rows or not contexts:
        print(f"nothing to plot: {path} not written", file=sys.stderr)
        return
    fig, axes = plt.subplots(
        len(rows),
        len(contexts),
        figsize=(3.6 * len(contexts), 2.9 * len(rows)),
        squeeze=False,
        sharex="row",
        sharey="row",
    )
    for r, (workload, y_label, x_label) in enumerate(rows):
        for c, context in enumerate(contexts):
            ax = axes[r][c]
            for impl, kind in results.impls(workload):
                if kind == "BoundedSemaphore":
                    continue
                points = [
                    (x, results.series(workload, param, context, impl).median)
                    for param, x in results.params(workload)
                ]
                xs = [x for x, y in points if y is not None]
                ys = [y for x, y in points if y is not None]
                if xs:
                    ours = is_loopsync(impl)
                    ax.plot(
                        xs,
                        ys,
                        "-o" if ours else "--.",
                        color=PLOT_COLORS.get(impl.split(".")[0], "tab:gray"),
                        label=impl,
                        linewidth=2 if ours else 1,
                    )
            ax.set_xscale("log")
            ax.set_yscale("log")
            sizes = [x for _, x in results.params(workload)]
            ax.set_xticks(sizes, [_short(x) for x in sizes])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.grid(True, which="both", alpha=0.3)
            if r == 0:
                ax.set_title(context)
            if c == 0:
                ax.set_ylabel(y_label)
            if r == len(rows) - 1 or rows[r + 1][2] != x_label:
                ax.set_xlabel(x_label)
    handles: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=4)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
