"""Every program of up to three actions, against the oracle (see ``exhaustive``)."""

from __future__ import annotations

import sys

import pytest

from differential import asyncio_locks_313
from exhaustive import CASES, first_difference
from libs import AsyncioLib, TrioLib

LENGTHS = [1, 2, 3]


@pytest.mark.parametrize(("primitive", "family"), sorted(CASES))
def test_every_short_program_matches_the_oracle(primitive: str, family: str) -> None:
    if family == "asyncio":
        if primitive == "barrier" and sys.version_info < (3, 11):
            pytest.skip("the oracle, asyncio.Barrier of 3.13, needs Python 3.11's exceptions")
        asyncio_locks_313()  # skipped at once, or failed under CI, if there is no oracle
    lib = AsyncioLib() if family == "asyncio" else TrioLib()
    count, difference = first_difference(CASES[primitive, family], lib, LENGTHS)
    assert difference is None, f"after {count} programs: {difference}"
    assert count > 0
