"""Run the same test code under asyncio, uvloop, trio and anyio.

Each :class:`Lib` runs a test function and gives it the few operations the
tests need (spawning, cancelling, letting tasks run) in the form native to the
library.  They are the contexts of :mod:`contexts`, which the benchmark runs
under too, by the names the tests use.
"""

from __future__ import annotations

import sys

import pytest
import trio

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
    "trio_rule_from",
]

# uvloop does not run on Windows.  Elsewhere the test extras install it, so a
# missing uvloop fails its tests instead of skipping them.
LIBS: list[Lib] = [lib for lib in CONTEXTS if lib.name != "uvloop" or sys.platform != "win32"]


def trio_rule_from(version: tuple[int, int], rule: str) -> pytest.MarkDecorator:
    """Skip a test that compares loopsync with a rule trio has had only since
    *version*: loopsync keeps the newest trio's rules, also on an older trio."""
    running = tuple(int(part) for part in trio.__version__.split(".")[:2])
    return pytest.mark.skipif(
        running < version, reason=f"trio's rule from {version[0]}.{version[1]}: {rule}"
    )
