"""The event loops a benchmark runs under: the tests' own, from ``tests/contexts.py``.

The five contexts (asyncio, uvloop, trio, anyio-asyncio, anyio-trio), each
spawning and cancelling tasks the way its library does, are defined once for
the tests and the benchmark.  This module puts the tests' directory on
``sys.path`` and re-exports what the benchmark uses.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from contexts import CONTEXTS, Context, TaskGroup, available_contexts  # noqa: E402

__all__ = ["CONTEXTS", "Context", "TaskGroup", "available_contexts"]
