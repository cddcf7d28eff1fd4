"""What a user of asyncio, trio or anyio expects of a drop-in primitive.

Native exceptions, trio's and anyio's constructor spelling, copying and
pickling, weak references and attributes, and the bugs that adversarial runs
found in 0.1 (each test named after what it pins).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import functools
import importlib
import pickle
import threading
import types
import weakref
from typing import Any, Literal

import anyio
import pytest
import trio
import trio.testing

import loopsync
from child import python_output
from libs import Lib
from loopsync import _exceptions

# -- exceptions native to each library ----------------------------------------


async def test_would_block_is_caught_by_each_library_s_except_clause(lib: Lib) -> None:
    sem = loopsync.Semaphore(0)
    with pytest.raises(loopsync.WouldBlock) as caught:
        sem.acquire_nowait()
    # anyio is imported in this process, so anyio's clause catches it too.
    assert isinstance(caught.value, anyio.WouldBlock)
    assert isinstance(caught.value, trio.WouldBlock) == (lib.family == "trio")
    assert sem.value == 0


async def test_native_exceptions_pickle_and_name_their_own_class(lib: Lib) -> None:
    sem = loopsync.Semaphore(0)
    barrier = loopsync.Barrier(2)
    await barrier.abort()
    raised: list[BaseException] = []
    for action in (sem.acquire_nowait, barrier.wait):
        try:
            result = action()
            if result is not None:
                await result
        except (loopsync.WouldBlock, loopsync.BrokenBarrierError) as exc:
            raised.append(exc)
    assert len(raised) == 2
    for exc in raised:
        cls = type(exc)
        # Either loopsync's own class, or one whose name says what it is.
        assert cls.__module__ == "loopsync" or cls.__name__ not in loopsync.__all__
        for restored in (pickle.loads(pickle.dumps(exc)), copy.copy(exc)):
            assert type(restored) is cls
            assert restored.args == exc.args


def test_native_exceptions_unpickle_in_a_process_that_never_made_them() -> None:
    async def break_it() -> bytes:
        sem = loopsync.Semaphore(0)
        try:
            sem.acquire_nowait()
        except loopsync.WouldBlock as exc:
            return pickle.dumps(exc)
        raise AssertionError("acquire_nowait() did not raise")

    data = trio.run(break_it)
    code = (
        "import pickle, sys, trio, loopsync\n"
        "exc = pickle.loads(sys.stdin.buffer.read())\n"
        "print(isinstance(exc, trio.WouldBlock), isinstance(exc, loopsync.WouldBlock))"
    )
    output = python_output(code, stdin=data)
    assert output.split() == ["True", "True"]


def test_a_native_exception_made_by_two_threads_at_once_is_one_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A class made on first use: a thread that makes it while another is
    # making it must raise the one kept, which pickle finds by its name.
    monkeypatch.delitem(vars(_exceptions), "TrioWouldBlock", raising=False)
    made_meanwhile: list[type[BaseException]] = []

    def import_module(name: str) -> Any:
        if not made_meanwhile:
            made_meanwhile.append(BaseException)  # the other thread imports as usual
            other = threading.Thread(
                target=lambda: made_meanwhile.append(_exceptions.native("TrioWouldBlock"))
            )
            other.start()
            other.join()
        return importlib.import_module(name)

    monkeypatch.setattr(
        _exceptions, "importlib", types.SimpleNamespace(import_module=import_module)
    )
    made = _exceptions.native("TrioWouldBlock")
    assert made is made_meanwhile[1] is _exceptions.TrioWouldBlock
    assert type(pickle.loads(pickle.dumps(made()))) is made


def test_without_anyio_asyncio_raises_loopsync_s_own_would_block() -> None:
    code = (
        "import asyncio, sys, loopsync\n"
        "async def main():\n"
        "    try:\n"
        "        loopsync.Semaphore(0).acquire_nowait()\n"
        "    except loopsync.WouldBlock as exc:\n"
        "        print(type(exc) is loopsync.WouldBlock, 'anyio' in sys.modules)\n"
        "asyncio.run(main())\n"
    )
    output = python_output(code)
    assert output.split() == ["True", "False"]


def test_would_block_outside_any_library_is_loopsync_s_and_trio_s() -> None:
    # As trio's own primitives raise theirs there, once trio is imported.
    with pytest.raises(loopsync.WouldBlock) as refused:
        loopsync.Semaphore(0).acquire_nowait()
    assert isinstance(refused.value, trio.WouldBlock)


# -- trio's and anyio's constructor spelling ----------------------------------


async def test_max_value_bounds_release_and_may_exceed_the_initial_value(lib: Lib) -> None:
    sem = loopsync.Semaphore(1, max_value=3)
    assert sem.max_value == 3
    sem.release()
    sem.release()
    assert sem.value == 3
    with pytest.raises(ValueError, match=r"^semaphore released too many times$"):
        sem.release()
    assert sem.value == 3
    async with sem:
        assert sem.value == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_value": 0}, ValueError, r"^max_values must be >= initial_value$"),
        ({"max_value": 1.5}, TypeError, r"^max_value must be an integer, not float$"),
    ],
)
def test_bad_max_value(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        loopsync.Semaphore(1, **kwargs)


def test_bounded_semaphore_keeps_asyncio_s_signature() -> None:
    bounded = loopsync.BoundedSemaphore(2)
    assert bounded.max_value == 2
    with pytest.raises(TypeError):
        loopsync.BoundedSemaphore(2, max_value=3)  # type: ignore[call-arg]


# -- weak references, attributes, copies and pickles --------------------------


def test_methods_are_named_as_asyncio_s_in_wrong_calls() -> None:
    # In a wrong call's message, as asyncio's, and in a blocked task's repr.
    for native, ours in (
        (asyncio.Lock(), loopsync.Lock()),
        (asyncio.Semaphore(), loopsync.Semaphore()),
    ):
        with pytest.raises(TypeError) as native_error:
            native.acquire(1)  # type: ignore[call-arg]
        with pytest.raises(TypeError) as our_error:
            ours.acquire(1)  # type: ignore[call-arg]
        assert str(our_error.value) == str(native_error.value)
        name = type(ours).__name__
        assert (type(ours).acquire.__qualname__, type(ours).__aenter__.__qualname__) == (
            f"{name}.acquire",
            f"{name}.__aenter__",
        )
    # asyncio's BoundedSemaphore has a release() of its own.
    with pytest.raises(TypeError) as native_error:
        asyncio.BoundedSemaphore().release(1)  # type: ignore[call-arg]
    with pytest.raises(TypeError) as our_error:
        loopsync.BoundedSemaphore().release(1)  # type: ignore[call-arg]
    assert str(our_error.value) == str(native_error.value)


def test_primitives_take_weak_references_and_new_attributes() -> None:
    hosts: weakref.WeakValueDictionary[str, loopsync.Semaphore] = weakref.WeakValueDictionary()
    sem = hosts["example.org"] = loopsync.Semaphore(2)
    sem.name = "per-host limit"  # type: ignore[attr-defined]
    barrier = loopsync.Barrier(2)
    barrier.name = "start line"  # type: ignore[attr-defined]
    assert weakref.ref(barrier)() is barrier
    assert hosts["example.org"].name == "per-host limit"  # type: ignore[attr-defined]
    del sem
    assert "example.org" not in hosts


async def test_copies_and_pickles_keep_the_state_and_bind_to_no_loop(lib: Lib) -> None:
    sem = loopsync.Semaphore(2, max_value=5)
    await sem.acquire()
    sem.tag = "kept"  # type: ignore[attr-defined]
    bounded = loopsync.BoundedSemaphore(3)
    bounded.acquire_nowait()
    broken = loopsync.Barrier(3)
    await broken.abort()
    for duplicate in (copy.copy, copy.deepcopy, lambda p: pickle.loads(pickle.dumps(p))):
        copied_sem = duplicate(sem)
        assert (copied_sem.value, copied_sem.max_value) == (1, 5)
        assert copied_sem.tag == "kept"
        copied_bounded = duplicate(bounded)
        assert type(copied_bounded) is loopsync.BoundedSemaphore
        assert (copied_bounded.value, copied_bounded.max_value) == (2, 3)
        assert duplicate(broken).broken
        # The copy of a barrier trips (0.1's compared states by identity).
        assert await duplicate(loopsync.Barrier(1)).wait() == 0
        async with duplicate(sem):
            pass


class _TaggedLock(loopsync.Lock):
    __slots__ = ("__secret", "tag", "unset")

    def reveal(self) -> str:
        return self.__secret


class _TaggedCondition(loopsync.Condition):
    __slots__ = "tag"


@pytest.mark.parametrize(
    "duplicate", [copy.copy, copy.deepcopy, lambda p: pickle.loads(pickle.dumps(p))]
)
def test_copies_and_pickles_keep_a_subclass_s_slots(duplicate: Any) -> None:
    # As those of a subclass of asyncio.Lock with slots do.
    lock = _TaggedLock()
    lock.tag = "kept"
    lock._TaggedLock__secret = "mangled"  # type: ignore[attr-defined]
    condition = _TaggedCondition()
    condition.tag = "kept too"
    copied = duplicate(lock)
    assert (copied.tag, copied.reveal()) == ("kept", "mangled")
    assert not hasattr(copied, "unset")
    assert duplicate(condition).tag == "kept too"


async def test_a_primitive_with_waiting_tasks_refuses_to_be_pickled(lib: Lib) -> None:
    sem = loopsync.Semaphore(0)
    barrier = loopsync.Barrier(2)
    async with lib.task_group() as group:
        await lib.start_queued(group, sem.acquire)
        await lib.start_queued(group, barrier.wait)
        for primitive in (sem, barrier):
            with pytest.raises(
                TypeError, match=r"^cannot pickle or copy <loopsync\.\w+ .* while it is in use$"
            ):
                pickle.dumps(primitive)
        sem.release()
        await barrier.wait()
    assert pickle.loads(pickle.dumps(sem)).value == 0


def test_statistics_copy_pickle_and_stay_read_only() -> None:
    stats = loopsync.Semaphore(0).statistics()
    assert stats == loopsync.SemaphoreStatistics(tasks_waiting=0)
    assert copy.copy(stats) == pickle.loads(pickle.dumps(stats)) == stats
    assert hash(stats) == hash(copy.deepcopy(stats))
    with pytest.raises(AttributeError):
        stats.tasks_waiting = 1  # type: ignore[misc]
    assert repr(stats) == "SemaphoreStatistics(tasks_waiting=0)"


def test_statistics_are_frozen_dataclasses_as_anyio_s() -> None:
    # anyio's statistics are frozen dataclasses, and type checkers see
    # loopsync's as such: what the dataclasses module and ``match`` do with
    # them works.
    stats = loopsync.Condition().statistics()
    assert dataclasses.is_dataclass(stats)
    assert dataclasses.asdict(stats) == {
        "tasks_waiting": 0,
        "lock_statistics": {"locked": False, "owner": None, "tasks_waiting": 0},
    }
    assert [field.name for field in dataclasses.fields(loopsync.CapacityLimiterStatistics)] == [
        "borrowed_tokens",  # in trio's order, which positional arguments follow
        "total_tokens",
        "borrowers",
        "tasks_waiting",
    ]
    changed = dataclasses.replace(stats.lock_statistics, locked=True)
    assert changed == loopsync.LockStatistics(locked=True, owner=None, tasks_waiting=0)
    match stats:
        case loopsync.ConditionStatistics(0, loopsync.LockStatistics(False, None, 0)):
            pass
        case _:
            pytest.fail(f"{stats!r} did not match its own fields")


def test_the_statistics_load_when_first_used() -> None:
    # The dataclasses module would double the time ``import loopsync`` takes.
    code = (
        "import sys, loopsync\n"
        "print('dataclasses' in sys.modules, set(loopsync.__all__) <= set(dir(loopsync)))\n"
        "print(loopsync.Lock().statistics() == loopsync.LockStatistics(False, None, 0))"
    )
    assert python_output(code).split() == ["False", "True", "True"]


# -- bad input ------------------------------------------------------------------


def test_statistics_take_exactly_their_fields() -> None:
    for args, kwargs, message in (
        ((True, None), {}, "missing 1 required positional argument: 'tasks_waiting'"),
        ((True, None, 0, 1), {}, "takes 4 positional arguments but 5 were given"),
        ((True, None, 0), {"waiting": 0}, "got an unexpected keyword argument 'waiting'"),
        ((True, None, 0), {"locked": False}, "got multiple values for argument 'locked'"),
    ):
        with pytest.raises(TypeError, match=rf"^LockStatistics\.__init__\(\) {message}$"):
            loopsync.LockStatistics(*args, **kwargs)
    assert loopsync.LockStatistics(True, tasks_waiting=0, owner=None).locked


async def _async_action() -> None:
    raise AssertionError("never called")


class _AsyncCallable:
    async def __call__(self) -> None:
        raise AssertionError("never called")


@pytest.mark.parametrize(
    "action",
    [_async_action, functools.partial(_async_action), _AsyncCallable()],
    ids=["coroutine function", "partial", "async __call__"],
)
def test_a_barrier_refuses_a_coroutine_function_as_action(action: Any) -> None:
    with pytest.raises(TypeError, match=r"^action must be a plain function"):
        loopsync.Barrier(2, action)


async def test_a_barrier_takes_a_class_whose_instances_are_awaitable_calls(lib: Lib) -> None:
    # Calling the class makes an instance, at once: only an instance's own
    # __call__ makes it a coroutine function.
    made: list[_AsyncCallable] = []

    class Handler(_AsyncCallable):
        def __init__(self) -> None:
            made.append(self)

    barrier = loopsync.Barrier(1, Handler)
    assert await barrier.wait() == 0
    assert len(made) == 1


# -- subclasses ---------------------------------------------------------------


class _Counting(loopsync.Semaphore):
    """A subclass that counts its acquisitions."""

    acquired = 0

    async def acquire(self) -> Literal[True]:
        self.acquired += 1
        return await super().acquire()


async def test_async_with_runs_a_subclass_s_acquire(lib: Lib) -> None:
    sem = _Counting(1)
    async with sem as entered:
        assert entered is None
    await sem.acquire()
    assert sem.acquired == 2


# -- a trio guest run and its asyncio host ------------------------------------


def _run_with_trio_guest(host: Any, guest: Any) -> Any:
    """Run *host* under asyncio with *guest* as a trio guest run on its loop;
    return what *guest* returns."""

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        trio.lowlevel.start_guest_run(
            guest,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=lambda outcome: done.set_result(outcome),
        )
        await host()
        # Bounded: a guest that waits for good fails the test, not the run.
        return (await asyncio.wait_for(done, 10)).unwrap()

    return asyncio.run(main())


def test_guest_and_host_sharing_a_semaphore_never_lock_it_up_for_good() -> None:
    # 0.1 counted the host's hand-off to the guest by the host's rules and
    # uncounted it by the guest's: value 1, yet locked() forever.
    sem = loopsync.Semaphore(0)
    guest_parked = asyncio.Event()

    async def guest() -> int:
        asyncio.get_running_loop().call_soon(guest_parked.set)
        await sem.acquire()
        sem.release()
        return sem.value

    async def host() -> None:
        await guest_parked.wait()
        while not sem.statistics().tasks_waiting:  # noqa: ASYNC110 - no event spans both
            await asyncio.sleep(0)
        # Bounded: a semaphore that let the host wait too would wait forever.
        with pytest.raises(RuntimeError, match="is in use by tasks of another async library"):
            await asyncio.wait_for(sem.acquire(), 5)
        sem.release()

    assert _run_with_trio_guest(host, guest) == 1
    assert not sem.locked()
    assert asyncio.run(_acquire_now(sem)) == 0


async def _acquire_now(sem: loopsync.Semaphore) -> int:
    await sem.acquire()
    return sem.value


@pytest.mark.parametrize("host_call", ["acquire_nowait", "acquire"])
def test_a_host_task_during_a_guest_s_hand_off_leaves_the_semaphore_sound(host_call: str) -> None:
    # A hand-off under trio is final at once, and no use of the semaphore
    # that would keep a host task out: refused by acquire_nowait(), or
    # waiting in acquire().  The guest task handed the permit then resumes
    # by trio's rules; 0.2 went by the host's and left a free permit that
    # acquire() would no longer take.
    sem = loopsync.Semaphore(1)
    host_may_go = asyncio.Event()
    resumed: list[str] = []

    async def guest() -> int:
        async def take_and_give_back() -> None:
            await sem.acquire()
            resumed.append("guest")
            sem.release()

        async with trio.open_nursery() as nursery:
            await sem.acquire()
            nursery.start_soon(take_and_give_back)
            await trio.testing.wait_all_tasks_blocked()
            host_may_go.set()  # the host task runs before the guest's next batch
            sem.release()  # handed to take_and_give_back, which has not resumed
        with trio.fail_after(5):
            await sem.acquire()
        sem.release()
        return sem.value

    async def host() -> None:
        await host_may_go.wait()
        assert not resumed  # the guest's hand-off is pending
        if host_call == "acquire_nowait":
            with pytest.raises(loopsync.WouldBlock):
                sem.acquire_nowait()
        else:
            await sem.acquire()  # in this task: it waits before the guest resumes
            assert resumed == ["guest"]
            sem.release()

    assert _run_with_trio_guest(host, guest) == 1
    assert not sem.locked()
    assert asyncio.run(_acquire_now(sem)) == 0


def test_a_host_task_releases_its_token_to_waiting_guest_tasks() -> None:
    # release() finds the borrower, the current task, as its own library
    # knows it, whichever library the limiter follows: 0.2 asked the
    # guest's, which refused a host task while guest tasks waited.
    limiter = loopsync.CapacityLimiter(1)
    host_holds = asyncio.Event()

    async def guest() -> str:
        while not host_holds.is_set():
            await trio.lowlevel.checkpoint()
        with trio.fail_after(5):
            async with limiter:
                return "got the token"

    async def host() -> None:
        async with limiter:
            host_holds.set()
            while not limiter.statistics().tasks_waiting:  # noqa: ASYNC110 - no event spans both
                await asyncio.sleep(0)
            with pytest.raises(loopsync.WouldBlock):
                limiter.acquire_on_behalf_of_nowait("another")

    assert _run_with_trio_guest(host, guest) == "got the token"
    assert limiter.statistics().borrowed_tokens == 0


def test_each_guest_task_borrows_as_itself_from_a_limiter_bound_to_the_host() -> None:
    # Bound to the host's loop, the limiter follows asyncio's rules, but a
    # guest task is still the borrower, not asyncio's current task (None).
    limiter = loopsync.CapacityLimiter(2)
    bound = asyncio.Event()

    async def host() -> None:
        await limiter.acquire()
        waiting = asyncio.create_task(limiter.acquire_on_behalf_of("other"))
        await limiter.acquire_on_behalf_of("another")
        await asyncio.sleep(0)  # waiting waits: the limiter is bound here
        limiter.release()
        limiter.release_on_behalf_of("another")
        await waiting
        limiter.release_on_behalf_of("other")
        bound.set()

    async def guest() -> list[str]:
        while not bound.is_set():
            await trio.lowlevel.checkpoint()
        borrowers = []
        async with trio.open_nursery() as nursery:
            for _ in range(2):

                async def borrow() -> None:
                    await limiter.acquire()
                    borrowers.append(trio.lowlevel.current_task().name)
                    await trio.testing.wait_all_tasks_blocked()
                    limiter.release()

                nursery.start_soon(borrow)
        return borrowers

    assert limiter._loop is None
    assert len(_run_with_trio_guest(host, guest)) == 2
    assert limiter._loop is not None
    assert limiter.statistics().borrowed_tokens == 0


def test_a_lock_that_host_tasks_wait_on_through_a_condition_refuses_guest_tasks() -> None:
    # The host task waiting on the condition takes the lock back by asyncio's
    # rules: until it has, a guest task may not take the lock by trio's (0.2
    # let it, and the host task then released a lock it held by asyncio's as
    # trio's, leaving it locked for good).
    cond = loopsync.Condition()
    host_waits = asyncio.Event()

    async def guest() -> list[str]:
        while not host_waits.is_set():
            await trio.lowlevel.checkpoint()
        refused = []
        with pytest.raises(loopsync.WouldBlock):
            cond.acquire_nowait()
        refused.append("acquire_nowait")
        with pytest.raises(RuntimeError, match="is in use by tasks of another async library"):
            await cond.acquire()
        refused.append("acquire")
        return refused

    async def host() -> None:
        async with cond:
            host_waits.set()
            await asyncio.wait_for(cond.wait(), 0.5)

    with pytest.raises(asyncio.TimeoutError):
        _run_with_trio_guest(host, guest)
    assert not cond.locked()
    assert cond.statistics().lock_statistics.tasks_waiting == 0


def test_a_host_task_is_refused_a_condition_whose_lock_a_guest_task_holds() -> None:
    # asyncio's rules let a task wait while any task holds the lock, but
    # this one was taken by trio's and would be given back by them: 0.2
    # bound the condition to the host loop, then failed in trio's
    # current_task() ("must be called from async context", as release()
    # did), and no trio task could wait on the condition again.
    cond = loopsync.Condition()
    guest_holds, host_refused = asyncio.Event(), asyncio.Event()

    async def guest() -> bool:
        async with cond:
            guest_holds.set()
            while not host_refused.is_set():
                await trio.lowlevel.checkpoint()
            with trio.move_on_after(0) as scope:
                await cond.wait()
        return scope.cancelled_caught

    async def host() -> None:
        await guest_holds.wait()
        with pytest.raises(RuntimeError, match="is in use by tasks of another async library"):
            await cond.wait()
        with pytest.raises(RuntimeError, match=r"^can't release a Lock you don't own$"):
            cond.release()
        assert cond.locked()
        host_refused.set()

    assert _run_with_trio_guest(host, guest) is True
    assert not cond.locked()


def test_a_condition_bound_to_a_loop_refuses_a_trio_task_s_wait_as_bound() -> None:
    # Bound to the loop of its first wait, not its lock: a trio task holding
    # the lock by trio's rules was told that the lock was in use by another
    # library, which nothing else used.
    cond = loopsync.Condition()

    async def bind() -> None:
        main = asyncio.current_task()
        assert main is not None
        asyncio.get_running_loop().call_soon(main.cancel)
        async with cond:
            with contextlib.suppress(asyncio.CancelledError):
                await cond.wait()

    async def refused() -> str:
        async with cond:
            with pytest.raises(RuntimeError) as info:
                await cond.wait()
            assert cond.locked()
        return str(info.value)

    asyncio.run(bind())
    message = trio.run(refused)
    assert message.startswith("<loopsync.Condition object at ")
    assert message.endswith(" is bound to a different event loop")
    assert not cond.locked()


def test_a_host_task_is_refused_notify_while_guest_tasks_wait() -> None:
    # The waiters are trio's, and the lock's holder: a task of asyncio may
    # not wake them, by the rules of neither library.
    cond = loopsync.Condition()
    guest_holds, host_refused = asyncio.Event(), asyncio.Event()

    async def guest() -> int:
        async def wait() -> None:
            async with cond:
                await cond.wait()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait)
            await trio.testing.wait_all_tasks_blocked()
            async with cond:
                guest_holds.set()
                while not host_refused.is_set():
                    await trio.lowlevel.checkpoint()
                waiting = cond.statistics().tasks_waiting
                cond.notify_all()
        return waiting

    async def host() -> None:
        await guest_holds.wait()
        with pytest.raises(RuntimeError, match=r"is in use by tasks of another async library$"):
            cond.notify()
        host_refused.set()

    assert _run_with_trio_guest(host, guest) == 1
    assert cond.statistics().tasks_waiting == 0


def test_a_guest_waiter_cancelled_keeps_its_condition_s_lock_from_host_tasks() -> None:
    # Cancelled, the guest task takes the lock back as it resumes: until
    # then, a host task may not take it (0.2 let it, then the guest task,
    # refused the lock, released the host's: two holders).
    cond = loopsync.Condition()
    host_may_go = asyncio.Event()

    async def guest() -> bool:
        scope = trio.CancelScope()

        async def wait() -> None:
            with scope:
                async with cond:
                    await cond.wait()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()  # the waiter resumes in the next batch ...
            host_may_go.set()  # ... after the host task has run
        return scope.cancelled_caught

    async def host() -> None:
        await host_may_go.wait()
        with pytest.raises(loopsync.WouldBlock):
            cond.acquire_nowait()
        with pytest.raises(RuntimeError, match="is in use by tasks of another async library"):
            await cond.acquire()

    assert _run_with_trio_guest(host, guest) is True
    assert not cond.locked()
    assert asyncio.run(_acquire_and_release(cond)) is None


@pytest.mark.parametrize("release", ["abort", "reset"])
def test_a_host_task_releases_guest_tasks_from_a_barrier(release: str) -> None:
    # As a guest task may release host tasks: reset() and abort() never wait
    # (0.2 refused the host, "in use by tasks of another async library").
    barrier = loopsync.Barrier(3)

    async def guest() -> list[str]:
        outcomes: list[str] = []

        async def party() -> None:
            try:
                await barrier.wait()
            except loopsync.BrokenBarrierError as exc:
                outcomes.append(type(exc).__name__)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(party)
            nursery.start_soon(party)
        return outcomes

    async def host() -> None:
        while barrier.n_waiting < 2:  # noqa: ASYNC110 - no event spans both libraries
            await asyncio.sleep(0)
        await getattr(barrier, release)()

    assert _run_with_trio_guest(host, guest) == ["BrokenBarrierError"] * 2
    assert barrier.broken is (release == "abort")


def test_a_condition_whose_lock_is_bound_follows_the_lock_s_rules() -> None:
    # A task of another library takes a lock bound to a loop by asyncio's
    # rules: the condition asked for trio's (must hold the lock to notify).
    cond = loopsync.Condition()

    async def contend() -> None:
        async def hold() -> None:
            async with cond:
                await asyncio.sleep(0)

        await asyncio.gather(hold(), hold())  # the second waits: the lock binds

    async def take_notify_and_wait() -> None:
        async with cond:
            cond.notify()
            cond.notify_all()
            with pytest.raises(RuntimeError, match=r"^<loopsync\.Lock .* bound to a different"):
                await cond.wait()
            assert cond.locked()
        with pytest.raises(RuntimeError, match=r"^cannot notify on un-acquired lock$"):
            cond.notify()

    contended = False

    async def host() -> None:
        nonlocal contended
        await contend()
        contended = True

    async def guest() -> None:
        while not contended:
            await trio.lowlevel.checkpoint()
        await take_notify_and_wait()

    assert _run_with_trio_guest(host, guest) is None
    trio.run(take_notify_and_wait)
    assert not cond.locked()


async def _acquire_and_release(cond: loopsync.Condition) -> None:
    async with cond:
        pass


def test_guest_and_host_sharing_a_barrier_never_leave_it_draining() -> None:
    # 0.1 let the host trip a barrier of guest tasks by asyncio's rules; the
    # guest left by trio's, and the barrier stayed draining for good.
    barrier = loopsync.Barrier(2)

    async def guest() -> list[int]:
        async with trio.open_nursery() as nursery:
            indices: list[int] = []

            async def party() -> None:
                indices.append(await barrier.wait())

            nursery.start_soon(party)
            while barrier.n_waiting < 1:
                await trio.lowlevel.checkpoint()
            # The host has been refused by now (below); a second guest trips.
            while not host_refused:
                await trio.lowlevel.checkpoint()
            nursery.start_soon(party)
        return sorted(indices)

    host_refused = False

    async def host() -> None:
        nonlocal host_refused
        while barrier.n_waiting < 1:  # noqa: ASYNC110 - no event spans both libraries
            await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="is in use by tasks of another async library"):
            await asyncio.wait_for(barrier.wait(), 5)
        assert barrier.n_waiting == 1  # the refused task never counted
        host_refused = True

    assert _run_with_trio_guest(host, guest) == [0, 1]
    assert repr(barrier).endswith("[filling, waiters:0/2]>")
