"""Fetching a project's sdist and running tools quietly, for the runners of
other projects' test suites (the clients', and anyio's in ``tests/upstream``)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

__all__ = ["Unavailable", "fetch_sdist", "run_quietly"]


class Unavailable(Exception):
    """A suite cannot be fetched, installed or run on this machine."""


def run_quietly(
    command: list[str], *, timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run *command* with no stdin and its output captured, and return it;
    raise :exc:`Unavailable` if it takes longer than *timeout* seconds."""
    try:
        return subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{command[:6]} took more than {timeout:.0f} s") from None


def fetch_sdist(
    project: str, version: str, target: Path, *, timeout: float, only: str | None = None
) -> None:
    """Download *project* *version*'s sdist with ``pip download`` and extract
    its top directory (of it, only the paths that start with *only*, if
    given) as *target*; if another run made *target* meanwhile, keep that one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        done = run_quietly(
            [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "download",
             "--no-binary", ":all:", "--no-deps", "-d", tmp, f"{project}=={version}"],
            timeout=timeout,
        )  # fmt: skip
        sdists = sorted(Path(tmp).glob("*.tar.gz"))
        if done.returncode or not sdists:
            why = (done.stderr.strip().splitlines() or ["no sdist"])[-1]
            raise Unavailable(f"could not download {project} {version}'s sdist: {why}")
        extracted = Path(tmp) / "extracted"
        with tarfile.open(sdists[0]) as archive:
            members = [
                member
                for member in archive.getmembers()
                if only is None or member.name.partition("/")[2].startswith(only)
            ]
            if hasattr(tarfile, "data_filter"):
                archive.extractall(extracted, members=members, filter="data")
            else:  # Pythons without the extraction filters
                archive.extractall(extracted, members=members)
        (root,) = extracted.iterdir()
        try:
            root.rename(target)
        except OSError:
            if not target.is_dir():
                raise
