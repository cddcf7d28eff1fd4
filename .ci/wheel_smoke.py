"""Smoke-test the loopsync wheel, installed alone in a new virtualenv.

Usage::

    VENV/bin/python -I .ci/wheel_smoke.py PATH/TO/pyproject.toml

``.ci/run`` runs it from a temporary directory with ``-I`` (neither the
script's directory nor the working directory on ``sys.path``), so that only
the installed wheel can be imported, never the checkout's ``src/``.  It checks
what ``pip install loopsync`` gives a user: sniffio is the only dependency
installed, ``import loopsync`` imports no async library, the package ships
``py.typed``, its version is the one pyproject.toml declares, and a Semaphore
and a Barrier work under asyncio.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import sysconfig
from pathlib import Path
from types import ModuleType
from typing import NoReturn

ASYNC_LIBRARIES = ("asyncio", "trio", "anyio", "uvloop")
"""What ``import loopsync`` must not import: it detects the library at first use."""

EXPECTED_DISTRIBUTIONS = {"loopsync", "sniffio"}
"""What installing the wheel without extras may bring into the virtualenv."""

BOOTSTRAP_DISTRIBUTIONS = {"pip", "setuptools"}
"""What ``python -m venv`` installs by itself (setuptools only before Python 3.12)."""


def fail(message: str) -> NoReturn:
    """Exit with status 1 and *message*."""
    sys.exit(f"wheel smoke test FAILED: {message}")


def import_loopsync() -> ModuleType:
    """Import loopsync, failing if that imported an async library."""
    preloaded = [name for name in ASYNC_LIBRARIES if name in sys.modules]
    if preloaded:
        fail(f"{', '.join(preloaded)} imported before loopsync, so the check would prove nothing")
    import loopsync

    imported = [name for name in ASYNC_LIBRARIES if name in sys.modules]
    if imported:
        fail(f"import loopsync imported {', '.join(imported)}")
    return loopsync


def check_installation(loopsync: ModuleType) -> None:
    """Check where loopsync comes from, what came with it, py.typed."""
    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    package = Path(str(loopsync.__file__)).resolve().parent
    if package != site_packages / "loopsync":
        fail(f"loopsync imported from {package}, not from the wheel in {site_packages}")
    if not (package / "py.typed").is_file():
        fail(f"no py.typed in {package}: type checkers would ignore the annotations")
    installed = {
        re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        for dist in importlib.metadata.distributions()
    }
    missing = EXPECTED_DISTRIBUTIONS - installed
    unexpected = installed - EXPECTED_DISTRIBUTIONS - BOOTSTRAP_DISTRIBUTIONS
    if missing or unexpected:
        fail(
            f"installing the wheel without extras should bring exactly "
            f"{', '.join(sorted(EXPECTED_DISTRIBUTIONS))}; missing: "
            f"{', '.join(sorted(missing)) or 'none'}, unexpected: "
            f"{', '.join(sorted(unexpected)) or 'none'}"
        )


def declared_version(pyproject: Path) -> str | None:
    """The version pyproject.toml declares; None under Python 3.10 (no tomllib)."""
    if sys.version_info >= (3, 11):
        import tomllib

        with pyproject.open("rb") as file:
            version: str = tomllib.load(file)["project"]["version"]
        return version
    return None


def check_version(loopsync: ModuleType, pyproject: Path) -> str:
    """Check that __version__, the wheel's metadata and pyproject.toml agree; return it."""
    version = getattr(loopsync, "__version__", None)
    # The wheel's metadata is built from pyproject.toml, so where tomllib is
    # missing this comparison still covers the declared version.
    metadata = importlib.metadata.version("loopsync")
    if version != metadata:
        fail(f"loopsync.__version__ is {version!r}, the wheel's metadata says {metadata!r}")
    declared = declared_version(pyproject)
    if declared is not None and declared != version:
        fail(f"loopsync.__version__ is {version!r}, pyproject.toml declares {declared!r}")
    return metadata


def use_under_asyncio(loopsync: ModuleType) -> None:
    """Run a contended Semaphore, a BoundedSemaphore and a Barrier under asyncio."""
    import asyncio  # only now: import_loopsync() checked that loopsync did not import it

    async def main() -> None:
        sem = loopsync.Semaphore(2)
        inside = most_inside = 0

        async def worker() -> None:
            nonlocal inside, most_inside
            async with sem:
                inside += 1
                most_inside = max(most_inside, inside)
                await asyncio.sleep(0)
                inside -= 1

        await asyncio.gather(*(worker() for _ in range(5)))
        if most_inside != 2 or sem.locked():
            fail(f"Semaphore(2): {most_inside} tasks held it at once, locked() is {sem.locked()}")

        bounded = loopsync.BoundedSemaphore(1)
        async with bounded:
            pass
        try:
            bounded.release()
        except ValueError:
            pass
        else:
            fail("BoundedSemaphore(1) released beyond its initial value without a ValueError")

        barrier = loopsync.Barrier(3)

        async def party() -> list[int]:
            return [await barrier.wait() for _ in range(2)]

        indices = await asyncio.gather(*(party() for _ in range(3)))
        for round_ in range(2):
            got = sorted(party_indices[round_] for party_indices in indices)
            if got != [0, 1, 2]:
                fail(f"Barrier(3), round {round_}: indices {got}, expected [0, 1, 2]")
        if barrier.n_waiting or barrier.broken:
            fail(f"Barrier(3) after two rounds: {barrier!r}")

    asyncio.run(main())


def main(argv: list[str]) -> None:
    """Run every check; exit with status 1 at the first that fails."""
    if len(argv) != 2:
        sys.exit(__doc__)
    loopsync = import_loopsync()
    check_installation(loopsync)
    version = check_version(loopsync, Path(argv[1]))
    use_under_asyncio(loopsync)
    print(f"wheel smoke test OK: loopsync {version}, alone with sniffio, under asyncio")


if __name__ == "__main__":
    main(sys.argv)
