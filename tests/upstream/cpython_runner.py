"""Run CPython's asyncio lock tests with asyncio's primitives swapped for loopsync's.

Usage::

    python -m upstream.cpython_runner REPORT TEST_LOCKS [TEST_PEP492]

The files are CPython's ``Lib/test/test_asyncio/test_locks.py`` and
``test_pep492.py`` (of the Python whose behaviour loopsync follows, whatever
Python runs them).  Each is loaded from its path under a private module
name, so that it imports the running Python's own ``test.test_asyncio``
helpers; the ``unittest`` classes that concern a swapped name run, and a
:class:`~upstream.results.SuiteRecord` is written to REPORT.  They run with
asyncio's own primitives first: a test that fails then too (the file is of
a newer Python) is reported as skipped, unless loopsync passes it.

A test that uses an ``asyncio`` attribute the running Python lacks even
after the swap (``asyncio.TaskGroup`` before 3.11) is skipped, and says so.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import importlib.util
import sys
import traceback
import unittest
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import loopsync
from upstream import results
from upstream.swap import swap

# asyncio's name -> loopsync's name.  Only the names loopsync has are swapped.
TABLE = {
    "Semaphore": "Semaphore",
    "BoundedSemaphore": "BoundedSemaphore",
    "Barrier": "Barrier",
    "BrokenBarrierError": "BrokenBarrierError",
    "Lock": "Lock",
    "Event": "Event",
    "Condition": "Condition",
}
MODULES = ("asyncio",)

# file -> {TestCase class: the swapped names that make it run}
CLASSES: dict[str, dict[str, tuple[str, ...]]] = {
    "test_locks.py": {
        "LockTests": ("Lock",),
        "EventTests": ("Event",),
        "ConditionTests": ("Condition",),
        "SemaphoreTests": ("Semaphore", "BoundedSemaphore"),
        "BarrierTests": ("Barrier",),
    },
    # Its LockTests puts Lock, Condition, Semaphore and BoundedSemaphore
    # through the same two tests: those not swapped stay asyncio's own.
    "test_pep492.py": {"LockTests": ("Lock", "Condition", "Semaphore", "BoundedSemaphore")},
}

ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]


def load(path: Path) -> ModuleType:
    """Import the file at *path* under a name of its own."""
    name = f"loopsync_upstream_{path.stem}"  # as main() expects
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _asyncio_attributes(node: ast.AST) -> Iterator[str]:
    for sub in ast.walk(node):
        if (
            isinstance(sub, ast.Attribute)
            and isinstance(sub.value, ast.Name)
            and sub.value.id == "asyncio"
        ):
            yield sub.attr


def _self_calls(node: ast.AST) -> Iterator[str]:
    for sub in ast.walk(node):
        if (
            isinstance(sub, ast.Attribute)
            and isinstance(sub.value, ast.Name)
            and sub.value.id == "self"
        ):
            yield sub.attr


def missing_asyncio(path: Path, class_name: str) -> dict[str, list[str]]:
    """For each method of *class_name* in *path*, the ``asyncio.X`` it (or a
    method of the class it uses, however indirectly) needs and this Python's
    asyncio lacks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    methods: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    methods[item.name] = item
    missing: dict[str, list[str]] = {}
    for name in methods:
        seen: set[str] = set()
        todo = [name]
        needs: set[str] = set()
        while todo:
            current = todo.pop()
            if current in seen or current not in methods:
                continue
            seen.add(current)
            needs.update(_asyncio_attributes(methods[current]))
            todo.extend(_self_calls(methods[current]))
        lacking = sorted(attr for attr in needs if not hasattr(asyncio, attr))
        if lacking:
            missing[name] = lacking
    return missing


class Recorder(unittest.TestResult):
    """Keeps how each test ended, with ids of the form ``file::Class::test``."""

    def __init__(self, files: dict[str, Path]) -> None:
        super().__init__()
        self.files = files  # module name -> the file it was loaded from
        self.records: dict[str, results.CaseRecord] = {}
        self.module_errors: list[str] = []

    def _id(self, test: unittest.TestCase) -> str:
        path = self.files[type(test).__module__]
        return f"{path.name}::{type(test).__name__}::{test._testMethodName}"

    def _record(
        self, test: unittest.TestCase, outcome: results.Outcome, message: str, where: str
    ) -> None:
        test_id = self._id(test)
        if test_id in self.records and self.records[test_id]["outcome"] == "failed":
            return  # a test's first failure is what it reports
        self.records[test_id] = {
            "id": test_id,
            "outcome": outcome,
            "message": results.shorten(message),
            "where": where,
        }

    def _fail(self, test: unittest.TestCase, err: ExcInfo) -> None:
        exc = err[1]
        if exc is None:
            return
        if not isinstance(test, unittest.TestCase) or type(test).__module__ not in self.files:
            # setUpModule, tearDownModule and the like.
            text = "".join(traceback.format_exception_only(type(exc), exc))
            self.module_errors.append(results.shorten(f"{test}: {text}"))
            return
        message, where = results.describe(exc, self.files[type(test).__module__])
        self._record(test, "failed", message, where)

    def addSuccess(self, test: unittest.TestCase) -> None:
        self._record(test, "passed", "", "")

    def addError(self, test: unittest.TestCase, err: ExcInfo) -> None:
        super().addError(test, err)
        self._fail(test, err)

    def addFailure(self, test: unittest.TestCase, err: ExcInfo) -> None:
        super().addFailure(test, err)
        self._fail(test, err)

    def addSubTest(
        self, test: unittest.TestCase, subtest: unittest.TestCase, err: ExcInfo | None
    ) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._fail(test, err)

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        self._record(test, "skipped", reason, "")

    def addExpectedFailure(self, test: unittest.TestCase, err: ExcInfo) -> None:
        self._record(test, "skipped", "expected failure", "")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        self._record(test, "failed", "unexpected success", "")


def _suite(modules: dict[str, ModuleType], names: set[str], version: str) -> unittest.TestSuite:
    """The test classes of *modules* (by file name) that concern one of
    *names*, less the tests this Python's asyncio cannot run."""
    suite = unittest.TestSuite()
    for file_name, module in modules.items():
        path = Path(module.__file__ or file_name)
        for class_name, concerned in CLASSES[file_name].items():
            case = getattr(module, class_name, None)
            if case is None or not names.intersection(concerned):
                continue
            skips: dict[str, Any] = {"__module__": case.__module__}
            for method, lacking in missing_asyncio(path, class_name).items():
                if method.startswith("test"):
                    needs = ", ".join(f"asyncio.{attr}" for attr in lacking)
                    reason = f"needs {needs}, which Python {version} lacks"
                    skips[method] = unittest.skip(reason)(getattr(case, method))
            # A subclass of the same name, so that the skips are this run's only.
            case = type(class_name, (case,), skips)
            suite.addTests(unittest.defaultTestLoader.loadTestsFromTestCase(case))
    return suite


def main(argv: list[str] | None = None) -> None:
    """Run the selected classes with asyncio's own primitives, then swapped;
    write the report of the second run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("files", type=Path, nargs="+")
    args = parser.parse_args(argv)
    version = ".".join(map(str, sys.version_info[:2]))

    modules = {path.name: load(path) for path in args.files}
    files = {f"loopsync_upstream_{path.stem}": path for path in args.files}
    names = {name for name in TABLE if hasattr(loopsync, TABLE[name])}

    # A test of a newer Python may fail with this Python's own primitives
    # (3.10's tasks drop a cancellation's message, for one): it does not
    # judge loopsync here, unless loopsync passes it.
    native = Recorder(files)
    _suite(modules, names, version).run(native)

    results.SWAPPED.update(swap(MODULES, TABLE))
    recorder = Recorder(files)
    _suite(modules, names, version).run(recorder)
    for test_id, record in recorder.records.items():
        before = native.records.get(test_id)
        if record["outcome"] == "failed" and before and before["outcome"] == "failed":
            record["outcome"] = "skipped"
            record["message"] = results.shorten(
                f"fails with asyncio's own primitives on Python {version} too: {before['message']}"
            )
    results.write(args.report, list(recorder.records.values()), recorder.module_errors)


if __name__ == "__main__":
    main()
