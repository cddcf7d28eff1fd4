"""pytest plugin: record how each test ended, for ``tests/test_upstream.py``.

Loaded with ``-p upstream.pytest_report`` in the subprocess that runs a
suite; writes a :class:`~upstream.results.SuiteRecord` to the file named by
the environment variable ``LOOPSYNC_UPSTREAM_REPORT`` when the run ends.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest

from upstream import results

REPORT_ENV = "LOOPSYNC_UPSTREAM_REPORT"


def short_id(nodeid: str, path: Path) -> str:
    """The id of the test *nodeid* of the file *path*, by the file's base name:
    ``test_x.py::Class::test[p]``, wherever the file is."""
    return "::".join([path.name, *nodeid.split("::")[1:]])


def _message(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return results.shorten(str(crash.message))
    return results.shorten(str(longrepr).strip().splitlines()[-1] if longrepr else "")


class Recorder:
    """Collects the outcome of every test, then writes them all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tests: dict[str, results.CaseRecord] = {}
        self.errors: list[str] = []
        self.failures: dict[str, tuple[str, str]] = {}
        self.ids: dict[str, str] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        self.ids[item.nodeid] = short_id(item.nodeid, item.path)
        if report.failed and call.excinfo is not None and item.nodeid not in self.failures:
            self.failures[item.nodeid] = results.describe(call.excinfo.value, item.path)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        test_id = self.ids.get(report.nodeid, report.nodeid)
        record = self.tests.get(test_id)
        if record is not None and record["outcome"] != "passed":
            return  # the first failure or skip of a test is what it reports
        if report.failed:
            message, where = self.failures.get(report.nodeid, (_message(report), ""))
            self.tests[test_id] = {
                "id": test_id,
                "outcome": "failed",
                "message": message,
                "where": where,
            }
        elif report.skipped:
            reason = _message(report)
            if hasattr(report, "wasxfail"):
                reason = f"xfail: {report.wasxfail}"
            self.tests[test_id] = {
                "id": test_id,
                "outcome": "skipped",
                "message": reason,
                "where": "",
            }
        elif report.when == "call":
            self.tests[test_id] = {"id": test_id, "outcome": "passed", "message": "", "where": ""}

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.errors.append(f"collecting {report.nodeid or 'the suite'}: {_message(report)}")

    def pytest_unconfigure(self) -> None:
        results.write(self.path, list(self.tests.values()), self.errors)


def pytest_configure(config: pytest.Config) -> None:
    """Start recording if the report's file is named."""
    path = os.environ.get(REPORT_ENV)
    if path:
        config.pluginmanager.register(Recorder(Path(path)), "loopsync-upstream-recorder")
