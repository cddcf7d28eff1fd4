"""pytest plugin: a test that fails for the machine's load, not for what it
checks, runs again.

python-telegram-bot's webhook tests listen on a port drawn at random from
1024 to 49151, a third of which is Linux's range for the local ports of
outgoing connections.  Beside other suites, a port that one of their closed
connections still holds in TIME_WAIT refuses the listener (EADDRINUSE) for a
minute, whatever primitives run.  And three of its tests drive a running
application from a thread that sleeps 50 to 100 ms before each check
(``assertions[...]``, reported as "assertion '...' failed!"): on two cores
shared with other suites, the application has not always caught up.  A test
that fails so (or whose clean-up then fails) runs again, up to three times
in all, through the flaky plugin that the project's own tests use; every
other failure stands, and so does a third.  Each run again is listed in
``$LOOPSYNC_RERUN_LOG``, with the reason.

After any failure, the threads the test started are given time to end: such
a test's helper thread waits for the application to start, and fails when
it never does, which pytest would blame on a later test.
"""

from __future__ import annotations

import errno
import os
import re
import threading
import time
from types import TracebackType
from typing import Any

import pytest

# The helper threads of python-telegram-bot's tests give up after 5 s.
LEFTOVER_THREADS_TIMEOUT = 10.0

# How python-telegram-bot's tests report a check of their helper thread.
_TIMED_CHECK = re.compile(r"assertion '[^']+' failed!")

_threads_before = pytest.StashKey[set[threading.Thread]]()


def _log(line: str) -> None:
    log = os.environ.get("LOOPSYNC_RERUN_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as file:
            file.write(f"{line}\n")


def _failed_for_load(
    error: tuple[type[BaseException], BaseException, TracebackType],
    name: str,
    test: pytest.Item,
    plugin: object,
) -> bool:
    """flaky's rerun filter: run again only a test that could not bind, or
    whose helper thread checked before the application caught up."""
    exc: BaseException | None = error[1]
    if isinstance(exc, AssertionError) and _TIMED_CHECK.match(str(exc)):
        reason = "a timed check"
    else:
        # A test's clean-up may raise in turn (stopping what never started):
        # the bind's error is then the context of the one reported.
        while not (isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE):
            if exc is None:
                return False
            exc = exc.__cause__ or exc.__context__
        reason = "its port in use"
    _log(f"{test.nodeid}: run again, {reason}")
    return True


def _outlive_leftover_threads(test: pytest.Item) -> None:
    """Wait for the threads the failed attempt started, and log what they raise."""
    before = test.stash.get(_threads_before, set())
    leftovers = [thread for thread in threading.enumerate() if thread not in before]
    previous_hook = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.thread is not None and args.thread in leftovers:
            raised = args.exc_type.__name__
            _log(f"{test.nodeid}: after it failed, its thread {args.thread.name} raised {raised}")
        else:
            previous_hook(args)

    threading.excepthook = hook
    try:
        deadline = time.monotonic() + LEFTOVER_THREADS_TIMEOUT
        for thread in leftovers:
            thread.join(max(0.0, deadline - time.monotonic()))
    finally:
        threading.excepthook = previous_hook


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Give each test without its own flaky marker two more runs after such failures."""
    for item in items:
        if item.get_closest_marker("flaky") is None:
            item.add_marker(pytest.mark.flaky(max_runs=3, rerun_filter=_failed_for_load))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Note the threads running before the test starts its own."""
    item.stash[_threads_before] = set(threading.enumerate())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Once a test's call failed, run again or not, wait for its threads."""
    report = yield
    if call.when == "call" and report.failed:
        _outlive_leftover_threads(item)
    return report
