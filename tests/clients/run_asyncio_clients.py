"""Run the test suites of python-telegram-bot, langchain-core and aiogram with
asyncio's primitives replaced by loopsync's (``asyncio_swap.py``).

Usage::

    python tests/clients/run_asyncio_clients.py [--before | --prepare-only] [CLIENT ...]

Each client's sdist (of the version in :data:`CLIENTS`) is fetched with
``pip download`` once and extracted under ``.pytest_cache/d/loopsync-clients/``,
and installed, with what its tests need, into a virtualenv of its own there;
nothing of the clients' is kept in this repository.  The suites then run at
the same time, each with loopsync taken from this checkout's ``src/``.  The
selections are the offline tests that pass with asyncio's own primitives;
with ``--before`` each suite also runs that way first, and the tests that
fail after but not before are listed.  With ``--prepare-only`` it fetches and
installs, and runs nothing: a run after it starts the suites at once.

Exits with 0 if every selected test passed and each client made loopsync
primitives, 1 if not, and 2 if a suite could not be fetched or run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
import xml.etree.ElementTree as ElementTree
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sdists import Unavailable, fetch_sdist, run_quietly

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CACHE = ROOT / ".pytest_cache" / "d" / "loopsync-clients"

INSTALL_TIMEOUT = 900.0
RUN_TIMEOUT = 900.0


@dataclass(frozen=True)
class Client:
    """One client: its sdist, what its tests need, and which tests run."""

    project: str
    version: str
    extras: str
    test_requirements: tuple[str, ...]
    pytest_args: tuple[str, ...]
    # Commands run in the extracted sdist once installed (``{python}``: the venv's).
    setup: tuple[tuple[str, ...], ...] = ()
    env: dict[str, str] = field(default_factory=dict)


CLIENTS = {
    client.project: client
    for client in (
        Client(
            "python-telegram-bot",
            "22.8",
            "all",
            (
                "pytest==9.0.3",
                "pytest-asyncio==0.21.2",
                "pytest-xdist==3.8.0",
                "flaky>=3.8.1",
                "beautifulsoup4",
                "tzdata",
                "pytz",
            ),
            # The extension's tests: the modules that use asyncio's primitives.
            # The tests that need Telegram's servers are marked "req", but two.
            # The webhook's tests over a unix socket bind one inside the tree,
            # whose path, deep in a checkout, can exceed the 107 bytes that a
            # socket address holds; the same tests over TCP run.  They mostly
            # sleep: four workers, as python-telegram-bot's own runs use
            # pytest-xdist.  Those of its tests that find the random port they
            # drew in use, or whose checks timed by sleeps come too early, run
            # again (``rerun_load_failures.py``).
            (
                "-p",
                "rerun_load_failures",
                "-n",
                "4",
                "--dist=loadgroup",
                "-m",
                "not req",
                "-k",
                "not (test_webhook_basic and (file_path or socket_object))",
                "tests/ext/test_application.py",
                "tests/ext/test_updater.py",
                "tests/ext/test_baseupdateprocessor.py",
                "tests/ext/test_conversationhandler.py",
                "tests/ext/test_ratelimiter.py",
                "tests/ext/_utils/test_networkloop.py",
                "tests/ext/test_basepersistence.py",
                "--deselect",
                "tests/ext/test_conversationhandler.py::TestConversationHandler"
                "::test_no_running_job_queue_warning[False]",
                "--deselect",
                "tests/ext/test_conversationhandler.py::TestConversationHandler"
                "::test_schedule_job_exception",
            ),
        ),
        Client(
            "langchain-core",
            "1.8.3",
            "",
            (
                "pytest>=9.0.3,<10",
                "pytest-asyncio>=1.3.0,<2",
                "pytest-mock>=3.10.0,<4",
                "pytest-socket>=0.7.0,<0.9",
                "syrupy>=5.0.0,<6",
                "freezegun>=1.2.2,<2",
                "responses>=0.25.0,<1",
                "blockbuster>=1.5.18,<1.6",
                "grandalf>=0.8.0,<1",
                "numpy>=1.26.4",
                "pytest-benchmark",
            ),
            # The unit tests, with sockets off, as langchain-core runs them.
            (
                "--benchmark-disable",
                "--disable-socket",
                "--allow-unix-socket",
                "tests/unit_tests",
                # Those that import langchain-tests, which wants its own langchain-core.
                "--ignore=tests/unit_tests/stores/test_in_memory.py",
                "--ignore=tests/unit_tests/vectorstores/test_in_memory.py",
                "--ignore=tests/unit_tests/language_models/test_compat_bridge.py",
                "--ignore=tests/unit_tests/indexing/test_in_memory_indexer.py",
            ),
            env={"LANGCHAIN_TRACING_V2": "", "LANGSMITH_TRACING": ""},
        ),
        Client(
            "aiogram",
            "3.31.0",
            "redis,mongo,proxy,i18n,signature,fast",
            (
                "pytest==9.0.3",
                "pytest-asyncio",
                "pytest-mock==3.15.1",
                "pytest-aiohttp==1.1.0",
                "aresponses==3.0.0",
                "pytz",
                "pycryptodomex==3.23.0",
            ),
            # Its Redis and MongoDB tests skip themselves without --redis/--mongo.
            ("tests",),
            # The sdist has the translations the i18n tests read as .po only.
            setup=(
                (
                    "{python}",
                    "-m",
                    "babel.messages.frontend",
                    "compile",
                    "-f",
                    "-d",
                    "tests/data/locales",
                    "-D",
                    "messages",
                ),
            ),
        ),
    )
}


def _run(command: list[str], *, timeout: float, cwd: Path | None = None) -> None:
    done = run_quietly(command, timeout=timeout, cwd=cwd)
    if done.returncode:
        raise Unavailable(f"{command[:6]} failed: {(done.stderr or done.stdout)[-2000:]}")


def prepare(client: Client) -> tuple[Path, Path]:
    """Fetch, extract and install *client* once; return its tree and Python."""
    # Per Python: the virtualenv is made with the running interpreter.
    name = f"{client.project}-{client.version}-py{sys.version_info[0]}.{sys.version_info[1]}"
    home = CACHE / name
    tree, python, ready = home / "tree", home / "venv" / "bin" / "python", home / "ready"
    # What was installed: a change to it prepares the client again.
    recipe = repr((client.extras, client.test_requirements, client.setup))
    if ready.is_file() and ready.read_text() == recipe:
        return tree, python
    if tree.exists():  # from a run that did not finish
        shutil.rmtree(tree)
    fetch_sdist(client.project, client.version, tree, timeout=INSTALL_TIMEOUT)
    venv.create(home / "venv", with_pip=True, clear=True)
    extras = f"[{client.extras}]" if client.extras else ""
    _run(
        [str(python), "-m", "pip", "--disable-pip-version-check", "-q", "install",
         f"{tree}{extras}", "sniffio", *client.test_requirements],
        timeout=INSTALL_TIMEOUT,
    )  # fmt: skip
    for command in client.setup:
        _run([part.format(python=python) for part in command], timeout=300.0, cwd=tree)
    ready.write_text(recipe)
    return tree, python


@dataclass
class Result:
    """How one run of a suite ended."""

    outcomes: dict[str, str]
    created: dict[str, int]
    seconds: float
    messages: dict[str, str]  # the first line of each failure's or error's message
    rerun: set[str]  # the tests run again, and why (rerun_load_failures.py)

    def counts(self) -> Counter[str]:
        return Counter(self.outcomes.values())

    def failing(self) -> set[str]:
        return {test for test, outcome in self.outcomes.items() if outcome in {"failed", "error"}}


def _outcomes(junit: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Return each test's outcome, and the message of each that failed."""
    outcomes, messages = {}, {}
    for case in ElementTree.parse(junit).iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in {"failure", "error"}:
                outcome = "failed" if child.tag == "failure" else "error"
                messages[test] = (child.get("message") or "").strip().partition("\n")[0][:300]
                break
            if child.tag == "skipped":
                outcome = "skipped"
        outcomes[test] = outcome
    return outcomes, messages


def start(
    client: Client, tree: Path, python: Path, label: str, work: Path
) -> subprocess.Popen[bytes]:
    """Start *client*'s suite; *label* "before" leaves asyncio's primitives in place."""
    env = {**os.environ, **client.env}
    for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONPATH"):
        env.pop(name, None)
    env.update(
        PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT / "src")]),
        LOOPSYNC_SWAP_REPORT=str(work / f"{client.project}-{label}.json"),
        LOOPSYNC_RERUN_LOG=str(work / f"{client.project}-{label}.rerun"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    if label == "before":
        env["LOOPSYNC_SWAP_OFF"] = "1"
    command = [
        str(python), "-m", "pytest", "-q", "-p", "asyncio_swap", "-p", "no:cacheprovider",
        f"--junitxml={work / f'{client.project}-{label}.xml'}", *client.pytest_args,
    ]  # fmt: skip
    # The child writes to its own copy of the file descriptor.
    with (work / f"{client.project}-{label}.log").open("w") as log:
        return subprocess.Popen(
            command,
            cwd=tree,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def finish(
    client: Client, process: subprocess.Popen[bytes], label: str, work: Path, started: float
) -> Result:
    """Wait for a run started by :func:`start`; check it used this loopsync."""
    try:
        process.wait(timeout=max(1.0, RUN_TIMEOUT - (time.perf_counter() - started)))
    except subprocess.TimeoutExpired:
        process.kill()
        raise Unavailable(
            f"{client.project} ({label}) took more than {RUN_TIMEOUT:.0f} s"
        ) from None
    seconds = time.perf_counter() - started
    junit, report = (work / f"{client.project}-{label}.{kind}" for kind in ("xml", "json"))
    if not junit.is_file() or not report.is_file():
        tail = (work / f"{client.project}-{label}.log").read_text(errors="replace")[-3000:]
        raise Unavailable(f"{client.project} ({label}) wrote no report:\n{tail}")
    record = json.loads(report.read_text())
    if not Path(record["loopsync"]).resolve().is_relative_to(ROOT / "src"):
        raise Unavailable(f"{client.project} imported loopsync from {record['loopsync']}")
    outcomes, messages = _outcomes(junit)
    rerun_log = work / f"{client.project}-{label}.rerun"
    # flaky asks the rerun filter twice about the same failure.
    rerun = set(rerun_log.read_text().splitlines()) if rerun_log.is_file() else set()
    return Result(outcomes, record["created"], seconds, messages, rerun)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clients", nargs="*", metavar="CLIENT", help=", ".join(CLIENTS))
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--before", action="store_true", help="also run with asyncio's own")
    modes.add_argument("--prepare-only", action="store_true", help="fetch and install, run nothing")
    args = parser.parse_args(argv)
    unknown = set(args.clients) - CLIENTS.keys()
    if unknown:
        parser.error(f"unknown client(s): {', '.join(sorted(unknown))}")
    clients = [CLIENTS[name] for name in args.clients or CLIENTS]
    labels = ("before", "after") if args.before else ("after",)

    try:
        prepared = {}
        for client in clients:
            print(f"{client.project} {client.version}: preparing", flush=True)
            prepared[client.project] = prepare(client)
        if args.prepare_only:
            return 0
        results: dict[tuple[str, str], Result] = {}
        with tempfile.TemporaryDirectory(prefix="loopsync-clients-") as tmp:
            work = Path(tmp)
            for label in labels:
                started = time.perf_counter()
                running = [
                    (client, start(client, *prepared[client.project], label, work))
                    for client in clients
                ]
                for client, process in running:
                    results[client.project, label] = finish(client, process, label, work, started)
    except Unavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    failed = False
    for client in clients:
        print(f"\n{client.project} {client.version}")
        for label in labels:
            result = results[client.project, label]
            counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(result.counts().items()))
            made = ", ".join(f"{n} {name}" for name, n in sorted(result.created.items()))
            print(f"  {label}: {counts} (done {result.seconds:.0f} s after the suites started)")
            for line in sorted(result.rerun):
                print(f"  ({label}) {line}")
            if label == "after":
                print(f"  loopsync primitives made: {made or 'none'}")
                failed |= not result.created
                for test in sorted(result.failing()):
                    failed = True
                    print(f"  FAILED after: {test}\n    {result.messages.get(test, '')}")
        if args.before:
            before, after = results[client.project, "before"], results[client.project, "after"]
            for test in sorted(after.failing() - before.failing()):
                print(f"  REGRESSION: {test}")
    print("\nevery selected test passed on loopsync" if not failed else "\nFAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
