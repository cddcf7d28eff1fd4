"""Running a snippet in a new interpreter, for what one process cannot undo
(the first import of a module, the first load of an adapter)."""

from __future__ import annotations

import subprocess
import sys


def python_output(code: str, stdin: bytes = b"") -> str:
    """Run *code* with this Python in a new process; return its stripped stdout."""
    return (
        subprocess.run([sys.executable, "-c", code], input=stdin, check=True, capture_output=True)
        .stdout.decode()
        .strip()
    )
