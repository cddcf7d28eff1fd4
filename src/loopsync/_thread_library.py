"""Which library runs the caller when trio and asyncio share a thread.

trio says that it runs in sniffio's thread-local, for the whole of a run (as
a guest, during each of its ticks).  A task of a running asyncio loop may
call ``trio.run()``, whose tasks trio then runs; a trio task may call
``asyncio.run()``, whose tasks asyncio then runs while the flag still says
trio.  Both install their async generator hooks as they start to run, so the
hooks in place tell which of the two runs on top.
"""

from __future__ import annotations

import sys

__all__ = ["asyncio_runs_on_top_of_trio"]

_modules = sys.modules
_get_asyncgen_hooks = sys.get_asyncgen_hooks


def asyncio_runs_on_top_of_trio() -> bool:
    """Return True if a running asyncio loop has installed the async generator
    hooks in place: it runs the caller, whatever trio's flag says."""
    asyncio = _modules.get("asyncio")
    if asyncio is None:
        return False
    loop = asyncio._get_running_loop()
    return loop is not None and getattr(_get_asyncgen_hooks().firstiter, "__self__", None) is loop
