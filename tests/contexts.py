"""The five ways of running async code, shared by the tests and the benchmark.

A :class:`Context` runs a coroutine function in a fresh event loop of its
library (asyncio, uvloop, trio, or anyio on asyncio or trio) and gives it the
operations the tests and the benchmark need, in the form native to that
library: a :class:`TaskGroup` of plain tasks cancelled with ``Task.cancel()``
under asyncio and uvloop, a nursery with one ``trio.CancelScope`` per task
under trio, an anyio task group with one ``anyio.CancelScope`` per task under
anyio; a checkpoint; a way to let every task run until all of them are
blocked; native events.

A sixth, :class:`EagerAsyncioContext`, asyncio with eager tasks, serves
only the differential tests.

The tests import these through ``libs``, under the names they use; the
benchmark through ``bench/_contexts.py``, which puts this directory on
``sys.path``.  uvloop is imported only when its context runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import anyio
import anyio.lowlevel
import trio
import trio.testing

__all__ = [
    "CONTEXTS",
    "AnyioContext",
    "AsyncioContext",
    "Context",
    "EagerAsyncioContext",
    "Handle",
    "TaskGroup",
    "TrioContext",
    "UvloopContext",
    "available_contexts",
]

T = TypeVar("T")
TaskFn = Callable[..., Awaitable[object]]

# How often settle() yields under asyncio; every scenario in the tests needs far
# fewer loop iterations than this to run to a standstill.
ASYNCIO_SETTLE_ITERATIONS = 20


class _Cancellable(Protocol):
    """What cancels one task: an asyncio task, or the cancel scope it runs in."""

    def cancel(self) -> object: ...


@dataclass
class Handle:
    """A task started by :meth:`TaskGroup.start`, and how it ended."""

    name: str
    outcome: str = "running"  # then "returned", "cancelled" or "raised"
    result: Any = None
    exception: BaseException | None = None
    _cancel: Callable[[], object] = field(default=lambda: None, repr=False)

    @property
    def done(self) -> bool:
        """True once the task has ended, whatever the outcome."""
        return self.outcome != "running"

    def cancel(self) -> None:
        """Cancel the task the way its library does."""
        self._cancel()


async def _record(
    handle: Handle, cancelled: type[BaseException], fn: TaskFn, args: tuple[object, ...]
) -> None:
    """Run ``fn(*args)`` and record in *handle* how it ended."""
    try:
        handle.result = await fn(*args)
    except cancelled:
        handle.outcome = "cancelled"
        raise
    except BaseException as exc:  # recorded for the test to look at
        handle.outcome = "raised"
        handle.exception = exc
    else:
        handle.outcome = "returned"


class TaskGroup:
    """The tasks started in one native nursery or task group.

    Every task runs inside a wrapper that counts it as finished, whatever the
    outcome, and records any exception other than cancellation in
    :attr:`errors`, so that a failing implementation is reported instead of
    tearing a benchmark run down.  A task started with :meth:`start` also
    records how it ended in the :class:`Handle` returned.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.spawned = 0
        self.finished = 0
        self.errors: list[str] = []
        self.handles: list[Handle] = []
        # Per task, in spawning order: the asyncio task, or its cancel scope.
        self._cancellables: list[Any] = []
        self._target = 0
        self._event: Any = None

    def spawn(self, fn: TaskFn, *args: object) -> _Cancellable:
        """Start ``fn(*args)`` as a new task; it runs once the caller yields.

        Return what cancels the task: the asyncio task itself, or the cancel
        scope the task runs in.
        """
        raise NotImplementedError

    def start(self, fn: TaskFn, *args: object, name: str = "") -> Handle:
        """Start ``fn(*args)`` as a new task, and return a handle on it."""
        handle = Handle(name or f"task{len(self.handles)}")
        self.handles.append(handle)
        handle._cancel = self.spawn(_record, handle, self.ctx.cancelled, fn, args).cancel
        return handle

    def cancel(self, index: int) -> None:
        """Cancel the task spawned *index*-th, the way its library does."""
        self._cancellables[index].cancel()

    def cancel_all(self) -> None:
        """Cancel every task still running."""
        for cancellable in self._cancellables:
            cancellable.cancel()

    def _abandon(self) -> None:
        """Stop waiting for tasks that ignored their cancellation."""
        raise NotImplementedError

    def _note_finished(self) -> None:
        """Count one more finished task; wake wait_finished() if it is due."""
        self.finished += 1
        event = self._event
        if event is not None and self.finished >= self._target:
            event.set()

    def _note_error(self, exc: BaseException) -> None:
        """Record an exception a task raised, as a failed check."""
        self.errors.append(f"task raised {type(exc).__name__}: {exc}")

    async def wait_finished(self, count: int, give_up_after: float) -> bool:
        """Wait until *count* tasks have finished; False if *give_up_after* s pass first."""
        if self.finished >= count:
            return True
        self._target = count
        self._event = event = self.ctx.new_event()
        await self.ctx.wait_event(event, give_up_after)
        self._event = None
        return self.finished >= count

    async def run_until(self, ready: Callable[[], bool], max_rounds: int = 1000) -> bool:
        """Let the tasks run until *ready()* is true; return False if it never is."""
        for _ in range(max_rounds):
            if ready():
                return True
            await self.ctx.checkpoint()
        return ready()


class _PlainTaskGroup(TaskGroup):
    """Plain asyncio tasks, each cancelled with ``Task.cancel()``."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._loop = asyncio.get_running_loop()
        self._abandoned = False

    async def _wrap(self, fn: TaskFn, args: tuple[object, ...]) -> None:
        """Run one task's function, counting it as finished whatever happens."""
        try:
            await fn(*args)
        except Exception as exc:
            self._note_error(exc)
        finally:
            self._note_finished()

    def spawn(self, fn: TaskFn, *args: object) -> _Cancellable:
        task = self._loop.create_task(self._wrap(fn, args))
        self._cancellables.append(task)
        self.spawned += 1
        return task

    def _abandon(self) -> None:
        # The loop cancels them again when it shuts down.
        self._abandoned = True

    async def _wait_all(self) -> None:
        """Wait for every task still running, as a nursery does when it closes."""
        if self.finished < self.spawned and not self._abandoned:
            running = [task for task in self._cancellables if not task.done()]
            await asyncio.gather(*running, return_exceptions=True)


class _ScopedTaskGroup(TaskGroup):
    """Tasks of a nursery or anyio task group, each in a cancel scope of its own."""

    def __init__(
        self, ctx: Context, spawner: Any, scope_factory: Callable[[], _Cancellable]
    ) -> None:
        super().__init__(ctx)
        self._spawner = spawner
        self._scope_factory = scope_factory

    async def _wrap(self, scope: Any, fn: TaskFn, args: tuple[object, ...]) -> None:
        """Run one task's function, counting it as finished whatever happens."""
        try:
            with scope:
                await fn(*args)
        except Exception as exc:
            self._note_error(exc)
        finally:
            self._note_finished()

    def spawn(self, fn: TaskFn, *args: object) -> _Cancellable:
        scope = self._scope_factory()
        self._cancellables.append(scope)
        self._spawner.start_soon(self._wrap, scope, fn, args)
        self.spawned += 1
        return scope

    def _abandon(self) -> None:
        # The nursery would wait for them forever: cancel it whole, the main
        # task of the run included.
        self._spawner.cancel_scope.cancel()


class Context:
    """One way of running async code: a library, and the event loop it uses."""

    name: str
    family: str
    """``"asyncio"`` or ``"trio"``: whose primitives and semantics apply."""
    cancelled: type[BaseException]
    """The exception a cancelled task sees."""
    cancels_woken_tasks = False
    """Whether cancelling reaches a task that was woken but has not run yet.

    Plain asyncio's ``Task.cancel()`` does; trio cannot, and anyio (on either
    backend) holds the cancellation back until the task has run.
    """

    def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: object) -> T:
        """Run ``fn(*args)`` to completion in a new event loop."""
        raise NotImplementedError

    async def checkpoint(self) -> None:
        """Let every other runnable task take a step."""
        raise NotImplementedError

    async def settle(self) -> None:
        """Let every task run until all of them are blocked."""
        raise NotImplementedError

    def new_event(self) -> Any:
        """Return a new event of the native kind."""
        raise NotImplementedError

    async def wait_event(self, event: Any, give_up_after: float) -> None:
        """Wait until *event* is set, or until *give_up_after* seconds have passed."""
        raise NotImplementedError

    def _open_group(self) -> contextlib.AbstractAsyncContextManager[TaskGroup]:
        """Open the native nursery or task group and wrap it in a TaskGroup."""
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def task_group(self, give_up_after: float | None = None) -> AsyncIterator[TaskGroup]:
        """Open a task group; on exit, wait for all its tasks, as a nursery does.

        With *give_up_after*, a task still running when the body ends is a
        failed check (see :attr:`TaskGroup.errors`): the tasks left are
        cancelled and given *give_up_after* seconds to finish, then abandoned.
        """
        async with self._open_group() as group:
            try:
                yield group
            finally:
                leftover = group.spawned - group.finished
                if give_up_after is not None and leftover:
                    group.errors.append(f"{leftover} task(s) still running at the end")
                    group.cancel_all()
                    if not await group.wait_finished(group.spawned, give_up_after):
                        group._abandon()

    async def start_queued(self, group: TaskGroup, fn: TaskFn, *args: object) -> Handle:
        """Start a task and let it run until it blocks.

        Tasks started one after the other this way reach the primitive in
        that order, even under trio, which shuffles tasks that become
        runnable together.
        """
        handle = group.start(fn, *args)
        await self.settle()
        return handle

    def __repr__(self) -> str:
        return self.name


class AsyncioContext(Context):
    """The default asyncio event loop, with plain tasks."""

    name = "asyncio"
    family = "asyncio"
    cancelled = asyncio.CancelledError
    cancels_woken_tasks = True

    def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: object) -> T:
        return asyncio.run(fn(*args))

    async def checkpoint(self) -> None:
        await asyncio.sleep(0)

    async def settle(self) -> None:
        for _ in range(ASYNCIO_SETTLE_ITERATIONS):
            await asyncio.sleep(0)

    def new_event(self) -> asyncio.Event:
        return asyncio.Event()

    async def wait_event(self, event: Any, give_up_after: float) -> None:
        timer = asyncio.get_running_loop().call_later(give_up_after, event.set)
        await event.wait()
        timer.cancel()

    @contextlib.asynccontextmanager
    async def _open_group(self) -> AsyncIterator[TaskGroup]:
        """Open the native nursery or task group and wrap it in a TaskGroup."""
        group = _PlainTaskGroup(self)
        try:
            yield group
        except BaseException:
            # As trio's nurseries do: a failing body cancels its tasks rather
            # than waiting for them forever.
            group.cancel_all()
            raise
        finally:
            await group._wait_all()


class EagerAsyncioContext(AsyncioContext):
    """The default asyncio event loop with ``asyncio.eager_task_factory``
    (Python 3.12+): a new task runs inside ``create_task()`` until it first
    blocks.  Not among :data:`CONTEXTS`: only the differential tests use it."""

    name = "asyncio+eager"

    def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: object) -> T:
        async def eagerly() -> T:
            asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
            return await fn(*args)

        return asyncio.run(eagerly())


class UvloopContext(AsyncioContext):
    """uvloop's event loop, with plain asyncio tasks."""

    name = "uvloop"

    def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: object) -> T:
        import uvloop

        return uvloop.run(fn(*args))


class TrioContext(Context):
    """trio, with a nursery and a cancel scope per task."""

    name = "trio"
    family = "trio"
    cancelled = trio.Cancelled

    def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: object) -> T:
        return trio.run(fn, *args)

    async def checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()

    async def settle(self) -> None:
        await trio.testing.wait_all_tasks_blocked()

    def new_event(self) -> trio.Event:
        return trio.Event()

    async def wait_event(self, event: Any, give_up_after: float) -> None:
        with trio.move_on_after(give_up_after):
            await event.wait()

    @contextlib.asynccontextmanager
    async def _open_group(self) -> AsyncIterator[TaskGroup]:
        """Open the native nursery or task group and wrap it in a TaskGroup."""
        async with trio.open_nursery() as nursery:
            yield _ScopedTaskGroup(self, nursery, trio.CancelScope)


class AnyioContext(Context):
    """anyio on one of its backends, with a task group and a cancel scope per task."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.name = f"anyio-{backend}"
        self.family = backend
        self.cancelled = asyncio.CancelledError if backend == "asyncio" else trio.Cancelled

    def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: object) -> T:
        return anyio.run(fn, *args, backend=self.backend)

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

    def new_event(self) -> anyio.Event:
        return anyio.Event()

    async def wait_event(self, event: Any, give_up_after: float) -> None:
        with anyio.move_on_after(give_up_after):
            await event.wait()

    @contextlib.asynccontextmanager
    async def _open_group(self) -> AsyncIterator[TaskGroup]:
        """Open the native nursery or task group and wrap it in a TaskGroup."""
        async with anyio.create_task_group() as task_group:
            yield _ScopedTaskGroup(self, task_group, anyio.CancelScope)


CONTEXTS: tuple[Context, ...] = (
    AsyncioContext(),
    UvloopContext(),
    TrioContext(),
    AnyioContext("asyncio"),
    AnyioContext("trio"),
)
"""Every context, in the order of the benchmark's table columns."""


def available_contexts() -> tuple[list[Context], list[str]]:
    """Return the contexts that can run here, and a note for each one that cannot."""
    usable: list[Context] = []
    notes: list[str] = []
    for ctx in CONTEXTS:
        if ctx.name == "uvloop":
            try:
                import uvloop  # noqa: F401
            except ImportError:
                notes.append("uvloop is not installed: the uvloop context is skipped")
                continue
        usable.append(ctx)
    return usable, notes
