"""The anchors' own test suites, run against loopsync's primitives.

Each suite is trio's, anyio's or CPython's own test file for the primitive,
found where it is installed or fetched at test time (never kept in this
repository), and run in a subprocess with the library's primitives swapped
for loopsync's namesakes (see the ``upstream`` package).  Every test that
ran must pass, except those in :data:`EXCUSED`.

A suite that cannot be had here (no Python 3.13 to take CPython's tests
from, no network for anyio's sdist) is skipped, or fails when ``CI=true``.
Run with ``-rP`` (or ``-s``) to see each suite's counts.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

from upstream import suites
from upstream.judge import (
    ANYIO_OWN,
    ANYIO_RULE,
    FAST_ACQUIRE,
    PRIVATE,
    WORDING,
    describe,
    judge,
    kind_of,
)
from upstream.results import Outcome, SuiteRecord

# Test id -> why it may fail.  The only reasons allowed (see upstream.judge,
# which checks that each test does what its excuse says, and that its failure
# is the one excused) are: the test reads private attributes, it needs anyio's
# fast_acquire=, it asserts another library's exact error-message wording, it
# asserts one of anyio's own rules under asyncio where loopsync keeps
# asyncio's, or it checks an object anyio makes itself.  An id without
# [parameters] excuses every parametrization, and one with [asyncio*] those
# that run on asyncio.
_ANYIO_OWNER = f"{ANYIO_RULE}a lock has an owner"
_ANYIO_CHECKPOINT = f"{ANYIO_RULE}a call that need not wait still yields"
_ANYIO_WORDING = f"{WORDING}: anyio's 'The current task is not holding the underlying lock'"
EXCUSED: dict[str, str] = {
    # trio: trio/_tests/test_sync.py
    "test_sync.py::test_lock_acquire_unowned_lock": f"{PRIVATE}_lot",
    "test_sync.py::test_lock_handover": f"{PRIVATE}_lot",
    # anyio: tests/test_synchronization.py, on every backend
    "test_synchronization.py::TestSemaphore::test_fast_acquire": FAST_ACQUIRE,
    "test_synchronization.py::TestSemaphore::test_fast_acquire_outside_event_loop": FAST_ACQUIRE,
    "test_synchronization.py::TestLock::test_fast_acquire": FAST_ACQUIRE,
    "test_synchronization.py::TestLock::test_acquire_twice_async": FAST_ACQUIRE,
    "test_synchronization.py::TestLock::test_acquire_twice_sync[asyncio*]": _ANYIO_OWNER,
    "test_synchronization.py::TestLock::test_acquire_twice_sync[trio]": (
        f"{WORDING}: anyio's 'Attempted to acquire an already held Lock'"
    ),
    "test_synchronization.py::TestLock::test_cancel_after_release[asyncio*]": _ANYIO_OWNER,
    "test_synchronization.py::TestLock::test_owner_after_release[asyncio*]": _ANYIO_OWNER,
    "test_synchronization.py::TestEvent::test_event_cancel[asyncio*]": _ANYIO_CHECKPOINT,
    "test_synchronization.py::TestCondition::test_wait_no_lock": _ANYIO_WORDING,
    "test_synchronization.py::TestCondition::test_notify_no_lock": _ANYIO_WORDING,
    "test_synchronization.py::TestCondition::test_notify_after_release": _ANYIO_WORDING,
    "test_synchronization.py::TestCapacityLimiter::test_current_default_thread_limiter": ANYIO_OWN,
    (
        "test_synchronization.py::TestCapacityLimiter::"
        "test_cancel_during_acquire_on_behalf_of[asyncio*]"
    ): _ANYIO_CHECKPOINT,
    # CPython 3.13: Lib/test/test_asyncio/test_locks.py
    "test_locks.py::SemaphoreTests::test_repr": f"{PRIVATE}_waiters",
    "test_locks.py::SemaphoreTests::test_acquire_fifo_order_4": f"{PRIVATE}_value, _waiters",
    "test_locks.py::BarrierTests::test_reset_barrier_when_tasks_half_draining": f"{PRIVATE}_count",
    "test_locks.py::EventTests::test_repr": f"{PRIVATE}_waiters",
    "test_locks.py::EventTests::test_clear_with_waiters": f"{PRIVATE}_waiters",
    "test_locks.py::ConditionTests::test_repr": f"{PRIVATE}_waiters",
}


def cache_dir(config: pytest.Config) -> Path:
    """Where fetched suites are kept between runs: pytest's cache
    (``.pytest_cache/d/``, git-ignored), or a temporary directory if the
    cache is off."""
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("loopsync-upstream"))
    user = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"loopsync-upstream-{user}"


SUITES: dict[str, Callable[[pytest.Config], suites.Suite]] = {
    "trio": lambda config: suites.trio_suite(),
    "anyio": lambda config: suites.anyio_suite(cache_dir(config)),
    "cpython": lambda config: suites.cpython_suite(),
}


def unavailable(reason: str) -> NoReturn:
    """Skip, except under CI, where every suite must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: every upstream suite must run)", pytrace=False)
    pytest.skip(reason)


def test_excuses_are_one_line_of_an_allowed_kind() -> None:
    """Checked apart from the suites, so that it holds where they cannot run."""
    bad = {key: why for key, why in EXCUSED.items() if kind_of(why) is None}
    assert not bad


@pytest.mark.parametrize("name", SUITES)
def test_upstream_suite(
    name: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    try:
        suite = SUITES[name](request.config)
    except suites.SuiteMissing as exc:
        unavailable(f"{name} suite: {exc}")
    try:
        record = suites.run(suite, tmp_path)
    except suites.SuiteCrashed as exc:
        pytest.fail(str(exc), pytrace=False)

    verdict = judge(record, suite.files_by_name(), EXCUSED)
    swapped = ", ".join(record["swapped"]) or "nothing"
    print(f"{name} suite ({swapped} swapped): {verdict.summary()}")
    for test in verdict.excused:
        print(f"  excused {describe(test)}")
    for test in verdict.skipped:
        print(f"  skipped {test['id']}: {test['message']}")
    for test_id in verdict.unneeded:
        print(f"  excused, yet passed: {test_id}")
    for key, value in [
        ("passed", len(verdict.passed)),
        ("excused", len(verdict.excused)),
        ("failed", len(verdict.failed)),
        ("skipped", len(verdict.skipped)),
        ("total", verdict.total),
    ]:
        record_property(key, value)
    if verdict.problems:
        pytest.fail(
            f"{name} suite: {verdict.summary()}\n" + "\n".join(verdict.problems), pytrace=False
        )


# -- the judging itself, on a made-up suite ------------------------------------

FAKE_SUITE = """\
import pytest

def test_private(sem):
    sem.acquire_nowait()
    assert sem._value == 0

def test_wording(make):
    with pytest.raises(ValueError, match="^exact words$"):
        make(-1)
"""
FAKE_EXCUSES = {
    "test_fake.py::test_private": f"{PRIVATE}_value",
    "test_fake.py::test_wording": f"{WORDING}: 'exact words'",
}


def fake_record(outcome: Outcome, message: str, line: int) -> SuiteRecord:
    """A report of the made-up suite: test_wording passed, test_private ended
    with *outcome* at *line*."""
    return {
        "swapped": {"Semaphore": "Semaphore"},
        "errors": [],
        "tests": [
            {
                "id": "test_fake.py::test_private",
                "outcome": outcome,
                "message": message,
                "where": f"test_fake.py:{line}: ..." if outcome == "failed" else "",
            },
            {"id": "test_fake.py::test_wording", "outcome": "passed", "message": "", "where": ""},
        ],
    }


@pytest.fixture
def fake_suite(tmp_path: Path) -> dict[str, Path]:
    path = tmp_path / "test_fake.py"
    path.write_text(FAKE_SUITE, encoding="utf-8")
    return {path.name: path}


def test_judge_excuses_a_failure_where_the_excuse_says(fake_suite: dict[str, Path]) -> None:
    verdict = judge(fake_record("failed", "AssertionError: 1 != 0", 5), fake_suite, FAKE_EXCUSES)
    assert not verdict.problems
    assert verdict.summary() == "1 passed, 1 excused, 0 failed, 0 skipped, 2 total"
    assert verdict.unneeded == ["test_fake.py::test_wording"]


def test_judge_refuses_a_failure_before_the_excused_line(fake_suite: dict[str, Path]) -> None:
    verdict = judge(fake_record("failed", "loopsync.WouldBlock", 4), fake_suite, FAKE_EXCUSES)
    assert len(verdict.failed) == 1
    assert "before it reads a private attribute" in verdict.problems[0]


def test_judge_refuses_excuses_that_do_not_hold(fake_suite: dict[str, Path]) -> None:
    excuses = {
        "test_fake.py::test_private": f"{PRIVATE}_waiters",
        "test_fake.py::test_wording": FAST_ACQUIRE,
        "test_fake.py::test_gone": f"{PRIVATE}_value",
    }
    verdict = judge(fake_record("passed", "", 0), fake_suite, excuses)
    assert sorted(verdict.problems) == [
        "bad excuse for test_fake.py::test_private: the test reads no _waiters",
        "bad excuse for test_fake.py::test_wording: the test passes no fast_acquire=",
        "excused, but not in the suite: test_fake.py::test_gone",
    ]
