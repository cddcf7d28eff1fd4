"""Phases of a simulation kept in step by a Barrier, under asyncio, uvloop and trio.

The simulation is the elementary cellular automaton "rule 90" on a ring of
``WIDTH`` cells: each generation, every cell becomes the XOR of its two
neighbours.  One task owns each cell, and every generation has two phases:

1. read: each task reads its neighbours and computes its next state;
2. write: each task stores its new state in the shared grid.

A single :class:`loopsync.Barrier` for all tasks separates the phases: no one
writes before everyone has read, and no one reads the next generation before
everyone has written.  Each task also "works" for 0 to 3 ms (a different time
for each task) in both phases, so without the barrier, fast tasks would read
cells that slow ones had already overwritten, or not yet written.

The barrier's *action* runs once per trip, after the last task arrives and
before any is released, so it sees the grid at rest: it numbers the phases
and takes a snapshot after each write phase.  Each snapshot is printed and
checked against the same automaton computed by a plain loop.

As in ``crawler.py``, the simulation never names an async library: it gets
``sleep`` and ``run_all`` from ``_runtimes.py``.

Run it with::

    python examples/barrier_simulation.py [asyncio|uvloop|trio|all]    # default: all

uvloop or trio is skipped, with a note, if it is not installed.
"""

from __future__ import annotations

import sys
from functools import partial

from _runtimes import Runtime, available, parse_libraries, run

import loopsync

WIDTH = 33
GENERATIONS = 16
PHASES_PER_GENERATION = 2  # read, then write

Grid = tuple[int, ...]


def first_grid() -> Grid:
    """A single live cell in the middle of the ring."""
    return tuple(int(i == WIDTH // 2) for i in range(WIDTH))


def next_grid(grid: Grid) -> Grid:
    """One generation of rule 90, computed sequentially, as a reference."""
    return tuple(grid[i - 1] ^ grid[(i + 1) % len(grid)] for i in range(len(grid)))


def work_time(cell: int, phase: int) -> float:
    """How long the task for *cell* works in *phase*: 0 to 3 ms."""
    return (cell * 7 + phase * 3) % 4 / 1000


class PhaseRecorder:
    """The barrier action: count phases, snapshot the grid after each write phase."""

    def __init__(self, grid: list[int]) -> None:
        self.grid = grid
        self.phase = 0
        self.snapshots: list[tuple[int, Grid]] = []

    def __call__(self) -> None:
        self.phase += 1
        if self.phase % PHASES_PER_GENERATION == 0:
            self.snapshots.append((self.phase, tuple(self.grid)))


async def cell_task(
    cell: int, grid: list[int], barrier: loopsync.Barrier, runtime: Runtime
) -> None:
    """Advance one cell through every generation, in step with the others."""
    left, right = (cell - 1) % len(grid), (cell + 1) % len(grid)
    for _ in range(GENERATIONS):
        await runtime.sleep(work_time(cell, 0))
        new_state = grid[left] ^ grid[right]
        await barrier.wait()  # everyone has read: writing is safe
        await runtime.sleep(work_time(cell, 1))
        grid[cell] = new_state
        await barrier.wait()  # everyone has written: reading is safe


async def simulate(runtime: Runtime) -> list[tuple[int, Grid]]:
    """Run the simulation; return the (phase, grid) snapshots the action took."""
    grid = list(first_grid())
    recorder = PhaseRecorder(grid)
    barrier = loopsync.Barrier(WIDTH, action=recorder)
    await runtime.run_all(partial(cell_task, cell, grid, barrier, runtime) for cell in range(WIDTH))
    assert recorder.phase == GENERATIONS * PHASES_PER_GENERATION
    assert barrier.n_waiting == 0
    assert not barrier.broken
    return recorder.snapshots


def show(grid: Grid) -> str:
    return "".join("#" if alive else "." for alive in grid)


def main(argv: list[str]) -> None:
    for library in parse_libraries(argv):
        if not available(library):
            print(f"{library}: skipped ({library} is not installed)")
            continue
        print(f"{library}: {WIDTH} tasks, {GENERATIONS} generations")
        snapshots = run(library, simulate)
        expected = first_grid()
        print(f"  {'start':<18}{show(expected)}")
        assert len(snapshots) == GENERATIONS
        for generation, (phase, grid) in enumerate(snapshots, start=1):
            expected = next_grid(expected)
            assert phase == generation * PHASES_PER_GENERATION, (phase, generation)
            assert grid == expected, f"generation {generation} is wrong: {show(grid)}"
            print(f"  phase {phase:2}  gen {generation:2}  {show(grid)}  ok")


if __name__ == "__main__":
    main(sys.argv[1:])
