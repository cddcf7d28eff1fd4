"""Run the same test code under asyncio, uvloop, trio and anyio.

Each :class:`Lib` runs a test function and gives it the few operations the
tests need (spawning, cancelling, letting tasks run) in the form native to the
library: plain asyncio tasks and ``Task.cancel()`` under asyncio and uvloop,
nurseries and cancel scopes under trio, anyio task groups and cancel scopes
under either anyio backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import trio
import trio.testing

# How often asyncio's settle() yields; every scenario in the tests needs far
# fewer loop iterations than this to run to a standstill.
ASYNCIO_SETTLE_ITERATIONS = 20


@dataclass
class Handle:
    """A task started by :meth:`TaskGroup.start`."""

    name: str
    outcome: str = "running"  # then "returned", "cancelled" or "raised"
    result: Any = None
    exception: BaseException | None = None
    _cancel: Callable[[], object] = field(default=lambda: None, repr=False)

    @property
    def done(self) -> bool:
        return self.outcome != "running"

    def cancel(self) -> None:
        """Cancel the task the way its library does."""
        self._cancel()


class TaskGroup:
    """Starts tasks and records how each one ended."""

    def __init__(self, lib: Lib) -> None:
        self._lib = lib
        self.handles: list[Handle] = []

    def start(self, func: Callable[..., Awaitable[Any]], *args: Any, name: str = "") -> Handle:
        handle = Handle(name or f"task{len(self.handles)}")
        self.handles.append(handle)
        self._lib._start(self, handle, func, args)
        return handle


class Lib:
    """One way of running async code."""

    async def start_queued(
        self, group: TaskGroup, func: Callable[..., Awaitable[Any]], *args: Any
    ) -> Handle:
        """Start a task and let it run until it blocks.

        Tasks started one after the other this way reach the primitive in
        that order, even under trio, which shuffles tasks that become
        runnable together.
        """
        handle = group.start(func, *args)
        await self.settle()
        return handle

    name: str
    family: str  # "asyncio" or "trio": whose semantics apply
    cancelled: type[BaseException]
    # Whether cancelling reaches a task that was woken but has not run yet.
    # Plain asyncio's Task.cancel() does; trio cannot, and anyio (on either
    # backend) holds the cancellation back until the task has run.
    cancels_woken_tasks = False

    def run(self, func: Callable[[], Awaitable[Any]]) -> Any:
        raise NotImplementedError

    async def checkpoint(self) -> None:
        raise NotImplementedError

    async def settle(self) -> None:
        """Let every task run until all of them are blocked."""
        raise NotImplementedError

    def task_group(self) -> contextlib.AbstractAsyncContextManager[TaskGroup]:
        raise NotImplementedError

    def _start(self, group: TaskGroup, handle: Handle, func: Any, args: Any) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


async def _record(handle: Handle, func: Any, args: Any, cancelled: type[BaseException]) -> None:
    try:
        handle.result = await func(*args)
    except cancelled:
        handle.outcome = "cancelled"
        raise
    except BaseException as exc:  # recorded for the test to look at
        handle.outcome = "raised"
        handle.exception = exc
    else:
        handle.outcome = "returned"


class AsyncioLib(Lib):
    name = family = "asyncio"
    cancelled = asyncio.CancelledError
    cancels_woken_tasks = True

    def run(self, func: Callable[[], Awaitable[Any]]) -> Any:
        return asyncio.run(func())  # type: ignore[arg-type]

    async def checkpoint(self) -> None:
        await asyncio.sleep(0)

    async def settle(self) -> None:
        for _ in range(ASYNCIO_SETTLE_ITERATIONS):
            await asyncio.sleep(0)

    @contextlib.asynccontextmanager
    async def task_group(self) -> AsyncIterator[TaskGroup]:
        group = TaskGroup(self)
        group.tasks = []  # type: ignore[attr-defined]
        try:
            yield group
        except BaseException:
            # As trio's nurseries do: a failing body cancels its tasks rather
            # than waiting for them forever.
            for task in group.tasks:  # type: ignore[attr-defined]
                task.cancel()
            raise
        finally:
            tasks = group.tasks  # type: ignore[attr-defined]
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and not isinstance(
                    result, asyncio.CancelledError
                ):
                    raise result

    def _start(self, group: TaskGroup, handle: Handle, func: Any, args: Any) -> None:
        task = asyncio.get_running_loop().create_task(
            _record(handle, func, args, asyncio.CancelledError)
        )
        handle._cancel = task.cancel
        group.tasks.append(task)  # type: ignore[attr-defined]


class UvloopLib(AsyncioLib):
    name = "uvloop"

    def run(self, func: Callable[[], Awaitable[Any]]) -> Any:
        import uvloop

        return uvloop.run(func())  # type: ignore[arg-type]


class TrioLib(Lib):
    name = family = "trio"
    cancelled = trio.Cancelled

    def run(self, func: Callable[[], Awaitable[Any]]) -> Any:
        return trio.run(func)

    async def checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()

    async def settle(self) -> None:
        await trio.testing.wait_all_tasks_blocked()

    @contextlib.asynccontextmanager
    async def task_group(self) -> AsyncIterator[TaskGroup]:
        async with trio.open_nursery() as nursery:
            group = TaskGroup(self)
            group.nursery = nursery  # type: ignore[attr-defined]
            yield group

    def _start(self, group: TaskGroup, handle: Handle, func: Any, args: Any) -> None:
        scope = trio.CancelScope()
        handle._cancel = scope.cancel

        async def task() -> None:
            with scope:
                await _record(handle, func, args, trio.Cancelled)

        group.nursery.start_soon(task)  # type: ignore[attr-defined]


class AnyioLib(Lib):
    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.name = f"anyio-{backend}"
        self.family = backend
        self.cancelled = asyncio.CancelledError if backend == "asyncio" else trio.Cancelled

    def run(self, func: Callable[[], Awaitable[Any]]) -> Any:
        return anyio.run(func, backend=self.backend)  # type: ignore[arg-type]

    async def checkpoint(self) -> None:
        await anyio.lowlevel.checkpoint()

    async def settle(self) -> None:
        if self.backend == "asyncio":
            # anyio's wait_all_tasks_blocked() also works here, but a fixed
            # number of iterations keeps asyncio runs exactly reproducible.
            for _ in range(ASYNCIO_SETTLE_ITERATIONS):
                await anyio.lowlevel.checkpoint()
        else:
            await anyio.wait_all_tasks_blocked()

    @contextlib.asynccontextmanager
    async def task_group(self) -> AsyncIterator[TaskGroup]:
        async with anyio.create_task_group() as task_group:
            group = TaskGroup(self)
            group.task_group = task_group  # type: ignore[attr-defined]
            yield group

    def _start(self, group: TaskGroup, handle: Handle, func: Any, args: Any) -> None:
        scope = anyio.CancelScope()
        handle._cancel = scope.cancel

        async def task() -> None:
            with scope:
                await _record(handle, func, args, anyio.get_cancelled_exc_class())

        group.task_group.start_soon(task)  # type: ignore[attr-defined]


LIBS: list[Lib] = [
    AsyncioLib(),
    *([UvloopLib()] if sys.platform != "win32" else []),
    TrioLib(),
    AnyioLib("asyncio"),
    AnyioLib("trio"),
]
