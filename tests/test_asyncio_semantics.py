"""Rules that hold under asyncio (and uvloop, and anyio's asyncio backend)."""

from __future__ import annotations

import asyncio
import copy
import gc
import importlib
import pickle
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

import pytest

import loopsync
from libs import Lib
from loopsync._asyncio_backend import AsyncioBackend

pytestmark = pytest.mark.family("asyncio")


async def test_free_permit_is_taken_without_yielding(lib: Lib) -> None:
    sem = loopsync.Semaphore(1)
    coro = sem.acquire()
    # The coroutine finishes on its first step: it never suspends, so it
    # neither yields to the loop nor creates a future.
    with pytest.raises(StopIteration) as stopped:
        coro.send(None)
    assert stopped.value.value is True
    assert sem.value == 0


async def test_last_arrival_at_a_barrier_does_not_yield(lib: Lib) -> None:
    barrier = loopsync.Barrier(1)
    coro = barrier.wait()
    with pytest.raises(StopIteration) as stopped:
        coro.send(None)
    assert stopped.value.value == 0


async def test_reset_and_abort_do_not_yield(lib: Lib) -> None:
    barrier = loopsync.Barrier(2)
    for coro in (barrier.abort(), barrier.reset()):
        with pytest.raises(StopIteration):
            coro.send(None)
    assert not barrier.broken


async def test_pending_hand_off_keeps_semaphore_locked(lib: Lib) -> None:
    sem = loopsync.Semaphore(0)
    async with lib.task_group() as group:
        waiter = group.start(sem.acquire)
        await lib.settle()
        sem.release()  # handed to the waiter, which has not resumed
        sem.release()  # a free permit, but the waiter is still queued
        assert sem.value == 1
        assert sem.locked()
        assert sem.statistics().tasks_waiting == 0
        assert repr(sem).endswith("[locked]>")
        with pytest.raises(loopsync.WouldBlock):
            sem.acquire_nowait()
        await lib.settle()
        assert waiter.outcome == "returned"
        assert not sem.locked()
    assert sem.value == 1


@pytest.mark.libs("asyncio", "uvloop")
async def test_handed_permit_then_cancelled_raises_and_passes_permit_on(lib: Lib) -> None:
    sem = loopsync.Semaphore(0)
    async with lib.task_group() as group:
        first = await lib.start_queued(group, sem.acquire)
        second = await lib.start_queued(group, sem.acquire)
        sem.release()
        first.cancel()
        await lib.settle()
    assert first.outcome == "cancelled"
    assert second.outcome == "returned"
    assert sem.value == 0


def test_waiting_binds_to_the_loop() -> None:
    sem = loopsync.Semaphore(0)

    async def wait_briefly() -> None:
        task = asyncio.create_task(sem.acquire())
        await asyncio.sleep(0)
        sem.release()
        await task
        sem.release()

    asyncio.run(wait_briefly())
    assert sem.value == 1

    async def use_without_waiting() -> None:
        async with sem:
            pass

    # Calls that need not wait work from any loop, as in asyncio ...
    asyncio.run(use_without_waiting())

    async def wait_again() -> None:
        await sem.acquire()
        await sem.acquire()

    # ... but waiting from another loop does not.
    with pytest.raises(RuntimeError, match=r"^<loopsync.Semaphore .* is bound to a different"):
        asyncio.run(wait_again())
    assert sem.statistics().tasks_waiting == 0


def test_an_event_and_a_limiter_bind_to_the_loop_too() -> None:
    event, limiter = loopsync.Event(), loopsync.CapacityLimiter(1)

    async def wait_on_both() -> None:
        waiting = asyncio.create_task(event.wait())
        limiter.acquire_nowait()
        borrowing = asyncio.create_task(limiter.acquire_on_behalf_of("job"))
        await asyncio.sleep(0)
        event.set()
        limiter.release()
        await asyncio.gather(waiting, borrowing)
        limiter.release_on_behalf_of("job")
        event.clear()

    async def wait_from_another_loop(primitive: object) -> None:
        if isinstance(primitive, loopsync.Event):
            await primitive.wait()
        else:
            async with limiter:
                await limiter.acquire_on_behalf_of("job")  # must wait

    asyncio.run(wait_on_both())
    for primitive, name in ((event, "Event"), (limiter, "CapacityLimiter")):
        with pytest.raises(RuntimeError, match=rf"^<loopsync\.{name} .* bound to a different"):
            asyncio.run(wait_from_another_loop(primitive))
    assert event.statistics().tasks_waiting == limiter.statistics().tasks_waiting == 0
    assert limiter.borrowed_tokens == 0


def test_barrier_binds_to_the_loop() -> None:
    barrier = loopsync.Barrier(2)

    async def pass_once() -> None:
        await asyncio.gather(barrier.wait(), barrier.wait())

    asyncio.run(pass_once())
    with pytest.raises(RuntimeError, match="is bound to a different event loop"):
        asyncio.run(pass_once())
    assert barrier.n_waiting == 0


def test_tasks_of_another_loop_never_fill_a_bound_barrier() -> None:
    barrier = loopsync.Barrier(2)

    async def pass_once() -> None:
        await asyncio.gather(barrier.wait(), barrier.wait())

    async def two_from_another_loop() -> list[object]:
        results = await asyncio.gather(barrier.wait(), barrier.wait(), return_exceptions=True)
        return [type(result) for result in results]

    asyncio.run(pass_once())
    assert asyncio.run(two_from_another_loop()) == [RuntimeError, RuntimeError]
    assert barrier.n_waiting == 0


async def _runtime_error_of_waiting(barrier: loopsync.Barrier) -> RuntimeError | None:
    """Wait on *barrier*; return the RuntimeError that raises, or None."""
    try:
        await barrier.wait()
    except RuntimeError as exc:
        return exc
    return None


def test_a_trio_guest_never_counts_at_a_barrier_bound_to_its_host_loop() -> None:
    trio = pytest.importorskip("trio")
    barrier = loopsync.Barrier(2)

    async def host() -> RuntimeError | None:
        task = asyncio.create_task(barrier.wait())  # binds the barrier to this loop
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[RuntimeError | None] = loop.create_future()
        trio.lowlevel.start_guest_run(
            _runtime_error_of_waiting,
            barrier,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=lambda outcome: done.set_result(outcome.unwrap()),
        )
        while not done.done():
            # Counted even for a moment, the guest would let a host task
            # arriving now pass the barrier alone.
            assert barrier.n_waiting == 0
            await asyncio.sleep(0)
        return done.result()

    exc = asyncio.run(host())
    assert isinstance(exc, RuntimeError)
    assert str(exc).endswith("is bound to a different event loop")


def test_a_barrier_party_of_another_thread_gets_the_runtime_error() -> None:
    # The bound loop is running, in another thread: the barrier refuses the
    # task as it arrives, and the task leaves the barrier as it found it.
    barrier = loopsync.Barrier(2)
    bound_loop = asyncio.new_event_loop()

    async def pass_once() -> None:
        await asyncio.gather(barrier.wait(), barrier.wait())

    bound_loop.run_until_complete(pass_once())
    thread = threading.Thread(target=bound_loop.run_forever)
    thread.start()
    try:
        running = threading.Event()
        bound_loop.call_soon_threadsafe(running.set)
        running.wait()
        exc = asyncio.run(_runtime_error_of_waiting(barrier))
    finally:
        bound_loop.call_soon_threadsafe(bound_loop.stop)
        thread.join()
        bound_loop.close()
    assert isinstance(exc, RuntimeError)
    assert str(exc) == f"{barrier!r} is bound to a different event loop"
    assert barrier.n_waiting == 0


async def _bind(sem: loopsync.Semaphore) -> None:
    """Bind *sem*, locked, to the running loop: a task waits on it."""
    task = asyncio.create_task(sem.acquire())
    await asyncio.sleep(0)
    sem.release()
    await task


def _semaphore_bound_to_a_finished_loop() -> loopsync.Semaphore:
    """Return a Semaphore(0) that a task has waited on under asyncio.run()."""
    sem = loopsync.Semaphore(0)
    asyncio.run(_bind(sem))
    return sem


def test_waiting_from_another_library_after_binding() -> None:
    import trio

    sem = _semaphore_bound_to_a_finished_loop()

    async def wait_under_trio() -> None:
        await sem.acquire()

    with pytest.raises(RuntimeError, match="is bound to a different event loop"):
        trio.run(wait_under_trio)
    assert sem.statistics().tasks_waiting == 0
    assert sem.value == 0


def test_a_bound_semaphore_refuses_a_trio_task_with_trio_s_would_block() -> None:
    import trio

    sem = _semaphore_bound_to_a_finished_loop()

    async def refused_under_trio() -> None:
        with pytest.raises(trio.WouldBlock):
            sem.acquire_nowait()

    trio.run(refused_under_trio)


def test_a_task_of_another_loop_is_refused_before_it_waits() -> None:
    # As asyncio's: the RuntimeError comes at once, and the task never counts.
    sem = _semaphore_bound_to_a_finished_loop()

    async def wait_from_another_loop() -> None:
        task = asyncio.create_task(sem.acquire())
        await asyncio.sleep(0)
        assert task.done()
        assert sem.statistics().tasks_waiting == 0
        with pytest.raises(RuntimeError, match="is bound to a different event loop"):
            await task

    asyncio.run(wait_from_another_loop())
    assert sem.value == 0


def test_a_trio_guest_is_refused_before_it_waits_on_its_host_s_semaphore() -> None:
    trio = pytest.importorskip("trio")
    sem = loopsync.Semaphore(0)

    async def guest() -> BaseException | None:
        try:
            await sem.acquire()
        except RuntimeError as exc:
            return exc
        return None

    async def host() -> BaseException | None:
        first = asyncio.create_task(sem.acquire())  # binds the semaphore here
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[BaseException | None] = loop.create_future()
        trio.lowlevel.start_guest_run(
            guest,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=lambda outcome: done.set_result(outcome.unwrap()),
        )
        while not done.done():
            assert sem.statistics().tasks_waiting == 1  # the guest never counts
            await asyncio.sleep(0)
        sem.release()
        await first
        return done.result()

    exc = asyncio.run(host())
    assert isinstance(exc, RuntimeError)
    assert str(exc).endswith("is bound to a different event loop")
    assert sem.value == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: loopsync.Semaphore(1, always_checkpoint=True),
        lambda: loopsync.Lock(always_checkpoint=True),
    ],
    ids=["Semaphore", "Lock"],
)
@pytest.mark.parametrize("trio_runs", ["as a guest of the loop", "after it"])
def test_a_bound_primitive_that_always_checkpoints_refuses_a_trio_task_before_it_takes(
    make: Callable[[], Any], trio_runs: str
) -> None:
    # It would yield to asyncio, as a wait would, which a trio task cannot:
    # trio raised TypeError ("unrecognized yield message") once it had taken.
    trio = pytest.importorskip("trio")
    primitive = make()

    async def under_trio() -> None:
        with pytest.raises(RuntimeError, match=r"is bound to a different event loop$"):
            await primitive.acquire()
        assert not primitive.locked()
        with pytest.raises(RuntimeError, match=r"is bound to a different event loop$"):
            async with primitive:
                pass

    async def host() -> None:
        await primitive.acquire()
        waiter = asyncio.create_task(primitive.acquire())  # binds the primitive here
        await asyncio.sleep(0)
        primitive.release()
        await waiter
        primitive.release()
        if trio_runs == "as a guest of the loop":
            loop = asyncio.get_running_loop()
            done: asyncio.Future[Any] = loop.create_future()
            trio.lowlevel.start_guest_run(
                under_trio,
                run_sync_soon_threadsafe=loop.call_soon_threadsafe,
                done_callback=done.set_result,
            )
            (await done).unwrap()

    asyncio.run(host())
    if trio_runs == "after it":
        trio.run(under_trio)
    assert not primitive.locked()


def test_a_waiter_of_another_thread_is_refused_before_it_parks() -> None:
    # While the bound loop runs a task in another thread, a task of this
    # thread, asyncio's or trio's, is refused at once, as by asyncio's own:
    # it parked, so that the bound loop could hand it a permit it then gave
    # back from this thread, a wake-up the bound loop did not see; and trio
    # got an asyncio future (TypeError).
    trio = pytest.importorskip("trio")
    sem = loopsync.Semaphore(0)
    bound_loop = asyncio.new_event_loop()
    running, finished = threading.Event(), threading.Event()

    bound_loop.run_until_complete(_bind(sem))

    async def busy() -> None:
        running.set()
        finished.wait()  # blocks the bound loop inside a task of its own

    async def refused_without_suspending() -> None:
        with pytest.raises(RuntimeError, match="is bound to a different event loop"):
            sem.acquire().send(None)

    async def refused_under_trio() -> None:
        with pytest.raises(RuntimeError, match="is bound to a different event loop"):
            await sem.acquire()

    thread = threading.Thread(target=bound_loop.run_until_complete, args=(busy(),))
    thread.start()
    try:
        running.wait()
        asyncio.run(refused_without_suspending())
        trio.run(refused_under_trio)
    finally:
        finished.set()
        thread.join()
        bound_loop.close()
    assert sem.value == 0
    assert sem.statistics().tasks_waiting == 0


def test_of_two_threads_binding_a_primitive_at_once_one_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Both found it unbound, and each bound it to its own loop, the second
    # over the first: tasks of two loops waited in one queue.  Here the
    # first thread is held just after it has looked its loop up.
    event = loopsync.Event()
    looked_up, bound = threading.Event(), threading.Event()
    current_loop = AsyncioBackend.current_loop

    def hold_the_first_thread(backend: AsyncioBackend) -> asyncio.AbstractEventLoop:
        loop = current_loop(backend)
        if threading.current_thread().name == "first":
            looked_up.set()
            bound.wait()
        return loop

    async def wait_once(then: Callable[[], None]) -> str:
        waiting = asyncio.ensure_future(event.wait())
        await asyncio.sleep(0)
        if waiting.done():
            return f"refused: {waiting.exception()}"
        then()
        waiting.cancel()
        return "waited"

    def release_the_first_thread() -> None:
        bound.set()
        thread.join()  # before this task leaves the queue

    monkeypatch.setattr(AsyncioBackend, "current_loop", hold_the_first_thread)
    outcomes: list[str] = []
    thread = threading.Thread(
        target=lambda: outcomes.append(asyncio.run(wait_once(lambda: None))), name="first"
    )
    thread.start()
    looked_up.wait()
    outcomes.append(asyncio.run(wait_once(release_the_first_thread)))
    refused, waited = outcomes
    assert refused.startswith("refused: <loopsync.Event object at ")
    assert refused.endswith(" is bound to a different event loop")
    assert waited == "waited"


def test_trio_run_by_a_task_of_the_bound_loop_is_refused_before_it_parks() -> None:
    # The bound loop's own task runs trio there: its running loop and its
    # current task are the bound loop's, and trio got an asyncio future.
    trio = pytest.importorskip("trio")
    sem = loopsync.Semaphore(0)

    async def refused_under_trio() -> None:
        with pytest.raises(RuntimeError, match="is bound to a different event loop"):
            await sem.acquire()

    async def bind_then_run_trio() -> None:
        await _bind(sem)
        trio.run(refused_under_trio)

    asyncio.run(bind_then_run_trio())
    assert sem.statistics().tasks_waiting == 0


def test_a_runtime_error_on_the_bound_loop_is_not_disguised() -> None:
    async def main() -> None:
        sem = loopsync.Semaphore(0)
        barrier = loopsync.Barrier(3)
        for wait in (sem.acquire, barrier.wait):
            # The first wait binds the primitive to this loop.
            first = asyncio.create_task(wait())
            await asyncio.sleep(0)
            # Drive a second wait by hand, to throw an error into it as it waits.
            second = wait()
            assert isinstance(second.send(None), asyncio.Future)
            with pytest.raises(RuntimeError, match=r"^thrown in$"):
                second.throw(RuntimeError("thrown in"))
            first.cancel()
            await asyncio.gather(first, return_exceptions=True)
        assert sem.statistics().tasks_waiting == 0
        assert barrier.n_waiting == 0

    asyncio.run(main())


def test_waiting_under_asyncio_after_trio() -> None:
    import trio

    sem = loopsync.Semaphore(0)

    async def wait_under_trio() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sem.acquire)
            await trio.testing.wait_all_tasks_blocked()
            sem.release()

    async def wait_under_asyncio() -> None:
        task = asyncio.create_task(sem.acquire())
        await asyncio.sleep(0)
        sem.release()
        await task

    # trio's waiters belong to no loop: waiting under trio binds nothing.
    trio.run(wait_under_trio)
    asyncio.run(wait_under_asyncio())
    assert sem.value == 0


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio has no Barrier before 3.11")
async def test_broken_barrier_error_is_asyncio_s(lib: Lib) -> None:
    barrier = loopsync.Barrier(2)
    await barrier.abort()
    with pytest.raises(asyncio.BrokenBarrierError) as caught:
        await barrier.wait()
    assert isinstance(caught.value, loopsync.BrokenBarrierError)
    # A class of its own, which pickles and claims no name it does not have.
    assert type(caught.value).__name__ == "AsyncioBrokenBarrierError"
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is type(caught.value)
    assert copy.args == caught.value.args


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is new in 3.11")
@pytest.mark.libs("asyncio", "uvloop")
async def test_cancellation_bookkeeping_is_untouched(lib: Lib) -> None:
    # asyncio.timeout() relies on Task.cancelling() counts; a semaphore that
    # swallowed or doubled a cancellation would break it.
    sem = loopsync.Semaphore(0)
    task = asyncio.current_task()
    assert task is not None
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0):
            await sem.acquire()
    assert task.cancelling() == 0
    assert sem.statistics().tasks_waiting == 0


@pytest.mark.libs("asyncio", "uvloop")
async def test_asyncio_stdlib_agrees_on_a_handoff_race(lib: Lib) -> None:
    # The same race against asyncio's own semaphore, on any Python: who gets
    # the permit when the first waiter is cancelled right after a release.
    async def race(sem: asyncio.Semaphore | loopsync.Semaphore) -> list[str]:
        log: list[str] = []

        async def acquirer(name: str) -> None:
            await sem.acquire()
            log.append(name)

        tasks = []
        for name in "abc":
            tasks.append(asyncio.create_task(acquirer(name)))
            await asyncio.sleep(0)
        sem.release()
        tasks[0].cancel()
        sem.release()
        await asyncio.gather(*tasks, return_exceptions=True)
        return log

    assert await race(loopsync.Semaphore(0)) == await race(asyncio.Semaphore(0)) == ["b", "c"]


async def test_bounded_semaphore_at_bound_zero_refuses_release(lib: Lib) -> None:
    # asyncio checks the bound first, even with a task waiting.
    sem = loopsync.BoundedSemaphore(0)
    async with lib.task_group() as group:
        waiter = await lib.start_queued(group, sem.acquire)
        with pytest.raises(ValueError, match="BoundedSemaphore released too many times"):
            sem.release()
        assert sem.statistics().tasks_waiting == 1
        waiter.cancel()
    assert sem.value == 0


async def test_other_exception_thrown_into_a_woken_waiter_passes_the_permit_on(lib: Lib) -> None:
    # asyncio's own semaphore gives a permit back only on CancelledError.
    sem = loopsync.Semaphore(0)
    first = sem.acquire()
    first.send(None)  # parked
    async with lib.task_group() as group:
        second = await lib.start_queued(group, sem.acquire)
        sem.release()  # hands the permit to "first" ...
        with pytest.raises(KeyboardInterrupt):
            first.throw(KeyboardInterrupt)  # ... which never takes it
        await lib.settle()
        assert second.outcome == "returned"
    assert sem.value == 0
    assert sem.statistics().tasks_waiting == 0


def _looping_parties(make_barrier: object, parties: int, rounds: int) -> list[tuple[int, int]]:
    """(task, index) in the order the wait() calls of tasks looping on a
    barrier returned."""
    returned: list[tuple[int, int]] = []

    async def main() -> None:
        barrier = make_barrier(parties)  # type: ignore[operator]

        async def party(number: int) -> None:
            for _ in range(rounds):
                returned.append((number, await barrier.wait()))

        await asyncio.gather(*(party(number) for number in range(parties)))

    asyncio.run(main())
    return returned


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Barrier is new in 3.11")
@pytest.mark.parametrize("parties", [2, 3, 10])
def test_tasks_looping_on_a_barrier_pass_as_with_asyncio(parties: int) -> None:
    # Each cycle, the tasks released by the previous trip call wait() again
    # while it drains; they are held back, and arrive again once they resume
    # after the drain, and the order and indices stay asyncio's.
    assert _looping_parties(loopsync.Barrier, parties, 5) == _looping_parties(
        asyncio.Barrier, parties, 5
    )


@pytest.mark.parametrize(
    ("parties", "expected"),
    [
        (3, [("p2", 2), ("p0", 0), ("p1", 1), ("p2", 2), ("p1", 0), ("q0", 1)]),
        (
            4,
            [
                *[("p3", 3), ("p0", 0), ("p1", 1), ("p2", 2)],
                *[("p3", 3), ("p2", 0), ("q0", 1), ("q1", 2)],
            ],
        ),
    ],
)
def test_more_arrivals_than_the_held_back_tasks_while_a_barrier_drains(
    parties: int, expected: list[tuple[str, int]]
) -> None:
    # The last of the parties p0, p1, ... trips the first cycle and starts
    # parties - 2 tasks q0, q1, ... before it waits again; it and then the
    # others but the last are held back by the drain, which the last one ends
    # before it arrives again.  The q tasks arrive too, before the held-back
    # tasks resume and arrive again, so the first of those to arrive trips
    # the barrier.  That task gets the last index, as in asyncio, and is
    # released first of its cycle; the other held-back tasks wait for the
    # next one.
    returned: list[tuple[str, int]] = []
    tripper = f"p{parties - 1}"

    async def main() -> None:
        barrier = loopsync.Barrier(parties)

        async def arrival(name: str) -> None:
            returned.append((name, await barrier.wait()))

        async def party(name: str) -> None:
            returned.append((name, await barrier.wait()))
            if name == tripper:
                tasks.extend(
                    asyncio.create_task(arrival(f"q{number}")) for number in range(parties - 2)
                )
            try:
                returned.append((name, await barrier.wait()))
            except loopsync.BrokenBarrierError:
                held_back.append(name)

        held_back: list[str] = []
        tasks = [asyncio.create_task(party(f"p{number}")) for number in range(parties)]
        for _ in range(4):
            await asyncio.sleep(0)
        assert barrier.n_waiting == 0  # the other held-back tasks wait for the drain
        await barrier.abort()
        await asyncio.gather(*tasks)
        assert sorted(held_back) == [f"p{number}" for number in range(parties - 2)]

    asyncio.run(main())
    assert returned == expected


@pytest.mark.libs("asyncio", "uvloop")
async def test_held_back_task_cancelled_after_its_wake_up(lib: Lib) -> None:
    # Barrier(2): t1 trips the barrier and arrives again while it drains, so
    # it is held back.  When t0 leaves, the drain ends and t1 is woken to
    # arrive; t0 cancels it before it resumes.  t1 raises CancelledError
    # without counting as a released task, and the barrier is filling and
    # empty, ready for the next pair.
    barrier = loopsync.Barrier(2)
    returned: list[str] = []

    async def t1() -> None:
        returned.append(f"t1 {await barrier.wait()}")
        await barrier.wait()

    async def t0() -> None:
        returned.append(f"t0 {await barrier.wait()}")
        assert not held_back.cancelled()
        held_back.cancel()

    first = asyncio.ensure_future(t0())
    held_back = asyncio.ensure_future(t1())
    await first
    with pytest.raises(asyncio.CancelledError):
        await held_back
    assert returned == ["t1 1", "t0 0"]
    assert "filling, waiters:0/2" in repr(barrier)
    assert sorted(await asyncio.gather(barrier.wait(), barrier.wait())) == [0, 1]


async def test_held_back_fillers_that_are_cancelled_are_swept_out(lib: Lib) -> None:
    # Tasks held back while the barrier resets arrive once it fills again and
    # park among the fillers; when they are cancelled there, the fillers
    # learn of it and sweep them out, so that memory follows the tasks still
    # waiting.
    barrier = loopsync.Barrier(300)
    async with lib.task_group() as group:
        await lib.start_queued(group, barrier.wait)
        held_back = [group.start(barrier.wait) for _ in range(200)]
        await barrier.reset()
        await lib.settle()
        assert barrier.n_waiting == 200
        for handle in held_back:
            handle.cancel()
        await lib.settle()
        assert all(handle.outcome == "cancelled" for handle in held_back)
        assert barrier.n_waiting == 0
        assert len(barrier._fillers) <= 65
        assert sorted(await asyncio.gather(*(barrier.wait() for _ in range(300)))) == list(
            range(300)
        )


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio has no Barrier before 3.11")
@pytest.mark.family("asyncio")
async def test_tasks_looping_on_a_barrier_pass_in_asyncio_s_groups(lib: Lib) -> None:
    # 0.1 let the tasks a drain held back arrive from a callback; with 7
    # tasks looping on a Barrier(4), the groups that passed together differed
    # from asyncio's by the third cycle.
    async def groups(barrier: Any) -> list[tuple[int, int, int]]:
        passed: list[tuple[int, int, int]] = []

        async def loop_on_barrier(task: int) -> None:
            for cycle in range(6):
                passed.append((cycle, task, await barrier.wait()))
                await asyncio.sleep(0)

        async with lib.task_group() as group:
            for task in range(7):
                group.start(loop_on_barrier, task)
            await lib.settle()
            await barrier.abort()
        return passed

    assert await groups(loopsync.Barrier(4)) == await groups(asyncio.Barrier(4))


async def test_calls_that_do_not_wait_work_in_a_loop_callback(lib: Lib) -> None:
    """A callback of the loop (call_soon(), a protocol's) runs outside any
    task, where asyncio's primitives work all the same."""

    async def run(module: Any) -> list[object]:
        cond, sem, lock = module.Condition(), module.Semaphore(0), module.Lock()
        event = module.Event()
        await cond.acquire()
        await lock.acquire()
        outcomes: list[object] = []

        def callback() -> None:
            for call in (cond.notify, cond.notify_all, sem.release, lock.release, event.set):
                try:
                    call()
                except Exception as exc:
                    outcomes.append(exc)
            outcomes.extend([sem.locked(), lock.locked(), event.is_set(), cond.locked()])

        asyncio.get_running_loop().call_soon(callback)
        await lib.settle()
        cond.release()
        return outcomes

    assert await run(loopsync) == await run(asyncio) == [False, False, True, True]


def test_calls_that_do_not_wait_work_with_no_loop_running() -> None:
    """After asyncio.run() has returned (in a finaliser, an atexit hook),
    asyncio's primitives still take the calls that never wait."""

    def run(module: Any) -> list[object]:
        cond, unused, lock = module.Condition(), module.Condition(), module.Lock()
        sem, event = module.Semaphore(0), module.Event()
        asyncio.run(cond.acquire())
        asyncio.run(lock.acquire())
        outcomes: list[object] = []
        calls = (cond.notify, cond.notify_all, sem.release, lock.release, event.set, cond.release)
        for call in (*calls, cond.notify, unused.notify_all, lock.release):
            try:
                outcomes.append(call())
            except RuntimeError as exc:
                outcomes.append(str(exc))
        return [*outcomes, sem.locked(), lock.locked(), event.is_set(), cond.locked()]

    assert (
        run(loopsync)
        == run(asyncio)
        == [
            *[None] * 6,
            "cannot notify on un-acquired lock",
            "cannot notify on un-acquired lock",
            "Lock is not acquired.",
            *[False, False, True, False],
        ]
    )


def _new_loop(name: str) -> asyncio.AbstractEventLoop:
    """A new event loop of asyncio's or uvloop's."""
    module = asyncio if name == "asyncio" else importlib.import_module("uvloop")
    loop: asyncio.AbstractEventLoop = module.new_event_loop()
    return loop


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
@pytest.mark.parametrize("make", [loopsync.Lock, loopsync.Semaphore], ids=["Lock", "Semaphore"])
def test_a_hand_off_to_a_task_of_a_closed_loop_passes_on_once_the_task_is_gone(
    make: Any, loop_name: str
) -> None:
    # A task still waiting when its loop is closed is never woken: release()
    # raises as that loop refuses to schedule it, as with asyncio's.  The
    # lock or permit stays handed to the task until it is destroyed, then
    # passes on (asyncio's semaphore loses the permit).
    primitive = make()

    async def hold_and_queue() -> list[asyncio.Task[object]]:
        await primitive.acquire()
        waiting = [asyncio.create_task(primitive.acquire()) for _ in range(2)]
        await asyncio.sleep(0)
        return waiting

    first_loop = _new_loop(loop_name)
    waiting = first_loop.run_until_complete(hold_and_queue())
    first_loop.close()

    async def in_a_new_loop() -> None:
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            primitive.release()
        assert primitive.locked() is (make is loopsync.Semaphore)
        with pytest.raises(RuntimeError, match="is bound to a different event loop"):
            await primitive.acquire()  # it would wait behind the hand-off
        # Destroyed (its coroutine closed, as when it is collected), the
        # first task passes it on to the second, whose loop is closed too;
        # then the second is destroyed.
        first, second = waiting
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            first.get_coro().close()
        second.get_coro().close()
        assert not primitive.locked()
        await primitive.acquire()
        primitive.release()
        if make is loopsync.Semaphore:
            assert primitive.value == 1

    second_loop = _new_loop(loop_name)
    try:
        second_loop.run_until_complete(in_a_new_loop())
    finally:
        second_loop.close()


async def _wait_on(kind: str, primitive: Any) -> None:
    if kind == "Condition":
        async with primitive:
            await primitive.wait()
    elif kind in ("Event", "Barrier"):
        await primitive.wait()
    else:
        await primitive.acquire()


_WAITED_ON = {
    "Lock": lambda lib: lib.Lock(),
    "Semaphore": lambda lib: lib.Semaphore(0),
    "Event": lambda lib: lib.Event(),
    "Condition": lambda lib: lib.Condition(),
    "Barrier": lambda lib: lib.Barrier(3),
}


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
@pytest.mark.parametrize("kind", list(_WAITED_ON))
def test_a_task_waiting_when_its_loop_closed_is_destroyed_silently(
    kind: str, loop_name: str
) -> None:
    # As with asyncio's: no "Event loop is closed" from a destroyed task's
    # clean-up (loopsync's cancelled its waiter, which the closed loop
    # refused to schedule the task for), and the primitive forgets it.
    # Only a condition passes its notification on (gh-112202, as 3.13's
    # does), to the other task, which the closed loop refuses to schedule.
    def run(library: Any) -> list[str]:
        primitive = _WAITED_ON[kind](library)

        async def queue_two() -> list[asyncio.Task[None]]:
            if kind == "Lock":
                await primitive.acquire()
            tasks = [asyncio.create_task(_wait_on(kind, primitive)) for _ in range(2)]
            await asyncio.sleep(0)
            return tasks

        loop = _new_loop(loop_name)
        tasks = loop.run_until_complete(queue_two())
        loop.close()
        outcomes = []
        for task in tasks:
            try:
                task.get_coro().close()
                outcomes.append("closed")
            except RuntimeError as exc:
                outcomes.append(str(exc))
        return [*outcomes, repr(primitive).rsplit("[", 1)[1]]

    if kind == "Condition":  # 3.13's, whatever Python runs it
        assert run(loopsync) == ["Event loop is closed", "closed", "unlocked]>"]
    elif kind == "Barrier":  # 3.13's passes it on too, through the condition it is built on
        assert run(loopsync) == ["closed", "closed", "filling, waiters:0/3]>"]
    else:
        assert run(loopsync) == run(asyncio)


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
@pytest.mark.parametrize("release", ["abort", "reset"])
def test_a_barrier_released_into_a_closed_loop_counts_its_tasks_once(
    release: str, loop_name: str
) -> None:
    # abort() and reset() raise as they release a task of a closed loop, as
    # asyncio's do; the task, destroyed, counted out twice (a barrier left
    # resetting for good, refusing to be copied).
    barrier = loopsync.Barrier(2)
    loop = _new_loop(loop_name)
    waiter = loop.create_task(barrier.wait())
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()

    async def release_and_destroy() -> None:
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            await getattr(barrier, release)()
        waiter.get_coro().close()
        await barrier.reset()

    asyncio.run(release_and_destroy())
    assert repr(barrier).endswith("[filling, waiters:0/2]>")
    assert copy.copy(barrier).n_waiting == 0


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_a_token_lent_to_a_task_of_a_closed_loop_is_not_kept_for_its_borrower(
    loop_name: str,
) -> None:
    # The lending raises as the closed loop refuses to schedule the task, so
    # the token stays free; once the task is destroyed, the limiter keeps no
    # hold on its borrower and gives back nobody else's token.
    class Job:
        pass

    limiter = loopsync.CapacityLimiter(1)
    job = Job()
    gone = weakref.ref(job)

    async def hold_and_queue(job: Job) -> asyncio.Task[None]:
        limiter.acquire_on_behalf_of_nowait("holder")
        waiting = asyncio.create_task(limiter.acquire_on_behalf_of(job))
        await asyncio.sleep(0)
        return waiting

    first_loop = _new_loop(loop_name)
    waiting = first_loop.run_until_complete(hold_and_queue(job))
    first_loop.close()
    del job

    with pytest.raises(RuntimeError, match="Event loop is closed"):
        limiter.release_on_behalf_of("holder")
    limiter.acquire_on_behalf_of_nowait("holder")  # the token is free
    del waiting
    gc.collect()
    assert gone() is None
    assert limiter.statistics().borrowers == ["holder"]
    limiter.release_on_behalf_of("holder")
