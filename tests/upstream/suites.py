"""Find each upstream suite (fetching anyio's), and run it in a subprocess.

A suite that cannot be had raises :exc:`SuiteMissing`; the test module
turns that into a skip, or a failure under CI.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from clients.sdists import Unavailable, fetch_sdist
from upstream import results
from upstream.pytest_report import REPORT_ENV

HERE = Path(__file__).resolve().parent
TESTS_DIR = HERE.parent  # on the subprocess's path, for ``import upstream``
STUBS_DIR = HERE / "stubs"

CPYTHON_VERSION = "3.13"
CPYTHON_OVERRIDE_ENV = "LOOPSYNC_CPYTHON_TEST_LOCKS"

# The most a suite may take to run, and a download to finish.
RUN_TIMEOUT = 300.0
DOWNLOAD_TIMEOUT = 300.0

# What the subprocess's pytest is told instead of any configuration file it
# might find (such as this project's own, above a virtualenv it holds).
PYTEST_INI = """\
[pytest]
xfail_strict = true
filterwarnings = error
"""


class SuiteMissing(Exception):
    """The suite cannot be found or fetched on this machine."""


@dataclass(frozen=True)
class Suite:
    """How to run one upstream suite."""

    name: str
    # The suite's files; their base names start the ids of its tests.
    files: tuple[Path, ...]
    # What follows ``python`` on the command line.
    argv: tuple[str, ...]
    # The values of the subprocess's pytest.ini, past PYTEST_INI's.
    ini: str = ""
    # Directories put on the subprocess's path after TESTS_DIR.
    path: tuple[Path, ...] = ()

    def files_by_name(self) -> dict[str, Path]:
        """The suite's files by base name, as test ids name them."""
        return {path.name: path for path in self.files}


def _pytest_argv(*plugins: str) -> tuple[str, ...]:
    """``-m pytest`` with no cache, *plugins* and the report's plugin."""
    options: list[str] = []
    for plugin in ("no:cacheprovider", *plugins, "upstream.pytest_report"):
        options += ["-p", plugin]
    return ("-m", "pytest", "-q", "-rN", *options)


# -- trio ---------------------------------------------------------------------


def trio_suite() -> Suite:
    """trio's ``_tests/test_sync.py``, from the installed trio."""
    spec = importlib.util.find_spec("trio")
    if spec is None or spec.origin is None:
        raise SuiteMissing("trio is not installed")
    test_sync = Path(spec.origin).parent / "_tests" / "test_sync.py"
    if not test_sync.is_file():
        raise SuiteMissing(f"the installed trio has no {test_sync}")
    argv = _pytest_argv("trio._tests.pytest_plugin", "upstream.trio_plugin")
    return Suite("trio", (test_sync,), (*argv, str(test_sync)))


# -- anyio --------------------------------------------------------------------


def _download_anyio_tests(version: str, cache: Path) -> Path:
    """Fetch anyio's sdist and extract its ``tests`` directory to
    ``cache/anyio-<version>/tests``, once; return that directory's parent."""
    cache = cache.resolve()
    target = cache / f"anyio-{version}"
    if (target / "tests" / "test_synchronization.py").is_file():
        return target
    try:
        fetch_sdist("anyio", version, target, timeout=DOWNLOAD_TIMEOUT, only="tests/")
    except Unavailable as exc:
        raise SuiteMissing(str(exc)) from None
    return target


def anyio_suite(cache: Path) -> Suite:
    """anyio's ``tests/test_synchronization.py``, from the sdist of the
    installed anyio's version (downloaded once into *cache*)."""
    try:
        version = importlib.metadata.version("anyio")
    except importlib.metadata.PackageNotFoundError:
        raise SuiteMissing("anyio is not installed") from None
    root = _download_anyio_tests(version, cache)
    test_file = root / "tests" / "test_synchronization.py"
    if not test_file.is_file():
        raise SuiteMissing(f"anyio {version}'s sdist has no tests/test_synchronization.py")
    argv = _pytest_argv("anyio.pytest_plugin", "upstream.anyio_plugin")
    # anyio's conftest imports trustme for its TLS fixtures, unused here.
    path = () if importlib.util.find_spec("trustme") else (STUBS_DIR,)
    return Suite(
        "anyio",
        (test_file,),
        (*argv, str(test_file)),
        ini="anyio_mode = auto\n",
        path=path,
    )


# -- CPython ------------------------------------------------------------------


def pyenv_root() -> Path:
    """Where pyenv keeps its Pythons."""
    root = os.environ.get("PYENV_ROOT")
    if root:
        return Path(root)
    pyenv = shutil.which("pyenv")
    if pyenv:
        done = subprocess.run(
            [pyenv, "root"], capture_output=True, text=True, timeout=30, check=False
        )
        if done.returncode == 0 and done.stdout.strip():
            return Path(done.stdout.strip())
    return Path.home() / ".pyenv"


def _cpython_test_locks() -> Path:
    override = os.environ.get(CPYTHON_OVERRIDE_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise SuiteMissing(f"${CPYTHON_OVERRIDE_ENV} names no file: {override}")
        return path
    relative = Path(f"lib/python{CPYTHON_VERSION}/test/test_asyncio/test_locks.py")
    found: dict[tuple[int, ...], Path] = {}
    versions = pyenv_root() / "versions"
    if versions.is_dir():
        for prefix in versions.iterdir():
            match = re.fullmatch(re.escape(CPYTHON_VERSION) + r"\.(\d+)", prefix.name)
            if match and (prefix / relative).is_file():
                found[(int(match[1]),)] = prefix / relative
    if found:
        return found[max(found)]
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == CPYTHON_VERSION:
        own = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_asyncio" / "test_locks.py"
        if own.is_file():
            return own
    raise SuiteMissing(
        f"no Python {CPYTHON_VERSION} test_locks.py: none under {versions}, and "
        f"${CPYTHON_OVERRIDE_ENV} is not set"
    )


def cpython_suite() -> Suite:
    """``test_locks.py`` and ``test_pep492.py`` of CPython 3.13's test suite."""
    test_locks = _cpython_test_locks()
    test_pep492 = test_locks.with_name("test_pep492.py")
    if not test_pep492.is_file():
        raise SuiteMissing(f"no test_pep492.py beside {test_locks}")
    files = (test_locks, test_pep492)
    return Suite("cpython", files, ("-m", "upstream.cpython_runner", "{report}", *map(str, files)))


# -- running ------------------------------------------------------------------


class SuiteCrashed(Exception):
    """The subprocess ended without writing its report, or took too long."""


def run(suite: Suite, workdir: Path) -> results.SuiteRecord:
    """Run *suite* in a subprocess, in *workdir*; return its report."""
    report = workdir / "report.json"
    ini = workdir / "pytest.ini"
    ini.write_text(PYTEST_INI + suite.ini, encoding="utf-8")
    argv = [arg.replace("{report}", str(report)) for arg in suite.argv]
    if argv[:2] == ["-m", "pytest"]:
        # Test ids start with the file's name: the rootdir is the file's own.
        argv += ["-c", str(ini), "--rootdir", str(suite.files[0].parent)]

    env = {
        name: value
        for name, value in os.environ.items()
        # The outer run's pytest options are not the suite's.
        if name not in {"PYTEST_ADDOPTS", "PYTEST_PLUGINS"}
    }
    path = [str(TESTS_DIR), *map(str, suite.path)]
    if env.get("PYTHONPATH"):
        path.append(env["PYTHONPATH"])
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(path),
            # Nothing is written beside the suites (site-packages, the stdlib).
            "PYTHONDONTWRITEBYTECODE": "1",
            # Only the plugins named on the command line.
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            REPORT_ENV: str(report),
        }
    )
    try:
        done = subprocess.run(
            [sys.executable, *argv],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SuiteCrashed(f"{suite.name} took more than {RUN_TIMEOUT:.0f} s") from exc
    if not report.is_file():
        output = (done.stdout + done.stderr).strip()[-3000:]
        raise SuiteCrashed(f"{suite.name} wrote no report (exit {done.returncode}):\n{output}")
    return results.read(report)
