"""Weigh a suite's report against the tests excused from it.

An excuse is a one-line reason of one of five kinds, and each kind is
checked, so that an excuse covers what it says and nothing more:

* ``reads private attributes: _waiters, _value`` -- the test's source reads
  each attribute named, and the test fails no earlier than its first line
  that does;
* ``needs anyio's fast_acquire=`` -- the test passes ``fast_acquire=``, and
  its failure is about it;
* ``asserts another library's exact error-message wording: ...`` -- the test
  matches an error message, and fails with an ``AssertionError`` at such a
  match: the right exception, other words;
* ``asserts anyio's own rule under asyncio, where loopsync keeps asyncio's:
  ...`` -- only the test's asyncio parametrizations are excused (their ids
  say so), and the failure is an assertion or an exception the test expected;
* ``checks an object anyio makes itself`` -- the failure names an object of
  anyio's own backends, which no swap reaches.

A test that fails in a way its excuse does not cover counts as failed.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from upstream.results import CaseRecord, SuiteRecord

PRIVATE = "reads private attributes: "
FAST_ACQUIRE = "needs anyio's fast_acquire="
WORDING = "asserts another library's exact error-message wording"
ANYIO_RULE = "asserts anyio's own rule under asyncio, where loopsync keeps asyncio's: "
ANYIO_OWN = "checks an object anyio makes itself"

_MATCHING = re.compile(r"\bmatch=|assertRaisesRegex|assertWarnsRegex")


def kind_of(reason: str) -> str | None:
    """The kind of excuse *reason* is, or None if it is of none allowed."""
    if "\n" in reason:
        return None
    if reason.startswith(PRIVATE) and private_attributes(reason):
        return PRIVATE
    if reason == FAST_ACQUIRE:
        return FAST_ACQUIRE
    if reason.startswith(WORDING):
        return WORDING
    if reason.startswith(ANYIO_RULE) and reason != ANYIO_RULE:
        return ANYIO_RULE
    if reason == ANYIO_OWN:
        return ANYIO_OWN
    return None


def private_attributes(reason: str) -> list[str]:
    """The attributes a :data:`PRIVATE` excuse names."""
    names = [name.strip() for name in reason.removeprefix(PRIVATE).split(",")]
    return names if all(re.fullmatch(r"_[A-Za-z]\w*", name) for name in names) else []


def matches(excused_id: str, test_id: str) -> bool:
    """Whether an excuse for *excused_id* covers *test_id*: the same id, the
    id without its parameters (then every parametrization is excused), or
    the id with ``[asyncio*]`` (every parametrization that runs on asyncio:
    ``[asyncio]``, ``[asyncio+uvloop]``, ``[asyncio+eager]``)."""
    if excused_id.endswith("[asyncio*]"):
        return test_id.startswith(excused_id.removesuffix("*]"))
    return excused_id in (test_id, test_id.partition("[")[0])


@functools.cache
def _functions(path: Path) -> dict[str, tuple[int, int]]:
    """``{"Class::test" or "test": (first line, last line)}`` for *path*."""
    spans: dict[str, tuple[int, int]] = {}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        members = node.body if isinstance(node, ast.ClassDef) else [node]
        prefix = f"{node.name}::" if isinstance(node, ast.ClassDef) else ""
        for member in members:
            if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                spans[prefix + member.name] = (member.lineno, member.end_lineno or member.lineno)
    return spans


def source_of(path: Path, test_id: str) -> list[tuple[int, str]]:
    """The numbered source lines of the test *test_id* in *path*, or []."""
    name = test_id.partition("::")[2].partition("[")[0]
    span = _functions(path).get(name)
    if span is None:
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(number, lines[number - 1]) for number in range(span[0], span[1] + 1)]


def claim_problem(key: str, reason: str, source: list[tuple[int, str]]) -> str | None:
    """What is wrong with excusing the test *key*, of this *source*, for
    *reason*, if anything."""
    text = "\n".join(line for _, line in source)
    kind = kind_of(reason)
    if kind is None:
        return f"not an allowed reason: {reason!r}"
    if not source:
        return "no such test in the suite's file"
    if kind == PRIVATE:
        unread = [name for name in private_attributes(reason) if f".{name}" not in text]
        if unread:
            return f"the test reads no {', '.join(unread)}"
    elif kind == FAST_ACQUIRE and "fast_acquire" not in text:
        return "the test passes no fast_acquire="
    elif kind == WORDING and not _MATCHING.search(text):
        return "the test matches no error message"
    elif kind == ANYIO_RULE and not re.search(r"\[asyncio\b", key):
        return "the excuse is not limited to an asyncio parametrization"
    return None


def failure_problem(reason: str, source: list[tuple[int, str]], test: CaseRecord) -> str | None:
    """What in *test*'s failure its excuse does not cover, if anything."""
    kind = kind_of(reason)
    statement = test["where"].partition(": ")[2]
    if kind == PRIVATE:
        names = [f".{name}" for name in private_attributes(reason)]
        first = min((number for number, line in source if any(n in line for n in names)), default=0)
        line = int(test["where"].split(":")[1]) if test["where"] else 0
        if line < first:
            return f"fails at line {line}, before it reads a private attribute (line {first})"
    elif kind == FAST_ACQUIRE:
        if "fast_acquire" not in test["message"] + statement:
            return "fails for something other than fast_acquire="
    elif kind == WORDING and not (
        test["message"].startswith("AssertionError") and _MATCHING.search(statement)
    ):
        return "fails for something other than an error message's wording"
    elif kind == ANYIO_RULE and not re.match(
        r"(in a task group: )?(AssertionError|Failed: DID NOT RAISE|.*WouldBlock)", test["message"]
    ):
        return "fails for something other than an assertion"
    elif kind == ANYIO_OWN and "anyio._backends" not in test["message"]:
        return "fails for something other than an object of anyio's backends"
    return None


@dataclass
class Verdict:
    """How a suite did."""

    passed: list[str] = field(default_factory=list)
    excused: list[CaseRecord] = field(default_factory=list)
    failed: list[CaseRecord] = field(default_factory=list)
    skipped: list[CaseRecord] = field(default_factory=list)
    # Passed tests that an excuse covers: it is not needed (yet, or any more).
    unneeded: list[str] = field(default_factory=list)
    # What makes the suite fail, one line each.
    problems: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Every test the suite reported."""
        return len(self.passed) + len(self.excused) + len(self.failed) + len(self.skipped)

    def summary(self) -> str:
        """One line of counts."""
        return (
            f"{len(self.passed)} passed, {len(self.excused)} excused, "
            f"{len(self.failed)} failed, {len(self.skipped)} skipped, {self.total} total"
        )


def describe(test: CaseRecord) -> str:
    """``id: message [at file:line: statement]`` on one line."""
    message = " | ".join(line.strip() for line in test["message"].splitlines() if line.strip())
    return f"{test['id']}: {message}" + (f"  [at {test['where']}]" if test["where"] else "")


def judge(record: SuiteRecord, files: dict[str, Path], excused: dict[str, str]) -> Verdict:
    """Weigh *record*, a run of the suite made of *files* (by base name),
    against *excused* (test id -> reason), of which only the ids of these
    files concern it."""
    verdict = Verdict()
    mine = {key: why for key, why in excused.items() if key.partition("::")[0] in files}
    verdict.problems += [f"not a test: {error}" for error in record["errors"]]

    for key, why in mine.items():
        if not any(matches(key, test["id"]) for test in record["tests"]):
            verdict.problems.append(f"excused, but not in the suite: {key}")
            continue
        problem = claim_problem(key, why, source_of(files[key.partition("::")[0]], key))
        if problem:
            verdict.problems.append(f"bad excuse for {key}: {problem}")

    for test in record["tests"]:
        if test["outcome"] == "passed":
            verdict.passed.append(test["id"])
            if any(matches(key, test["id"]) for key in mine):
                verdict.unneeded.append(test["id"])
        elif test["outcome"] == "skipped":
            verdict.skipped.append(test)
        else:
            excuse = next((key for key in mine if matches(key, test["id"])), None)
            path = files[test["id"].partition("::")[0]]
            problem = None
            if excuse is not None:
                problem = failure_problem(mine[excuse], source_of(path, excuse), test)
            if excuse is not None and problem is None:
                verdict.excused.append(test)
            else:
                verdict.failed.append(test)
                note = f" (excused as {mine[excuse]!r}, but it {problem})" if excuse else ""
                verdict.problems.append(f"FAILED {describe(test)}{note}")

    if not verdict.passed and not verdict.excused and not verdict.failed:
        verdict.problems.append(f"no test ran (swapped: {record['swapped'] or 'nothing'})")
    return verdict
