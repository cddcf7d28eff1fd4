"""What the differential tests of the semaphores and the barrier share.

Each of ``test_differential_semaphore`` and ``test_differential_barrier``
has its own actions, tasks and controller; both use the same hypothesis
settings, the same asyncio libraries, the same :class:`Run` action, the same
kind of :class:`Trace` and the same way of letting the tasks run
(:func:`let_tasks_run`).
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

from hypothesis import settings

from libs import AsyncioLib, Lib, UvloopLib

# Derandomized, so that every run (CI included) tries the same programs.
SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None)

# Loop iterations of a full "let everything run": far more than any program
# of these tests needs to come to a standstill (about two per hand-off of a
# semaphore's permit).
SETTLE_ITERATIONS = 50

ASYNCIO_LIBS = [AsyncioLib(), *([UvloopLib()] if sys.platform != "win32" else [])]


@dataclass(frozen=True)
class Run:
    """Let the other tasks run: ``iterations`` loop iterations under asyncio,
    or (None) until everything has settled.  Under trio, always the latter."""

    iterations: int | None


class Trace:
    """What happened during one run, in order.

    Controller entries (an action, its outcome and the state right after it)
    are strings; the events of the tasks between two controller entries are
    kept in a list, in the order they happened.  Unless *ordered*, as under
    trio, where the tasks of a batch run in random order, :meth:`result`
    sorts each such list.
    """

    def __init__(self, ordered: bool = True) -> None:
        self.ordered = ordered
        self.entries: list[str | list[str]] = []

    def step(self, text: str) -> None:
        self.entries.append(text)

    def event(self, text: str) -> None:
        if not self.entries or isinstance(self.entries[-1], str):
            self.entries.append([])
        group = self.entries[-1]
        assert isinstance(group, list)
        group.append(text)

    def result(self) -> list[str | list[str]]:
        if self.ordered:
            return self.entries
        return [entry if isinstance(entry, str) else sorted(entry) for entry in self.entries]


async def let_tasks_run(lib: Lib, iterations: int | None) -> str:
    """Let the other tasks run as :class:`Run` says, and describe what was done."""
    if lib.family == "trio":
        await lib.settle()
        return "settle"
    for _ in range(SETTLE_ITERATIONS if iterations is None else iterations):
        await asyncio.sleep(0)
    return "settle" if iterations is None else f"run {iterations} iteration(s)"
