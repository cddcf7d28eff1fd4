"""Runs every ``async def`` test under each library in ``libs.LIBS``.

An async test names the ``lib`` argument to get the :class:`libs.Lib` it runs
under.  ``@pytest.mark.family("asyncio")`` (or ``"trio"``) keeps a test to
the libraries with those semantics; ``@pytest.mark.libs("trio", ...)`` names
the libraries outright.  Each test has a time limit (see :mod:`time_limit`).
"""

from __future__ import annotations

import functools
import inspect

# pytest imports tracemalloc when it first reports an object collected with an
# error (coredis's unclosed streams, see pyproject.toml).  Imported here, it is
# never half-imported when a collection during that import reports another.
import tracemalloc  # noqa: F401
from collections.abc import Iterator
from types import ModuleType
from typing import Any

# anyio is a pytest plugin, so pytest rewrites its modules as they are
# imported, and anyio imports its trio backend only when a test first runs on
# it.  On Python 3.11.7 a rewrite in the middle of a test can fail with
# "AST constructor recursion depth mismatch" (CPython gh-106905, fixed in
# 3.11.8).  Imported here, the backend is rewritten before any test runs.
import anyio._backends._trio  # noqa: F401
import pytest

import time_limit
from differential import asyncio_locks_313
from libs import LIBS
from redis_server import RedisServer, stop_every_server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "family(name): only libraries with these semantics")
    config.addinivalue_line("markers", "libs(*names): only these libraries")
    time_limit.install(config, cleanups=[stop_every_server])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "lib" not in metafunc.fixturenames:
        return
    libs = LIBS
    family = metafunc.definition.get_closest_marker("family")
    if family is not None:
        libs = [lib for lib in libs if lib.family in family.args]
    names = metafunc.definition.get_closest_marker("libs")
    if names is not None:
        libs = [lib for lib in libs if lib.name in names.args]
    metafunc.parametrize("lib", libs, ids=[lib.name for lib in libs])


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    kwargs: dict[str, Any] = {
        name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames
    }
    pyfuncitem.funcargs["lib"].run(functools.partial(func, **kwargs))
    return True


@pytest.fixture(scope="session")
def locks() -> ModuleType:
    """asyncio's locks of Python 3.13, the differential tests' oracle (skips,
    or fails under CI, without)."""
    return asyncio_locks_313()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real server on 127.0.0.1, shared by the tests that only use it."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def private_redis_server() -> Iterator[RedisServer]:
    """A server of the test's own, which it may restart, pause or kill."""
    server = RedisServer()
    server.start()
    yield server
    server.close()
