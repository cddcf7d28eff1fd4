"""Stands in for ``trustme`` where it is not installed.

anyio's ``tests/conftest.py`` imports trustme at the top for its TLS
fixtures, which none of the synchronization tests use; the harness puts this
directory on the path only when the real package is missing.
"""

from __future__ import annotations


class CA:
    """Refuses to be made: a test that needs TLS needs the real trustme."""

    def __init__(self) -> None:
        raise RuntimeError("trustme is not installed: pip install trustme")
