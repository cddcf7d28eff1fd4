"""A time limit for each test: a test that hangs ends the run, failed.

A primitive that loses a wake-up can leave a task blocked where no
cancellation reaches it: a Condition's ``wait()`` re-acquires its lock
through cancellation, under asyncio by catching it and under trio in a
shielded scope, and a test run waits for its tasks.  Nothing inside the
process can end such a run, so a watcher thread does what CPython's test
runner does: once a test has run for :data:`DEFAULT_SECONDS` (or
``LOOPSYNC_TEST_TIME_LIMIT`` seconds; 0 turns the limit off), it names the
test, dumps every thread's stack to the terminal, runs the cleanups it was
given (servers the tests started) and exits the process with status 1.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys
import threading
from collections.abc import Callable, Generator
from typing import Any

import pytest

# Far above any test's time, also under coverage on a loaded machine: a test
# this late is a test that hangs.
DEFAULT_SECONDS = 120.0

ENVIRONMENT_VARIABLE = "LOOPSYNC_TEST_TIME_LIMIT"


def seconds_allowed() -> float:
    """The limit in seconds, from the environment or the default; 0 means none."""
    text = os.environ.get(ENVIRONMENT_VARIABLE)
    if not text:
        return DEFAULT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        raise pytest.UsageError(
            f"{ENVIRONMENT_VARIABLE} must be a number of seconds, not {text!r}"
        ) from None
    if seconds < 0:
        raise pytest.UsageError(f"{ENVIRONMENT_VARIABLE} must not be negative, not {text!r}")
    return seconds


class TimeLimit:
    """The pytest plugin: a watcher thread for each test."""

    def __init__(
        self, config: pytest.Config, seconds: float, cleanups: list[Callable[[], object]]
    ) -> None:
        self.config = config
        self.seconds = seconds
        self.cleanups = cleanups

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, Any, None]:
        finished = threading.Event()
        watcher = threading.Thread(
            target=self._watch, args=(item, finished), name="test time limit", daemon=True
        )
        watcher.start()
        try:
            yield
        finally:
            finished.set()
            watcher.join()

    def _watch(self, item: pytest.Item, finished: threading.Event) -> None:
        """Wait for the test to finish, or end the whole run once it is late."""
        if finished.wait(self.seconds):
            return
        capture = self.config.pluginmanager.getplugin("capturemanager")
        # The terminal, not the capture of the test's output, which nobody
        # would read: pytest reports nothing after the exit.
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            sys.stderr.write(
                f"\n\n{item.nodeid} has run for {self.seconds:g} s ({ENVIRONMENT_VARIABLE}):"
                " ending the test run. Every thread's stack:\n"
            )
            sys.stderr.flush()
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            sys.stderr.flush()
        for cleanup in self.cleanups:
            with contextlib.suppress(Exception):
                cleanup()
        os._exit(1)


def install(config: pytest.Config, cleanups: list[Callable[[], object]]) -> None:
    """Give every test of this run the time limit, unless it is turned off;
    *cleanups* run before a late test ends the run."""
    seconds = seconds_allowed()
    if seconds:
        config.pluginmanager.register(TimeLimit(config, seconds, cleanups), "loopsync-time-limit")
