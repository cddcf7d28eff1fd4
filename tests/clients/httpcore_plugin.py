"""pytest plugin for httpcore's own test suite, run by ``run_httpcore.py``.

- Runs every ``@pytest.mark.anyio`` test on each anyio backend named in
  ``$LOOPSYNC_HTTPCORE_BACKENDS`` (default ``asyncio,trio``); httpcore's
  suite, which has no ``anyio_backend`` fixture of its own, runs them under
  asyncio only.  Loaded after anyio's plugin, so that its fixture wins.
- Writes how each test ended, by group (``asyncio``, ``trio``: the anyio
  backend, or ``@pytest.mark.trio`` for pytest-trio's tests; ``sync``: every
  other test), and which httpcore and ``_synchronization`` module the tests
  imported, to the JSON file named by ``$LOOPSYNC_HTTPCORE_REPORT``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

REPORT_ENV = "LOOPSYNC_HTTPCORE_REPORT"
BACKENDS_ENV = "LOOPSYNC_HTTPCORE_BACKENDS"
BACKENDS = tuple(os.environ.get(BACKENDS_ENV, "asyncio,trio").split(","))


@pytest.fixture(scope="module", params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


def _group(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "anyio_backend" in callspec.params:
        return str(callspec.params["anyio_backend"])
    if item.get_closest_marker("trio") is not None:
        return "trio"
    return "sync"


class Recorder:
    """Collects the outcome of every test, then writes them all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.groups: dict[str, str] = {}
        self.tests: dict[str, dict[str, str]] = {}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.groups.update((item.nodeid, _group(item)) for item in items)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._set(report.nodeid or "<collection>", "error", "collection", report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        group = self.groups.get(report.nodeid, "sync")
        previous = self.tests.get(report.nodeid, {}).get("outcome")
        xfail = hasattr(report, "wasxfail")
        if report.when == "call":
            if report.passed:
                self._set(report.nodeid, "xpassed" if xfail else "passed", group, report)
            elif report.skipped:
                self._set(report.nodeid, "xfailed" if xfail else "skipped", group, report)
            else:
                self._set(report.nodeid, "failed", group, report)
        elif report.failed and previous not in {"failed", "error"}:
            self._set(report.nodeid, "error", group, report)
        elif report.when == "setup" and report.skipped:
            self._set(report.nodeid, "xfailed" if xfail else "skipped", group, report)

    def _set(self, nodeid: str, outcome: str, group: str, report: Any) -> None:
        message = ""
        if outcome in {"failed", "error"}:
            crash = getattr(report.longrepr, "reprcrash", None)
            message = str(crash.message if crash is not None else report.longrepr)
            message = message.strip().splitlines()[0][:300] if message.strip() else ""
        self.tests[nodeid] = {"outcome": outcome, "group": group, "message": message}

    def pytest_sessionfinish(self) -> None:
        httpcore = sys.modules.get("httpcore")
        synchronization = sys.modules.get("httpcore._synchronization")
        record = {
            "httpcore": getattr(httpcore, "__file__", None),
            "synchronization": getattr(synchronization, "__file__", None),
            "uses_loopsync": synchronization is not None and "loopsync" in vars(synchronization),
            "tests": self.tests,
        }
        self.path.write_text(json.dumps(record, indent=1), encoding="utf-8")


def pytest_configure(config: pytest.Config) -> None:
    """Start recording if the report's file is named."""
    path = os.environ.get(REPORT_ENV)
    if path:
        config.pluginmanager.register(Recorder(Path(path)), "loopsync-httpcore-recorder")
