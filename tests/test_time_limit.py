"""The tests' time limit (:mod:`time_limit`): a hanging test ends the run,
failed, naming the test, and leaves no server behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).parent

CONFTEST = """
import time_limit
from redis_server import stop_every_server

def pytest_configure(config):
    time_limit.install(config, cleanups=[stop_every_server])
"""

# A test that passes, then one that starts a server and hangs where no
# cancellation reaches: an asyncio task that re-acquires a lock nobody
# releases, through every cancellation, as a Condition's wait() does.
TESTS_THAT_HANG = """
import asyncio
from pathlib import Path

from redis_server import RedisServer

def test_passes():
    pass

def test_hangs():
    server = RedisServer()
    server.start()
    Path("server.pid").write_text(str(server.pid))

    async def reacquire(lock):
        while True:
            try:
                await lock.acquire()
                return
            except asyncio.CancelledError:
                pass

    async def main():
        lock = asyncio.Lock()
        await lock.acquire()
        task = asyncio.create_task(reacquire(lock))
        await asyncio.sleep(0)
        task.cancel()
        await task

    asyncio.run(main())
"""


def run_pytest(directory: Path, limit: str) -> subprocess.CompletedProcess[str]:
    (directory / "conftest.py").write_text(CONFTEST)
    (directory / "test_hang.py").write_text(textwrap.dedent(TESTS_THAT_HANG))
    environment = dict(os.environ, PYTHONPATH=str(TESTS), LOOPSYNC_TEST_TIME_LIMIT=limit)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_hang.py"],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_hanging_test_ends_the_run_failed_and_named(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "1")
    assert result.returncode == 1
    assert "test_hang.py::test_hangs has run for 1 s (LOOPSYNC_TEST_TIME_LIMIT)" in result.stderr
    assert "Current thread" in result.stderr or "Thread 0x" in result.stderr
    # The passing test ran first; the hanging one never reports.
    assert result.stdout.startswith(".")
    pid = int((tmp_path / "server.pid").read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"the server the hanging test started (pid {pid}) still runs")


def test_a_limit_that_is_not_a_number_is_refused(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "soon")
    assert result.returncode == 4  # pytest's usage error
    assert "LOOPSYNC_TEST_TIME_LIMIT must be a number of seconds, not 'soon'" in result.stderr
    assert not (tmp_path / "server.pid").exists()
