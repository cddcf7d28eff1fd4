"""Run every example under every library it supports; exit 1 if any fails.

Each example runs in its own Python process, once per library, so that one
failure cannot hide another.  The examples import loopsync from this
checkout's ``src/`` directory, ahead of any installed copy.  A library that
is not installed (uvloop, say) is reported as skipped, not as a failure.

Run it with::

    python examples/run_all.py [-v]    # -v: also show each example's output
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from _runtimes import available

EXAMPLES_DIR = Path(__file__).resolve().parent
SRC_DIR = EXAMPLES_DIR.parent / "src"
TIMEOUT = 60.0

# Each example and the libraries it runs under (for anyio_pool.py, anyio backends).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "crawler.py": ("asyncio", "uvloop", "trio"),
    "anyio_pool.py": ("asyncio", "trio"),
    "barrier_simulation.py": ("asyncio", "uvloop", "trio"),
    "pipeline.py": ("asyncio", "uvloop", "trio"),
    # Two processes, the named library's and the other one's, share a limit.
    "shared_limit.py": ("asyncio", "trio"),
}


def run_example(script: str, library: str) -> tuple[bool, str]:
    """Run *script* under *library*; return whether it passed, and its output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC_DIR), env.get("PYTHONPATH")]))
    try:
        done = subprocess.run(
            [sys.executable, str(EXAMPLES_DIR / script), library],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {TIMEOUT:.0f} s"
    return done.returncode == 0, done.stdout + done.stderr


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    failed = skipped = runs = 0
    for script, libraries in EXAMPLES.items():
        for library in libraries:
            runs += 1
            label = f"{script:<22} {library:<8}"
            if not available(library):
                skipped += 1
                print(f"{label} skipped ({library} is not installed)")
                continue
            start = time.perf_counter()
            ok, output = run_example(script, library)
            print(f"{label} {'ok' if ok else 'FAILED':<6} {time.perf_counter() - start:5.2f} s")
            if not ok:
                failed += 1
            if verbose or not ok:
                print("".join(f"    {line}\n" for line in output.splitlines()), end="")
    passed = runs - failed - skipped
    print(f"{runs} runs: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
