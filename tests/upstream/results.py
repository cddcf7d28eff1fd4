"""What a run of an upstream suite reports, as written to and read from JSON.

The subprocess that runs a suite writes one :class:`SuiteRecord`; test ids
name the suite's file by its base name (``test_sync.py::test_Semaphore``), so
that they read the same wherever the suite was found.
"""

from __future__ import annotations

import ast
import functools
import json
import traceback
from pathlib import Path
from typing import Literal, TypedDict

Outcome = Literal["passed", "failed", "skipped"]

# Set by the process that swaps: upstream name -> loopsync attribute.
SWAPPED: dict[str, str] = {}

# The longest failure message kept; assertion rewriting can make huge ones.
MAX_MESSAGE = 600


class CaseRecord(TypedDict):
    """One test of the suite and how it ended."""

    id: str
    outcome: Outcome
    # A failure's exception (type and message), or a skip's reason.
    message: str
    # For a failure: "file:line: source" of the innermost frame in the suite's
    # own file, or "" when the failure is outside it.
    where: str


class SuiteRecord(TypedDict):
    """Everything one run of a suite reports."""

    swapped: dict[str, str]
    tests: list[CaseRecord]
    # Failures outside any test: collection, module set-up or tear-down.
    errors: list[str]


def shorten(text: str) -> str:
    """Cut *text* to :data:`MAX_MESSAGE` characters."""
    text = text.strip()
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def write(path: Path, tests: list[CaseRecord], errors: list[str]) -> None:
    """Write a :class:`SuiteRecord` to *path*."""
    record: SuiteRecord = {"swapped": dict(SWAPPED), "tests": tests, "errors": errors}
    path.write_text(json.dumps(record, indent=1), encoding="utf-8")


def read(path: Path) -> SuiteRecord:
    """Read the :class:`SuiteRecord` written to *path*."""
    record: SuiteRecord = json.loads(path.read_text(encoding="utf-8"))
    return record


@functools.cache
def _statements(path: Path) -> list[tuple[int, int]]:
    """The line spans of every statement in *path*; a compound statement's
    span is its header only."""
    spans = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.stmt):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                end = max(node.lineno, body[0].lineno - 1)
            else:
                end = node.end_lineno or node.lineno
            spans.append((node.lineno, end))
    return spans


def where(path: Path, lineno: int) -> str:
    """``file:line: statement`` for the innermost statement of *path* at
    line *lineno*, its lines joined into one."""
    spans = [span for span in _statements(path) if span[0] <= lineno <= span[1]]
    start, end = min(spans, key=lambda span: span[1] - span[0], default=(lineno, lineno))
    lines = path.read_text(encoding="utf-8").splitlines()[start - 1 : end]
    return f"{path.name}:{lineno}: {' '.join(line.strip() for line in lines)}"


def _leaves(exc: BaseException) -> list[BaseException]:
    inner = getattr(exc, "exceptions", None)
    if not isinstance(inner, tuple):
        return [exc]
    return [leaf for sub in inner if isinstance(sub, BaseException) for leaf in _leaves(sub)]


def _exception_line(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def describe(exc: BaseException, path: Path) -> tuple[str, str]:
    """A failure's ``(message, where)``: the exception as Python prints its
    last line, and :func:`where` it was raised in the suite's file *path*.

    An exception group (a task group's) is described by the exceptions it
    holds when they all read the same.
    """
    message = _exception_line(exc)
    leaves = _leaves(exc)
    if leaves != [exc] and len({_exception_line(leaf) for leaf in leaves}) == 1:
        exc = leaves[0]
        times = f", {len(leaves)} times" if len(leaves) > 1 else ""
        message = f"in a task group{times}: {_exception_line(exc)}"
    frames = [
        frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == str(path)
    ]
    place = where(path, frames[-1].lineno or 0) if frames else ""
    return shorten(message), place
