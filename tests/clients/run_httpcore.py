"""Run httpcore's own test suite before and after its ``_synchronization``
module is replaced by ``httpcore_synchronization.py`` (loopsync's).

Usage::

    python tests/clients/run_httpcore.py [--version X] [--backends asyncio,trio]

httpcore's sdist (of the installed httpcore's version, else of
:data:`PINNED_VERSION`) is fetched with ``pip download`` once and extracted
under ``.pytest_cache/d/loopsync-clients/``; nothing of httpcore's is kept in
this repository.  What its tests need (its extras' requirements, read from
the sdist's metadata, and :data:`TEST_TOOLS`) is installed into the running
Python's environment where missing.  The suite then runs twice, each time in
a fresh copy of the sdist: as shipped ("before"), and with
``httpcore/_synchronization.py`` replaced ("after"); every
``@pytest.mark.anyio`` test runs on each anyio backend (``httpcore_plugin``).

Prints the counts of each run by backend, and the tests that fail after but
not before.  Exits with 0 if there are none, 1 if there are, and 2 if the
suite could not be fetched or run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sdists import Unavailable, fetch_sdist, run_quietly

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CACHE = ROOT / ".pytest_cache" / "d" / "loopsync-clients"
REPLACEMENT = HERE / "httpcore_synchronization.py"

# The httpcore whose suite runs when none is installed.
PINNED_VERSION = "1.0.9"
# httpcore's extras its tests import (h2, socksio, trio, anyio).
EXTRAS = ("asyncio", "http2", "socks", "trio")
# What httpcore's tests need besides: pytest-trio runs its @pytest.mark.trio
# tests, pytest-httpbin serves its integration tests on 127.0.0.1.
TEST_TOOLS = ("pytest>=8", "pytest-trio>=0.8", "pytest-httpbin>=2.1")
# The plugins the suite runs with, in this order (autoloading is off):
# httpcore_plugin's anyio_backend fixture overrides anyio's.
PLUGINS = (
    "anyio.pytest_plugin",
    "pytest_trio.plugin",
    "pytest_httpbin.plugin",
    "httpcore_plugin",
)
OUTCOMES = ("passed", "failed", "skipped", "error", "xfailed", "xpassed")
FAILING = {"failed", "error"}

DOWNLOAD_TIMEOUT = 300.0
INSTALL_TIMEOUT = 600.0
RUN_TIMEOUT = 900.0


# -- fetching and installing ----------------------------------------------------


def httpcore_version() -> str:
    """The installed httpcore's version, or :data:`PINNED_VERSION`."""
    try:
        return importlib.metadata.version("httpcore")
    except importlib.metadata.PackageNotFoundError:
        return PINNED_VERSION


def _pip(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return run_quietly(
        [sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"],
        timeout=timeout,
    )


def _is_sdist_tree(path: Path) -> bool:
    return (path / "httpcore" / "_synchronization.py").is_file() and (path / "tests").is_dir()


def fetch(version: str, cache: Path = CACHE) -> Path:
    """Download httpcore *version*'s sdist and extract it to
    ``cache/httpcore-<version>``, once; return that directory."""
    target = cache / f"httpcore-{version}"
    if _is_sdist_tree(target):
        return target
    fetch_sdist("httpcore", version, target, timeout=DOWNLOAD_TIMEOUT)
    if not _is_sdist_tree(target):
        raise Unavailable(f"httpcore {version}'s sdist has no tests or no _synchronization")
    return target


def requirements(tree: Path, *, tests: bool = True) -> list[str]:
    """httpcore's requirements with :data:`EXTRAS`, from the sdist's
    ``PKG-INFO``, then (if *tests*) :data:`TEST_TOOLS`."""
    from packaging.requirements import Requirement

    found = []
    metadata = (tree / "PKG-INFO").read_text(encoding="utf-8")
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = Requirement(line.partition(":")[2].strip())
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in EXTRAS):
            requirement.marker = None
            found.append(str(requirement))
    return [*found, *TEST_TOOLS] if tests else found


def missing(required: list[str]) -> list[str]:
    """The requirements in *required* that the environment does not meet."""
    from packaging.requirements import Requirement

    unmet = []
    for text in required:
        requirement = Requirement(text)
        try:
            version = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            unmet.append(text)
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            unmet.append(text)
    return unmet


def install(required: list[str]) -> list[str]:
    """Install what of *required* is missing; return what was."""
    if importlib.util.find_spec("packaging") is None:  # pytest brings it
        done = _pip("install", "packaging", timeout=INSTALL_TIMEOUT)
        if done.returncode:
            raise Unavailable(f"could not install packaging: {done.stderr.strip()[-2000:]}")
    unmet = missing(required)
    if unmet:
        print(f"installing {' '.join(unmet)}", flush=True)
        done = _pip("install", *unmet, timeout=INSTALL_TIMEOUT)
        if done.returncode:
            raise Unavailable(f"could not install {unmet}: {done.stderr.strip()[-2000:]}")
        importlib.invalidate_caches()
    return unmet


def prepare(version: str | None = None, *, tests: bool = True) -> Path:
    """Fetch httpcore's sdist and install what it needs (and, if *tests*,
    what its tests need); return its tree."""
    tree = fetch(version or httpcore_version())
    install(requirements(tree, tests=tests))
    return tree


def copy_tree(tree: Path, destination: Path, *, replaced: bool) -> Path:
    """Copy the sdist *tree* to *destination*; if *replaced*, with
    ``httpcore/_synchronization.py`` replaced by :data:`REPLACEMENT`."""
    shutil.copytree(tree, destination, ignore=shutil.ignore_patterns("__pycache__"))
    if replaced:
        shutil.copyfile(REPLACEMENT, destination / "httpcore" / "_synchronization.py")
    return destination


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a Python that imports httpcore from its working
    directory, with this directory (and loopsync) on its path."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"PYTEST_ADDOPTS", "PYTEST_PLUGINS"}
    }
    path = [str(HERE)]
    if importlib.util.find_spec("loopsync") is None:  # a checkout not installed
        path.append(str(ROOT / "src"))
    if env.get("PYTHONPATH"):
        path.append(env["PYTHONPATH"])
    env.update(PYTHONPATH=os.pathsep.join(path), PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


# -- running --------------------------------------------------------------------


@dataclass
class Run:
    """How each test of one run of the suite ended."""

    label: str
    tests: dict[str, dict[str, str]]
    seconds: float

    def counts(self, group: str | None = None) -> Counter[str]:
        return Counter(
            test["outcome"]
            for test in self.tests.values()
            if group is None or test["group"] == group
        )

    def failing(self) -> set[str]:
        return {nodeid for nodeid, test in self.tests.items() if test["outcome"] in FAILING}


def run_suite(tree: Path, label: str, backends: tuple[str, ...], *, replaced: bool) -> Run:
    """Run httpcore's suite in *tree*; check it imported httpcore from there,
    with the ``_synchronization`` module expected."""
    report = tree.parent / f"{label}.json"
    log = tree.parent / f"{label}.log"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--color=no"]
    for plugin in PLUGINS:
        argv += ["-p", plugin]
    env = subprocess_env(
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
        LOOPSYNC_HTTPCORE_REPORT=str(report),
        LOOPSYNC_HTTPCORE_BACKENDS=",".join(backends),
    )
    started = time.perf_counter()
    try:
        with log.open("w", encoding="utf-8") as output:
            done = subprocess.run(
                [*argv, "tests"],
                cwd=tree,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT,
                check=False,
            )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"the {label} run took more than {RUN_TIMEOUT:.0f} s") from None
    seconds = time.perf_counter() - started
    output_tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
    if not report.is_file():
        raise Unavailable(
            f"the {label} run wrote no report (exit {done.returncode}):\n{output_tail}"
        )
    record = json.loads(report.read_text(encoding="utf-8"))
    imported = record["httpcore"] and Path(record["httpcore"]).resolve().is_relative_to(
        tree.resolve()
    )
    if not imported or record["uses_loopsync"] != replaced:
        raise Unavailable(
            f"the {label} run imported httpcore from {record['httpcore']}, and "
            f"_synchronization from {record['synchronization']} "
            f"({'with' if record['uses_loopsync'] else 'without'} loopsync)"
        )
    if not record["tests"]:
        raise Unavailable(f"the {label} run ran no test (exit {done.returncode}):\n{output_tail}")
    return Run(label, record["tests"], seconds)


def print_counts(runs: list[Run], groups: list[str]) -> None:
    header = f"{'tests':<10}{'run':<8}" + "".join(f"{name:>9}" for name in OUTCOMES)
    print(header)
    for group in [*groups, None]:
        for run in runs:
            counts = run.counts(group)
            cells = "".join(f"{counts[name]:>9}" for name in OUTCOMES)
            print(f"{group or 'all':<10}{run.label:<8}{cells}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", help="httpcore version (default: installed, or pinned)")
    parser.add_argument(
        "--backends", default="asyncio,trio", help="anyio backends (default: asyncio,trio)"
    )
    args = parser.parse_args(argv)
    backends = tuple(name for name in args.backends.split(",") if name)

    started = time.perf_counter()
    try:
        tree = prepare(args.version)
        print(f"httpcore {tree.name.partition('-')[2]}: {tree}", flush=True)
        with tempfile.TemporaryDirectory(prefix="loopsync-httpcore-") as tmp:
            runs = []
            for label, replaced in (("before", False), ("after", True)):
                copy = copy_tree(tree, Path(tmp) / label, replaced=replaced)
                runs.append(run_suite(copy, label, backends, replaced=replaced))
    except Unavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    before, after = runs

    groups = sorted({test["group"] for run in runs for test in run.tests.values()})
    print()
    print_counts(runs, groups)
    print()
    for run in runs:
        print(f"{run.label}: {run.seconds:.1f} s")
    for nodeid in sorted(before.failing()):
        print(
            f"before: {before.tests[nodeid]['outcome']}: {nodeid}: "
            f"{before.tests[nodeid]['message']}"
        )
    regressions = sorted(
        (after.failing() - before.failing()) | (before.tests.keys() - after.tests.keys())
    )
    for nodeid in regressions:
        test = after.tests.get(nodeid, {"outcome": "not run", "message": ""})
        print(f"REGRESSION: {test['outcome']}: {nodeid}: {test['message']}")
    total = time.perf_counter() - started
    verdict = f"{len(regressions)} regression(s)" if regressions else "no regression"
    print(f"\n{verdict}; {total:.1f} s in all")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
