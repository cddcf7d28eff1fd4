"""The backend protocol, its adapters and how one is chosen."""

from __future__ import annotations

import asyncio
import sys
import threading
import types
from typing import Any

import anyio
import pytest
import sniffio
import trio

import loopsync
from child import python_output
from loopsync import _adapters, _ki
from loopsync._asyncio_backend import AsyncioBackend
from loopsync._trio_backend import TrioBackend


def test_import_loads_no_async_library() -> None:
    code = (
        "import sys, loopsync\n"
        "loaded = ('asyncio', 'trio', 'anyio', 'uvloop', 'coredis', 'loopsync.redis')\n"
        "print(sorted(m for m in loaded if m in sys.modules))"
    )
    output = python_output(code)
    assert output == "[]"


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
    output = python_output(code)
    assert output == "['loopsync._asyncio_backend']"


def test_public_names_live_in_loopsync() -> None:
    for name in loopsync.__all__:
        assert getattr(loopsync, name).__module__ == "loopsync"
        assert getattr(loopsync, name).__doc__


def test_no_library_running() -> None:
    expected = "found no async library running; it supports asyncio, trio"
    with pytest.raises(RuntimeError, match=expected):
        _adapters.current_backend()


def test_a_call_no_library_runs_is_told_so_on_every_python() -> None:
    # Once asyncio has run them, a call from synchronous code keeps no
    # library's rules: on Python 3.10 and 3.11 the asyncio adapter took such
    # a call for asyncio's (sparing a look-up of the running loop), so that
    # the same program raised other exceptions than on 3.12 and later.
    sem, lock, limiter = loopsync.Semaphore(1), loopsync.Lock(), loopsync.CapacityLimiter(1)

    async def use() -> None:
        await sem.acquire()
        async with lock, limiter:
            pass

    asyncio.run(use())
    with pytest.raises(trio.WouldBlock):  # trio's, as trio's own primitives raise there
        sem.acquire_nowait()
    assert sem.value == 0
    expected = "found no async library running; it supports asyncio, trio"
    with pytest.raises(RuntimeError, match=expected):
        lock.acquire_nowait()
    assert not lock.locked()
    with pytest.raises(RuntimeError, match=expected):
        limiter.acquire_nowait()
    assert limiter.borrowed_tokens == 0


def test_awaited_by_hand_a_primitive_asyncio_used_keeps_asyncio_s_rules() -> None:
    # A coroutine that no library runs (driven by hand) gets asyncio's
    # rules, as asyncio's own primitives work there until they must wait;
    # on Python 3.12 and later it was told that no library runs it.
    lock, sem, event = loopsync.Lock(), loopsync.Semaphore(1), loopsync.Event()

    async def use() -> None:
        async with lock, sem:
            event.set()
            await event.wait()

    asyncio.run(use())
    for coro in (lock.acquire(), sem.acquire(), event.wait()):
        with pytest.raises(StopIteration) as returned:
            coro.send(None)
        assert returned.value.value is True
    assert lock.locked()
    assert sem.value == 0


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
        return _adapters.current_backend()

    first, second = asyncio.run(pick()), asyncio.run(pick())
    assert first is second
    assert isinstance(first, AsyncioBackend)
    assert isinstance(trio.run(pick), TrioBackend)


def test_asyncio_waiter_is_a_plain_future_of_the_running_loop() -> None:
    async def main() -> None:
        waiter = AsyncioBackend().create_waiter(loop=asyncio.get_running_loop())
        # Exactly a Future: the C Task handles those faster than subclasses.
        assert type(waiter) is asyncio.Future
        assert waiter.get_loop() is asyncio.get_running_loop()
        waiter.set_result(7)
        assert await waiter == 7

    asyncio.run(main())


def test_trio_waiter_behaves_as_a_future() -> None:
    async def main() -> None:
        backend = TrioBackend()
        parked: list[Any] = []

        async def park(value: Any = None) -> None:
            waiter = backend.create_waiter(loop=None)
            parked.append(waiter)
            assert not waiter.done()
            assert await waiter == value

        async with trio.open_nursery() as nursery:
            nursery.start_soon(park, 7)
            await trio.testing.wait_all_tasks_blocked()
            (woken,) = parked
            woken.set_result(7)
            assert woken.done()
            assert not woken.cancelled()
            assert woken.result() == 7
            assert not woken.cancel()  # too late: it was woken

        async with trio.open_nursery() as nursery:
            nursery.start_soon(park)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
            aborted = parked[-1]
            # Cancelled during the cancel, before the task ran.
            assert aborted.done()
            assert aborted.cancelled()
            assert not aborted.cancel()

    trio.run(main)


def test_asyncio_checkpoints() -> None:
    async def main() -> None:
        backend = AsyncioBackend()
        await backend.checkpoint_if_cancelled()  # never yields, never raises
        await backend.checkpoint()

        # A plain cancellation that arrives during a shielded checkpoint is
        # raised there, as asyncio cannot hold it back.
        reached: list[str] = []

        async def shielded() -> None:
            try:
                await backend.cancel_shielded_checkpoint()
            except asyncio.CancelledError as exc:
                reached.append(f"raised {exc.args}")
                raise
            reached.append("after shielded checkpoint")

        task = asyncio.create_task(shielded())
        await asyncio.sleep(0)
        task.cancel("plain")
        with pytest.raises(asyncio.CancelledError):
            await task
        assert reached == ["raised ('plain',)"]

        # An anyio cancel scope's is held back, as by anyio's own shielded
        # checkpoint, until the next yield (test_anyio.py compares the two).
        with anyio.CancelScope() as scope:
            scope.cancel()
            await backend.cancel_shielded_checkpoint()
            reached.append("after an anyio scope's cancellation")
            await asyncio.sleep(0)
            reached.append("never")
        assert scope.cancelled_caught
        assert reached[1:] == ["after an anyio scope's cancellation"]

    asyncio.run(main())


def test_trio_waiter_outside_a_task() -> None:
    with pytest.raises(RuntimeError):
        TrioBackend().create_waiter(loop=None)


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
    # Until it has had to wait under asyncio, a primitive may move between
    # libraries, and each time it follows the rules of the one running it.
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


def test_trio_run_by_an_asyncio_task_gets_trio_s_rules() -> None:
    # trio.run() called by an asyncio task (as a notebook cell may) runs while
    # asyncio's loop still runs in the thread: a primitive that asyncio's
    # rules served last follows trio there, and asyncio again after.
    lock = loopsync.Lock()

    async def under_trio() -> bool:
        async with lock:
            return lock.statistics().owner is trio.lowlevel.current_task()

    async def main() -> bool:
        lock.acquire_nowait()
        lock.release()
        owned_under_trio = trio.run(under_trio)
        lock.acquire_nowait()
        assert lock.statistics().owner is None
        lock.release()
        return owned_under_trio

    assert asyncio.run(main())


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_asyncio_run_by_a_trio_task_gets_asyncio_s_rules(loop: str) -> None:
    # asyncio.run() called by a trio task (synchronous code that runs a loop
    # of its own) runs while trio's flag in sniffio's thread-local still says
    # trio: primitives that trio's rules served follow asyncio there, as
    # asyncio's own work there, and trio again after.  (anyio refuses to run
    # there.)
    run: Any = asyncio.run
    if loop == "uvloop":
        import uvloop

        run = uvloop.run
    lock, event, sem = loopsync.Lock(), loopsync.Event(), loopsync.Semaphore(1)

    async def under_nested_asyncio() -> list[object]:
        seen: list[object] = [type(_adapters.current_backend())]
        coro = lock.acquire()
        with pytest.raises(StopIteration):  # no yield under asyncio
            coro.send(None)
        seen.append(lock.statistics().owner)  # no owner under asyncio
        lock.release()
        waiter = asyncio.ensure_future(event.wait())
        await asyncio.sleep(0)
        event.set()
        seen.append(await waiter)
        async with sem:
            seen.append(sem.locked())
        with pytest.raises(ValueError, match=r"^Semaphore initial value must be >= 0$"):
            loopsync.Semaphore(-1)  # in asyncio's words
        return seen

    async def under_trio() -> list[object]:
        async with lock, sem:
            assert lock.statistics().owner is trio.lowlevel.current_task()
        seen = run(under_nested_asyncio())
        async with lock:
            assert lock.statistics().owner is trio.lowlevel.current_task()
        return seen

    assert trio.run(under_trio) == [AsyncioBackend, None, True, True]
    assert not lock.locked()
    assert sem.value == 1


def test_a_runtime_error_from_trio_s_checkpoint_under_trio_propagates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Outside trio, trio's checkpoint raises RuntimeError, and acquire() takes
    # that as the sign of another library; under trio, it must not hide one.
    async def broken_checkpoint() -> None:
        raise RuntimeError("broken checkpoint")

    sem = loopsync.Semaphore(1)

    async def main() -> None:
        await sem.acquire()
        monkeypatch.setattr(TrioBackend, "checkpoint_if_cancelled", staticmethod(broken_checkpoint))
        with pytest.raises(RuntimeError, match=r"^broken checkpoint$"):
            await sem.acquire()

    trio.run(main)
    assert sem.value == 0


def test_protect_if_trio_imported_loads_the_trio_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if no loopsync call had looked up the backend under trio yet.
    monkeypatch.delitem(sys.modules, "loopsync._trio_backend")
    monkeypatch.delattr(loopsync, "_trio_backend")
    monkeypatch.setattr(_ki, "pending", True)
    _ki.protect_if_trio_imported()
    assert "loopsync._trio_backend" in sys.modules
    assert not _ki.pending


def test_a_function_marked_after_the_trio_adapter_loaded_is_protected() -> None:
    import loopsync._trio_backend  # noqa: F401 - loaded, as after any call under trio

    async def update() -> bool:
        return trio.lowlevel.currently_ki_protected()

    assert not _ki.pending
    try:
        assert trio.run(_ki.ki_protected(update))
    finally:
        _ki.marked.remove(update)


def test_each_adapter_knows_when_its_library_runs() -> None:
    asyncio_backend, trio_backend = AsyncioBackend(), TrioBackend()
    assert not asyncio_backend.is_current()
    assert not trio_backend.is_current()

    async def under_asyncio() -> None:
        assert asyncio_backend.is_current()
        assert not trio_backend.is_current()
        assert asyncio_backend.current_loop() is asyncio.get_running_loop()

    async def under_trio() -> None:
        assert trio_backend.is_current()
        assert not asyncio_backend.is_current()
        assert trio_backend.current_loop() is None

    asyncio.run(under_asyncio())
    trio.run(under_trio)


def test_a_primitive_used_under_asyncio_names_curio_when_curio_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # sniffio finds curio neither by its thread-local nor by a running loop:
    # a primitive that followed asyncio must not keep the asyncio adapter.
    curio = types.ModuleType("curio")
    curio.meta = types.SimpleNamespace(curio_running=lambda: True)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "curio", curio)
    monkeypatch.setitem(sys.modules, "curio.meta", curio.meta)  # type: ignore[attr-defined]
    sem = loopsync.Semaphore(2)

    async def under_asyncio() -> None:
        async with sem:
            pass

    asyncio.run(under_asyncio())
    coro = sem.acquire()
    with pytest.raises(RuntimeError, match=r"found 'curio' running; it supports asyncio, trio"):
        coro.send(None)
    assert sem.value == 2


# -- the grid's empty cells, as a third library's adapter may fill them ----


class _CheckpointingAsyncio(AsyncioBackend):
    """asyncio's revocable wake-ups with trio's checkpoints."""

    def __init__(self) -> None:
        super().__init__()
        self.always_checkpoints = True


class _TrioWithoutCheckpoints(TrioBackend):
    """trio's final hand-offs and owners without its checkpoints."""

    def __init__(self) -> None:
        super().__init__()
        self.always_checkpoints = False


@pytest.mark.parametrize(
    "make",
    [lambda: loopsync.Semaphore(1), loopsync.Lock, lambda: loopsync.CapacityLimiter(1)],
    ids=["Semaphore", "Lock", "CapacityLimiter"],
)
def test_a_task_cancelled_at_the_checkpoint_after_taking_gives_back(
    monkeypatch: pytest.MonkeyPatch, make: Any
) -> None:
    # A library that cannot hold a cancellation back raises it at the
    # checkpoint after an acquire took what was free: the limiter kept it.
    monkeypatch.setitem(_adapters._backends, "asyncio", _CheckpointingAsyncio())
    primitive = make()

    async def main() -> None:
        task = asyncio.create_task(primitive.acquire())
        await asyncio.sleep(0)  # it took it, and yields at its checkpoint
        with pytest.raises(loopsync.WouldBlock):
            primitive.acquire_nowait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        primitive.acquire_nowait()  # given back

    asyncio.run(main())


def test_without_checkpoints_a_lock_is_taken_in_a_cancelled_scope_as_a_semaphore_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Checking for a pending cancellation is the checkpoint rule's, not the
    # owner rule's: the lock checked under tracks_owners.
    monkeypatch.setitem(_adapters._backends, "trio", _TrioWithoutCheckpoints())
    lock, sem = loopsync.Lock(), loopsync.Semaphore(1)

    async def main() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            await lock.acquire()
            await sem.acquire()
        assert not scope.cancelled_caught
        assert lock.statistics().owner is trio.lowlevel.current_task()
        assert sem.value == 0
        lock.release()

    trio.run(main)


def test_threads_making_the_first_adapter_at_once_share_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each primitive compares adapters by identity: with one per thread, a
    # Condition of either thread took its own lock for another library's.
    monkeypatch.setattr(_adapters, "_backends", {})
    made_meanwhile: list[object] = []
    make = AsyncioBackend.__init__

    async def current() -> object:
        return _adapters.current_backend()

    def make_while_another_thread_does(backend: AsyncioBackend) -> None:
        if not made_meanwhile:
            made_meanwhile.append(None)
            other = threading.Thread(target=lambda: made_meanwhile.append(asyncio.run(current())))
            other.start()
            other.join()
        make(backend)

    monkeypatch.setattr(AsyncioBackend, "__init__", make_while_another_thread_does)
    made = asyncio.run(current())
    assert made is made_meanwhile[1]
    assert isinstance(made, AsyncioBackend)
