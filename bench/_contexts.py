"""The event loops a benchmark runs under, and how each one spawns and cancels tasks.

A :class:`Context` starts a fresh event loop for every run and hands the run a
:class:`Group` of tasks.  Each group uses the native mechanics of its library:
plain tasks and ``Task.cancel()`` under asyncio and uvloop, a nursery and one
``trio.CancelScope`` per task under trio, a task group and one
``anyio.CancelScope`` per task under anyio.  The workloads are written once
against these two classes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import trio

__all__ = ["CONTEXTS", "Context", "Group", "available_contexts"]

T = TypeVar("T")
TaskFn = Callable[..., Awaitable[object]]


class Group:
    """Tasks spawned by one run, with a count of those that have finished.

    Every task runs inside a wrapper that counts it as finished, whatever the
    outcome, and records any exception other than cancellation in
    :attr:`errors`, so that a failing implementation is reported instead of
    tearing the run down.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.spawned = 0
        self.finished = 0
        self.errors: list[str] = []
        self._target = 0
        self._event: Any = None

    def spawn(self, fn: TaskFn, *args: object) -> None:
        """Start ``fn(*args)`` as a new task; it runs once the caller yields."""
        raise NotImplementedError

    def cancel(self, index: int) -> None:
        """Cancel the task spawned *index*-th, the way its library does."""
        raise NotImplementedError

    def _cancel_all(self) -> None:
        """Cancel every task still running (cleanup after a failed check)."""
        raise NotImplementedError

    def _abandon(self) -> None:
        """Stop waiting for tasks that ignored their cancellation.

        Plain asyncio tasks need nothing: the loop cancels them at shutdown.
        """

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

    async def settle(self, ready: Callable[[], bool], max_rounds: int = 1000) -> bool:
        """Let the tasks run until *ready()* is true; return False if it never is."""
        for _ in range(max_rounds):
            if ready():
                return True
            await self.ctx.checkpoint()
        return ready()


class _AsyncioGroup(Group):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._loop = asyncio.get_running_loop()
        self._tasks: list[asyncio.Task[None]] = []

    async def _wrap(self, fn: TaskFn, args: tuple[object, ...]) -> None:
        """Run one task's function, counting it as finished whatever happens."""
        try:
            await fn(*args)
        except Exception as exc:
            self._note_error(exc)
        finally:
            self._note_finished()

    def spawn(self, fn: TaskFn, *args: object) -> None:
        self._tasks.append(self._loop.create_task(self._wrap(fn, args)))
        self.spawned += 1

    def cancel(self, index: int) -> None:
        self._tasks[index].cancel()

    def _cancel_all(self) -> None:
        for task in self._tasks:
            task.cancel()


class _ScopedGroup(Group):
    """A group whose tasks each run inside a cancel scope of their own."""

    def __init__(self, ctx: Context, spawner: Any, scope_factory: Callable[[], Any]) -> None:
        super().__init__(ctx)
        self._spawner = spawner
        self._scope_factory = scope_factory
        self._scopes: list[Any] = []

    async def _wrap(self, scope: Any, fn: TaskFn, args: tuple[object, ...]) -> None:
        """Run one task's function, counting it as finished whatever happens."""
        try:
            with scope:
                await fn(*args)
        except Exception as exc:
            self._note_error(exc)
        finally:
            self._note_finished()

    def spawn(self, fn: TaskFn, *args: object) -> None:
        scope = self._scope_factory()
        self._scopes.append(scope)
        self._spawner.start_soon(self._wrap, scope, fn, args)
        self.spawned += 1

    def cancel(self, index: int) -> None:
        self._scopes[index].cancel()

    def _cancel_all(self) -> None:
        for scope in self._scopes:
            scope.cancel()

    def _abandon(self) -> None:
        # The nursery would wait for them forever: cancel it whole, this run's
        # main task included.
        self._spawner.cancel_scope.cancel()


class Context:
    """One way of running async code: a library, and the event loop it uses."""

    name: str
    family: str
    """``"asyncio"`` or ``"trio"``: whose primitives and semantics apply."""

    def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: object) -> T:
        """Run ``fn(*args)`` to completion in a new event loop."""
        raise NotImplementedError

    @property
    def cancelled_error(self) -> type[BaseException]:
        """The exception a cancelled task sees."""
        raise NotImplementedError

    async def checkpoint(self) -> None:
        """Let every other runnable task take a step."""
        raise NotImplementedError

    def new_event(self) -> Any:
        """Return a new event of the native kind."""
        raise NotImplementedError

    async def wait_event(self, event: Any, give_up_after: float) -> None:
        """Wait until *event* is set, or until *give_up_after* seconds have passed."""
        raise NotImplementedError

    def _open_group(self) -> contextlib.AbstractAsyncContextManager[Group]:
        """Open the native nursery or task group and wrap it in a Group."""
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def group(self, give_up_after: float) -> AsyncIterator[Group]:
        """Open a task group; on exit, any task still running is a failed check.

        Such tasks are cancelled and given *give_up_after* seconds to finish.
        """
        async with self._open_group() as group:
            try:
                yield group
            finally:
                leftover = group.spawned - group.finished
                if leftover:
                    group.errors.append(f"{leftover} task(s) still running at the end")
                    group._cancel_all()
                    if not await group.wait_finished(group.spawned, give_up_after):
                        group._abandon()

    def __repr__(self) -> str:
        return self.name


class AsyncioContext(Context):
    """The default asyncio event loop, with plain tasks."""

    name = "asyncio"
    family = "asyncio"

    def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: object) -> T:
        return asyncio.run(fn(*args))

    @property
    def cancelled_error(self) -> type[BaseException]:
        return asyncio.CancelledError

    async def checkpoint(self) -> None:
        await asyncio.sleep(0)

    def new_event(self) -> asyncio.Event:
        return asyncio.Event()

    async def wait_event(self, event: Any, give_up_after: float) -> None:
        timer = asyncio.get_running_loop().call_later(give_up_after, event.set)
        await event.wait()
        timer.cancel()

    @contextlib.asynccontextmanager
    async def _open_group(self) -> AsyncIterator[Group]:
        """Open the native nursery or task group and wrap it in a Group."""
        yield _AsyncioGroup(self)


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

    def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: object) -> T:
        return trio.run(fn, *args)

    @property
    def cancelled_error(self) -> type[BaseException]:
        return trio.Cancelled

    async def checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()

    def new_event(self) -> trio.Event:
        return trio.Event()

    async def wait_event(self, event: Any, give_up_after: float) -> None:
        with trio.move_on_after(give_up_after):
            await event.wait()

    @contextlib.asynccontextmanager
    async def _open_group(self) -> AsyncIterator[Group]:
        """Open the native nursery or task group and wrap it in a Group."""
        async with trio.open_nursery() as nursery:
            yield _ScopedGroup(self, nursery, trio.CancelScope)


class AnyioContext(Context):
    """anyio on one of its backends, with a task group and a cancel scope per task."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.name = f"anyio-{backend}"
        self.family = backend

    def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: object) -> T:
        return anyio.run(fn, *args, backend=self.backend)

    @property
    def cancelled_error(self) -> type[BaseException]:
        return anyio.get_cancelled_exc_class()

    async def checkpoint(self) -> None:
        await anyio.lowlevel.checkpoint()

    def new_event(self) -> anyio.Event:
        return anyio.Event()

    async def wait_event(self, event: Any, give_up_after: float) -> None:
        with anyio.move_on_after(give_up_after):
            await event.wait()

    @contextlib.asynccontextmanager
    async def _open_group(self) -> AsyncIterator[Group]:
        """Open the native nursery or task group and wrap it in a Group."""
        async with anyio.create_task_group() as task_group:
            yield _ScopedGroup(self, task_group, anyio.CancelScope)


CONTEXTS: tuple[Context, ...] = (
    AsyncioContext(),
    UvloopContext(),
    TrioContext(),
    AnyioContext("asyncio"),
    AnyioContext("trio"),
)
"""Every context, in the order of the table columns."""


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
