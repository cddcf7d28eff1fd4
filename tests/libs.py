"""Run the same test code under asyncio, uvloop, trio and anyio.

Each :class:`Lib` runs a test function and gives it the few operations the
tests need (spawning, cancelling, letting tasks run) in the form native to the
library.  They are the contexts of :mod:`contexts`, which the benchmark runs
under too, by the names the tests use.
"""

from __future__ import annotations

import sys

from contexts import CONTEXTS, Handle, TaskGroup
from contexts import AnyioContext as AnyioLib
from contexts import AsyncioContext as AsyncioLib
from contexts import Context as Lib
from contexts import EagerAsyncioContext as EagerAsyncioLib
from contexts import TrioContext as TrioLib
from contexts import UvloopContext as UvloopLib

__all__ = [
    "LIBS",
    "AnyioLib",
    "AsyncioLib",
    "EagerAsyncioLib",
    "Handle",
    "Lib",
    "TaskGroup",
    "TrioLib",
    "UvloopLib",
]

# uvloop does not run on Windows.  Elsewhere the test extras install it, so a
# missing uvloop fails its tests instead of skipping them.
LIBS: list[Lib] = [lib for lib in CONTEXTS if lib.name != "uvloop" or sys.platform != "win32"]
