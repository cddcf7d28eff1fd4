"""pytest plugin: a test that finds its port in use runs once more.

python-telegram-bot's webhook tests listen on a port drawn at random from
1024 to 49151, a third of which is Linux's range for the local ports of
outgoing connections.  Beside other suites, a port that one of their closed
connections still holds in TIME_WAIT refuses the listener (EADDRINUSE) for a
minute, whatever primitives run.  A test that fails so (or whose clean-up
then fails) runs once more, with another port, through the flaky plugin that
the project's own tests use; every other failure stands.  Each test run
again is listed in ``$LOOPSYNC_RERUN_LOG``.
"""

from __future__ import annotations

import errno
import os
from types import TracebackType
from typing import Any

import pytest


def _port_in_use(
    error: tuple[type[BaseException], BaseException, TracebackType],
    name: str,
    test: pytest.Item,
    plugin: object,
) -> bool:
    """flaky's rerun filter: run again only a test that could not bind."""
    # A test's clean-up may raise in turn (stopping what never started):
    # the bind's error is then the context of the one reported.
    exc: BaseException | None = error[1]
    while not (isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE):
        if exc is None:
            return False
        exc = exc.__cause__ or exc.__context__
    log = os.environ.get("LOOPSYNC_RERUN_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as file:
            file.write(f"{test.nodeid}\n")
    return True


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Give each test without its own flaky marker a second run on EADDRINUSE."""
    for item in items:
        if item.get_closest_marker("flaky") is None:
            item.add_marker(pytest.mark.flaky(max_runs=2, rerun_filter=_port_in_use))
