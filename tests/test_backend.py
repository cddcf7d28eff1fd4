"""The backend protocol, its adapters and how one is chosen."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
import sniffio
import trio

import loopsync
from loopsync import _backend
from loopsync._asyncio_backend import AsyncioBackend
from loopsync._trio_backend import TrioBackend
from loopsync._waitqueue import WaiterQueue


def test_import_loads_no_async_library() -> None:
    code = (
        "import sys, loopsync\n"
        "print(sorted(m for m in ('asyncio', 'trio', 'anyio', 'uvloop') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert output.strip() == "[]"


def test_adapter_loads_on_first_use_under_its_library() -> None:
    code = (
        "import sys, asyncio, loopsync\n"
        "async def main():\n"
        "    async with loopsync.Semaphore():\n"
        "        pass\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in ('trio', 'anyio', 'loopsync._asyncio_backend',"
        " 'loopsync._trio_backend') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert output.strip() == "['loopsync._asyncio_backend']"


def test_public_names_live_in_loopsync() -> None:
    for name in loopsync.__all__:
        assert getattr(loopsync, name).__module__ == "loopsync"
        assert getattr(loopsync, name).__doc__


def test_no_library_running() -> None:
    expected = "found no async library running; it supports asyncio, trio"
    with pytest.raises(RuntimeError, match=expected):
        _backend.current_backend()


def test_unsupported_library_is_named() -> None:
    sem = loopsync.Semaphore()
    token = sniffio.current_async_library_cvar.set("curio")
    try:
        coro = sem.acquire()
        with pytest.raises(RuntimeError, match=r"found 'curio' running; it supports asyncio, trio"):
            coro.send(None)
    finally:
        sniffio.current_async_library_cvar.reset(token)
    assert sem.value == 1


def test_adapters_are_cached() -> None:
    async def pick() -> object:
        return _backend.current_backend()

    first, second = asyncio.run(pick()), asyncio.run(pick())
    assert first is second
    assert isinstance(first, AsyncioBackend)
    assert isinstance(trio.run(pick), TrioBackend)


def test_asyncio_waiter_tells_its_queue_when_cancelled() -> None:
    async def main() -> None:
        backend = AsyncioBackend()
        queue = WaiterQueue()
        first, second = backend.create_waiter(queue), backend.create_waiter(queue)
        assert len(queue) == 2
        assert first.pending
        assert first.cancel()
        assert len(queue) == 1  # at once, without searching the queue
        assert not first.pending
        assert not first.cancel()  # cancelling twice changes nothing
        assert not first.wake(1)  # a cancelled waiter cannot be woken
        assert not first.woken
        assert queue.wake_first(7)  # passes over "first"
        assert second.woken
        assert not second.wake(8)  # one-shot
        assert not second.cancel()  # too late: it was woken
        assert len(queue) == 0
        assert not queue.wake_first()
        assert await backend.park(second) == 7

    asyncio.run(main())


def test_trio_waiter_tells_its_queue_when_aborted() -> None:
    async def main() -> None:
        backend = TrioBackend()
        queue = WaiterQueue()
        parked: list[object] = []

        async def park() -> None:
            waiter = backend.create_waiter(queue)
            parked.append(waiter)
            await backend.park(waiter)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(park)
            await trio.testing.wait_all_tasks_blocked()
            assert len(queue) == 1
            nursery.cancel_scope.cancel()
            assert not queue  # told during the cancel, before the task ran
        (waiter,) = parked
        assert not waiter.wake()  # type: ignore[attr-defined]
        assert not waiter.cancel()  # type: ignore[attr-defined]
        assert not waiter.woken  # type: ignore[attr-defined]
        assert not queue.wake_first()

    trio.run(main)


def test_asyncio_checkpoints() -> None:
    async def main() -> None:
        backend = AsyncioBackend()
        assert backend.current_loop() is asyncio.get_running_loop()
        await backend.checkpoint_if_cancelled()  # never yields, never raises
        await backend.checkpoint()

        # A cancellation that arrives during a shielded checkpoint is not
        # raised there but at the task's next suspension.
        reached: list[str] = []

        async def shielded() -> None:
            await backend.cancel_shielded_checkpoint()
            reached.append("after shielded checkpoint")
            await asyncio.sleep(0)
            reached.append("never")

        task = asyncio.create_task(shielded())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert reached == ["after shielded checkpoint"]

    asyncio.run(main())


def test_call_soon_runs_after_what_is_scheduled() -> None:
    order: list[str] = []

    async def under_asyncio() -> None:
        asyncio.get_running_loop().call_soon(order.append, "scheduled first")
        AsyncioBackend().call_soon(order.append, "asyncio")
        await asyncio.sleep(0)

    async def under_trio() -> None:
        TrioBackend().call_soon(order.append, "trio")
        await trio.testing.wait_all_tasks_blocked()

    asyncio.run(under_asyncio())
    trio.run(under_trio)
    assert order == ["scheduled first", "asyncio", "trio"]


def test_trio_outside_a_task() -> None:
    with pytest.raises(RuntimeError, match="not called from a trio task"):
        TrioBackend().current_loop()


def test_trio_checkpoint_is_cancellable() -> None:
    async def main() -> None:
        backend = TrioBackend()
        with trio.CancelScope() as scope:
            scope.cancel()
            await backend.cancel_shielded_checkpoint()
            await backend.checkpoint()
        assert scope.cancelled_caught

    trio.run(main)


def test_primitive_follows_the_library_from_run_to_run() -> None:
    # Until it has had to wait, a primitive may move between libraries, and
    # each time it follows the rules of the one running it.
    sem = loopsync.Semaphore(1)
    barrier = loopsync.Barrier(1)

    async def under_trio() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            await sem.acquire()  # a checkpoint under trio, even when free
        assert scope.cancelled_caught
        assert await barrier.wait() == 0

    async def under_asyncio() -> None:
        coro = sem.acquire()
        with pytest.raises(StopIteration):  # no yield under asyncio
            coro.send(None)
        sem.release()
        assert await barrier.wait() == 0

    for run in (under_trio, under_asyncio, under_trio, under_asyncio):
        if run is under_trio:
            trio.run(run)
        else:
            asyncio.run(run())
    assert sem.value == 1


async def _create_waiter(queue: WaiterQueue) -> Any:
    return AsyncioBackend().create_waiter(queue)


def test_asyncio_waiter_of_a_closed_loop_is_still_withdrawn() -> None:
    loop = asyncio.new_event_loop()
    queue = WaiterQueue()
    asyncio.set_event_loop(loop)
    try:
        future = loop.run_until_complete(_create_waiter(queue))
    finally:
        asyncio.set_event_loop(None)
    future.add_done_callback(lambda _: None)
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        future.cancel()
    assert len(queue) == 0
    assert not queue.wake_first()
