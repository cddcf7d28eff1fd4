"""Check that an sdist holds what a downstream packager builds and tests from.

Usage::

    python .ci/check_sdist.py dist/loopsync-VERSION.tar.gz

Packagers build the wheel from the sdist and run the tests from it, so every
file of ``src/`` and ``tests/`` that git tracks must be in it, with the
README, the licence, the changelog and pyproject.toml; and nothing from a
cache or a virtualenv may be.  Run from a git checkout, as ``.ci/run`` is.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent

REQUIRED_FILES = ("README.md", "LICENSE", "CHANGELOG.md", "pyproject.toml", "PKG-INFO")
REQUIRED_TREES = ("src", "tests")
"""Directories whose every tracked file must be in the sdist."""

JUNK_DIRECTORIES = {"__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache"}


def tracked_files(tree: str) -> set[str]:
    """The files under *tree* that git tracks and that exist in the checkout."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--", tree],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {name for name in listing.split("\0") if name and (ROOT / name).is_file()}


def is_junk(name: str) -> bool:
    """True for a cache, a virtualenv, compiled bytecode or coverage data."""
    path = PurePosixPath(name)
    return (
        any(part in JUNK_DIRECTORIES or part.startswith(".venv") for part in path.parts)
        or path.suffix in (".pyc", ".pyo")
        or path.name.startswith(".coverage")
    )


def problems(sdist: Path) -> list[str]:
    """Everything wrong with *sdist*, as messages."""
    with tarfile.open(sdist) as tar:
        members = [member.name for member in tar.getmembers() if member.isfile()]
    roots = {name.split("/", 1)[0] for name in members}
    if len(roots) != 1:
        return [f"expected one top-level directory, found {sorted(roots)}"]
    files = {name.split("/", 1)[1] for name in members if "/" in name}
    required = set(REQUIRED_FILES).union(*(tracked_files(tree) for tree in REQUIRED_TREES))
    found = [f"missing: {name}" for name in sorted(required - files)]
    found += [f"should not be shipped: {name}" for name in sorted(files) if is_junk(name)]
    return found


def main(argv: list[str]) -> int:
    """Check the sdist named on the command line; 1 if anything is wrong."""
    if len(argv) != 2:
        sys.exit(__doc__)
    sdist = Path(argv[1])
    found = problems(sdist)
    for problem in found:
        print(f"{sdist.name}: {problem}", file=sys.stderr)
    if found:
        return 1
    print(f"{sdist.name}: README, licence, changelog, src/ and tests/ all there")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
