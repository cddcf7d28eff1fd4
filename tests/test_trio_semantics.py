"""Rules that hold under trio (and anyio's trio backend)."""

from __future__ import annotations

from typing import Any, Literal

import pytest
import trio
import trio.testing

import loopsync
from child import python_output
from libs import Lib

pytestmark = pytest.mark.family("trio")


async def test_acquire_is_a_checkpoint_even_when_free(lib: Lib) -> None:
    sem = loopsync.Semaphore(1)
    with trio.testing.assert_checkpoints():
        await sem.acquire()
    sem.release()
    async with lib.task_group() as group:
        group.start(sem.acquire)
        await lib.settle()
        with trio.testing.assert_checkpoints():
            sem.release()  # hand-off to the task above ...
            await sem.acquire()  # ... so this one parks
    assert sem.value == 0


async def test_cancelled_acquire_takes_no_free_permit(lib: Lib) -> None:
    sem = loopsync.Semaphore(1)
    with trio.CancelScope() as scope:
        scope.cancel()
        await sem.acquire()
    assert scope.cancelled_caught
    assert sem.value == 1


async def test_barrier_wait_is_a_checkpoint(lib: Lib) -> None:
    barrier = loopsync.Barrier(1)
    with trio.testing.assert_checkpoints():
        assert await barrier.wait() == 0
    await barrier.abort()
    with trio.testing.assert_checkpoints(), pytest.raises(loopsync.BrokenBarrierError):
        await barrier.wait()


async def test_cancelled_last_arrival_does_not_trip(lib: Lib) -> None:
    barrier = loopsync.Barrier(2)
    async with lib.task_group() as group:
        first = group.start(barrier.wait)
        await lib.settle()
        with trio.CancelScope() as scope:
            scope.cancel()
            await barrier.wait()
        assert scope.cancelled_caught
        assert barrier.n_waiting == 1
        assert not first.done
        assert await barrier.wait() == 1
    assert first.result == 0


async def test_reset_and_abort_act_then_checkpoint(lib: Lib) -> None:
    barrier = loopsync.Barrier(2)
    with trio.testing.assert_checkpoints():
        await barrier.abort()
    with trio.testing.assert_checkpoints():
        await barrier.reset()
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await barrier.abort()
        finally:
            # Cancelled, as any trio checkpoint, but only after acting.
            assert barrier.broken
    assert scope.cancelled_caught
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await barrier.reset()
        finally:
            assert not barrier.broken
    assert scope.cancelled_caught


async def test_free_permit_goes_to_newcomer_while_hand_off_runs(lib: Lib) -> None:
    # trio hands a permit over for good when it reschedules the waiter, so a
    # second release is free for anyone at once (as with trio.Semaphore).
    for sem in (loopsync.Semaphore(0), trio.Semaphore(0)):
        async with lib.task_group() as group:
            group.start(sem.acquire)
            await lib.settle()
            sem.release()
            sem.release()
            assert sem.value == 1
            sem.acquire_nowait()
            assert sem.statistics().tasks_waiting == 0
        assert sem.value == 0


async def test_would_block_matches_trio(lib: Lib) -> None:
    ours, theirs = loopsync.Semaphore(0), trio.Semaphore(0)
    with pytest.raises(loopsync.WouldBlock):
        ours.acquire_nowait()
    with pytest.raises(trio.WouldBlock):
        theirs.acquire_nowait()


async def test_state_updates_are_protected_from_keyboard_interrupt(lib: Lib) -> None:
    seen: dict[str, set[bool]] = {}
    phase = "init"

    class Recording(loopsync.Semaphore):
        # Every read and write of the counter notes whether it ran protected.
        @property  # type: ignore[override]
        def _value(self) -> int:
            seen.setdefault(phase, set()).add(trio.lowlevel.currently_ki_protected())
            return self._counter  # type: ignore[no-any-return]

        @_value.setter
        def _value(self, value: int) -> None:
            seen.setdefault(phase, set()).add(trio.lowlevel.currently_ki_protected())
            self._counter = value

    sem = Recording(1)
    phase = "acquire_nowait"
    sem.acquire_nowait()
    phase = "release"
    sem.release()
    phase = "acquire"
    await sem.acquire()
    phase = "outside"
    assert sem.value == 0
    assert seen["acquire_nowait"] == seen["release"] == seen["acquire"] == {True}
    assert seen["outside"] == {False}


def _recording(cls: type[Any], attribute: str, seen: dict[str, set[bool]], phase: list[str]) -> Any:
    """A subclass of *cls* whose *attribute* notes, per phase, whether each
    read and write of it ran protected from KeyboardInterrupt."""

    def note() -> None:
        seen.setdefault(phase[0], set()).add(trio.lowlevel.currently_ki_protected())

    def get(self: Any) -> Any:
        note()
        return self.__dict__["recorded"]

    def set_(self: Any, value: Any) -> None:
        note()
        self.__dict__["recorded"] = value

    return type(f"Recording{cls.__name__}", (cls,), {attribute: property(get, set_)})


async def test_every_family_member_s_state_updates_are_protected(lib: Lib) -> None:
    seen: dict[str, set[bool]] = {}
    phase = ["init"]

    async def run(name: str, operation: Any) -> None:
        phase[0] = name
        result = operation()
        if hasattr(result, "__await__"):
            await result

    def make(cls: type[Any], attribute: str, *args: object) -> Any:
        phase[0] = "init"
        return _recording(cls, attribute, seen, phase)(*args)

    lock = make(loopsync.Lock, "_locked")
    await run("Lock.acquire", lock.acquire)
    await run("Lock.release", lock.release)
    await run("Lock.acquire_nowait", lock.acquire_nowait)
    await run("Lock.__aexit__", lambda: lock.__aexit__(None, None, None))
    event = make(loopsync.Event, "_flag")
    await run("Event.set", event.set)
    await run("Event.wait", event.wait)
    await run("Event.clear", event.clear)
    condition = make(loopsync.Condition, "_waiters")
    await run("Condition.acquire", condition.acquire)
    await run("Condition.notify", condition.notify)
    await run("Condition.notify_all", condition.notify_all)
    await run("Condition.release", condition.release)
    limiter = make(loopsync.CapacityLimiter, "_borrowers", 2)
    await run("CapacityLimiter.acquire", limiter.acquire)
    await run("CapacityLimiter.release", limiter.release)
    await run("CapacityLimiter.acquire_nowait", limiter.acquire_nowait)
    await run("CapacityLimiter.acquire_on_behalf_of", lambda: limiter.acquire_on_behalf_of(lock))
    await run("CapacityLimiter.release_on_behalf_of", lambda: limiter.release_on_behalf_of(lock))
    await run("CapacityLimiter.total_tokens", lambda: setattr(limiter, "total_tokens", 3))
    phase[0] = "outside"
    assert not event._flag
    unprotected = sorted(name for name, kinds in seen.items() if kinds != {True})
    assert unprotected == ["init", "outside"]


async def test_async_with_a_condition_is_protected_from_keyboard_interrupt(lib: Lib) -> None:
    # Entering and leaving ran unprotected until the lock's own methods
    # started: a KeyboardInterrupt there left the lock held, for good.
    seen: list[bool] = []

    class Recording(loopsync.Lock):
        async def acquire(self) -> Literal[True]:
            seen.append(trio.lowlevel.currently_ki_protected())
            return await super().acquire()

        def release(self) -> None:
            seen.append(trio.lowlevel.currently_ki_protected())
            super().release()

    async with loopsync.Lock():  # loads the trio adapter, which applies the protection
        pass
    condition = loopsync.Condition(Recording())
    async with condition:
        pass
    assert seen == [True, True]
    # The same through the condition's own acquire() and release() (beyond
    # trio's, whose condition leaves them unprotected).
    await condition.acquire()
    condition.release()
    assert seen == [True] * 4
    assert not condition.locked()


async def test_async_with_a_subclass_s_own_methods_is_protected(lib: Lib) -> None:
    # ``async with`` runs a subclass's own acquire() and release() (as
    # asyncio's does) from frames of its own, which ran unprotected: a
    # KeyboardInterrupt there left the lock held, or the permit taken.
    seen: list[bool] = []

    def recording(cls: type[Any]) -> Any:
        class Recording(cls):  # type: ignore[valid-type, misc]
            async def acquire(self) -> Any:
                seen.append(trio.lowlevel.currently_ki_protected())
                return await super().acquire()

            def release(self) -> None:
                seen.append(trio.lowlevel.currently_ki_protected())
                super().release()

        return Recording

    for cls, args in (
        (loopsync.Lock, ()),
        (loopsync.Semaphore, ()),
        (loopsync.CapacityLimiter, (1,)),
    ):
        primitive = recording(cls)(*args)
        async with primitive:
            pass
        assert not primitive.statistics().tasks_waiting
    assert seen == [True] * 6


@pytest.mark.parametrize(
    "call", ["limiter.release_on_behalf_of('job')", "limiter.total_tokens = 2"]
)
def test_a_limiter_used_before_trio_was_imported_is_protected_under_trio(call: str) -> None:
    # The limiter lent its token before trio was imported, so no loopsync
    # call loaded the protecting adapter: these two ran unprotected.
    code = (
        "import loopsync\n"
        "seen = []\n"
        "class Recording(loopsync.CapacityLimiter):\n"
        "    def _lend_free_tokens(self):\n"
        "        seen.append(trio.lowlevel.currently_ki_protected())\n"
        "        super()._lend_free_tokens()\n"
        "limiter = Recording(1)\n"
        "limiter.acquire_on_behalf_of_nowait('job')\n"
        "import trio\n"
        "async def main():\n"
        f"    {call}\n"
        "    print(seen)\n"
        "trio.run(main)\n"
    )
    assert python_output(code) == "[True]"


@pytest.mark.parametrize("cls", ["Lock", "Semaphore"])
def test_a_guest_s_first_release_hands_over_protected(cls: str) -> None:
    # A task of an asyncio host holds the primitive and another waits,
    # before the host imports trio and starts a guest run, whose first
    # loopsync call releases it: the hand-off, which a KeyboardInterrupt
    # could split, must run protected; freeing it alone need not be.
    code = (
        "import asyncio, loopsync\n"
        "seen = []\n"
        f"class Recording(loopsync.{cls}):\n"
        "    def _hand_over(self):\n"
        "        seen.append(trio.lowlevel.currently_ki_protected())\n"
        "        return super()._hand_over()\n"
        "primitive = Recording()\n"
        "async def guest():\n"
        "    primitive.release()\n"
        "async def main():\n"
        "    global trio\n"
        "    loop = asyncio.get_running_loop()\n"
        "    await primitive.acquire()\n"
        "    waiter = asyncio.create_task(primitive.acquire())\n"
        "    await asyncio.sleep(0)\n"
        "    import trio\n"
        "    ended = loop.create_future()\n"
        "    trio.lowlevel.start_guest_run(guest, done_callback=ended.set_result,\n"
        "        run_sync_soon_threadsafe=loop.call_soon_threadsafe)\n"
        "    (await ended).unwrap()\n"
        "    await waiter\n"
        "    print(seen, primitive.locked())\n"
        "asyncio.run(main())\n"
    )
    assert python_output(code) == "[True] True"


@pytest.mark.parametrize("query", ["sem.statistics()", "repr(sem)"])
def test_a_keyboard_interrupt_in_a_guest_s_first_query_loses_no_waiter_of_its_host(
    query: str,
) -> None:
    # Tasks of an asyncio host wait on a semaphore, one of them cancelled
    # from the middle of the queue, before the host imports trio and starts
    # a guest run, whose first loopsync call is a query: its sweep of the
    # queue must be protected.  A Ctrl-C in the middle of it (raised there
    # by a tracer) dropped the waiters still there, which no release woke.
    code = (
        "import asyncio, signal, sys\n"
        "import loopsync\n"
        "from loopsync._waitqueue import WaiterQueue\n"
        "sem = loopsync.Semaphore(0)\n"
        "# Python's own handler, which trio's guest replaces (a job run in the\n"
        "# background of a shell starts with SIGINT ignored).\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "def tracer(frame, event, arg):\n"
        "    if frame.f_code is not WaiterQueue._sweep.__code__:\n"
        "        return None\n"
        "    def line(frame, event, arg):\n"
        "        if event == 'line' and not frame.f_locals['self']:  # cleared\n"
        "            sys.settrace(None)\n"
        "            signal.raise_signal(signal.SIGINT)\n"
        "        return line\n"
        "    return line\n"
        "async def guest():\n"
        "    sys.settrace(tracer)\n"
        f"    {query}\n"
        "    sys.settrace(None)\n"
        "    await trio.lowlevel.checkpoint()\n"
        "async def main():\n"
        "    global trio\n"
        "    waiters = [asyncio.create_task(sem.acquire()) for _ in range(3)]\n"
        "    await asyncio.sleep(0)\n"
        "    waiters[1].cancel()\n"
        "    await asyncio.sleep(0)\n"
        "    import trio\n"
        "    ended = asyncio.get_running_loop().create_future()\n"
        "    trio.lowlevel.start_guest_run(guest, done_callback=ended.set_result,\n"
        "        run_sync_soon_threadsafe=asyncio.get_running_loop().call_soon_threadsafe)\n"
        "    outcome = await ended\n"
        "    sem.release()\n"
        "    sem.release()\n"
        "    for _ in range(3):\n"
        "        await asyncio.sleep(0)\n"
        "    print(type(outcome.error).__name__, waiters[0].done(), waiters[2].done(), sem.value)\n"
        "    for waiter in waiters:\n"
        "        waiter.cancel()\n"
        "# Not asyncio.run(), whose handler of SIGINT would be trio's guest's.\n"
        "loop = asyncio.new_event_loop()\n"
        "loop.run_until_complete(main())\n"
        "loop.close()\n"
    )
    assert python_output(code) == "KeyboardInterrupt True True 0"


async def test_a_limiter_checks_its_new_total_open_to_keyboard_interrupt_as_trio_s(
    lib: Lib,
) -> None:
    # The comparisons of an int subclass are the user's code, which trio's
    # setter runs unprotected: a Ctrl-C there changes nothing.
    seen: list[bool] = []

    class Total(int):
        def __lt__(self, other: object) -> bool:
            seen.append(trio.lowlevel.currently_ki_protected())
            return int(self) < other  # type: ignore[operator]

    for limiter in (trio.CapacityLimiter(1), loopsync.CapacityLimiter(1)):
        limiter.total_tokens = Total(2)
        assert limiter.total_tokens == 2
    assert seen == [False, False]


async def test_bounded_semaphore_at_bound_zero_hands_off_as_trio_does(lib: Lib) -> None:
    # trio hands a waiting task the permit before it looks at the bound.
    for sem in (loopsync.BoundedSemaphore(0), trio.Semaphore(0, max_value=0)):
        async with lib.task_group() as group:
            waiter = await lib.start_queued(group, sem.acquire)
            sem.release()
            await lib.settle()
            assert waiter.done
        with pytest.raises(ValueError, match="released too many times"):
            sem.release()
        assert sem.value == 0


async def test_async_with_is_protected_from_keyboard_interrupt(lib: Lib) -> None:
    seen: list[bool] = []

    class Recording(loopsync.Semaphore):
        def release(self) -> None:
            seen.append(trio.lowlevel.currently_ki_protected())
            super().release()

    async with Recording(1):
        pass
    assert seen == [True]


async def test_a_barrier_s_action_is_open_to_keyboard_interrupt(lib: Lib) -> None:
    # The action is the user's code, and may run for long (a blocking call):
    # run protected, as the trip around it is, it could not be stopped by
    # Ctrl-C until it returned.
    seen: dict[str, set[bool]] = {}
    phase = ["init"]

    def action() -> None:
        seen["action"] = {trio.lowlevel.currently_ki_protected()}
        phase[0] = "trip"

    barrier = _recording(loopsync.Barrier, "_state", seen, phase)(1, action)
    phase[0] = "wait"
    assert await barrier.wait() == 0
    assert seen["action"] == {False}
    assert seen["wait"] == seen["trip"] == {True}


async def test_barrier_never_drains_under_trio(lib: Lib) -> None:
    # A woken trio task cannot be cancelled, so the tasks a trip releases are
    # gone at once: the next cycle fills right away, and a reset() just after
    # the trip does not touch them.
    barrier = loopsync.Barrier(2)
    async with lib.task_group() as group:
        first = await lib.start_queued(group, barrier.wait)
        assert await barrier.wait() == 1
        assert repr(barrier).endswith("[filling, waiters:0/2]>")
        await barrier.reset()
        second = group.start(barrier.wait)
        with trio.testing.assert_checkpoints():
            assert await barrier.wait() in (0, 1)
    assert first.result == 0
    assert second.result in (0, 1)


_RECORDING = """
import trio, loopsync
seen = []

def recording(cls, attribute):
    # Every write of *attribute* notes whether it ran protected.
    class Recording(cls):
        def __setattr__(self, name, value):
            if name == attribute:
                seen.append(trio.lowlevel.currently_ki_protected())
            super().__setattr__(name, value)
    return Recording
"""


@pytest.mark.parametrize(
    "calls",
    [
        "sem = recording(loopsync.Semaphore, '_value')(1)\n"
        "    seen.clear()\n"
        "    sem.acquire_nowait()\n"
        "    sem.release()",
        "barrier = recording(loopsync.Barrier, '_state')(2)\n"
        "    seen.clear()\n"
        "    await barrier.abort()\n"
        "    await barrier.reset()",
    ],
    ids=["semaphore", "barrier"],
)
def test_protected_before_anything_awaited_under_trio(calls: str) -> None:
    # In a new process, so that nothing has loaded the trio adapter yet: the
    # first calls are protected all the same.
    code = f"{_RECORDING}\nasync def main():\n    {calls}\n    print(seen)\ntrio.run(main)\n"
    output = python_output(code)
    assert output == "[True, True]"


def test_a_trio_that_cannot_protect_loopsync_is_refused_under_trio_only() -> None:
    # Before 0.28, trio's enable_ki_protection() returned a protected copy and
    # left the function itself unprotected: loopsync ran without protection.
    code = (
        "import asyncio, functools, trio, trio.lowlevel\n"
        "def protected_copy(func):\n"
        "    @functools.wraps(func)\n"
        "    def copy(*args, **kwargs):\n"
        "        return func(*args, **kwargs)\n"
        "    return copy\n"
        "trio.lowlevel.enable_ki_protection = protected_copy\n"
        "trio.__version__ = '0.27.0'\n"
        "import loopsync\n"
        "lock = loopsync.Lock()\n"
        "async def use():\n"
        "    async with lock:\n"
        "        pass\n"
        "asyncio.run(use())\n"
        "print('asyncio: used')\n"
        "try:\n"
        "    trio.run(use)\n"
        "except RuntimeError as exc:\n"
        "    print(f'trio: {exc}')\n"
    )
    assert python_output(code).splitlines() == [
        "asyncio: used",
        "trio: loopsync needs trio 0.28 or newer, not trio 0.27.0",
    ]


def test_protected_under_trio_after_use_under_asyncio() -> None:
    # A semaphore bound to an asyncio loop, then called under trio before any
    # loopsync call loaded the trio adapter: 0.1 ran these calls unprotected.
    code = (
        f"{_RECORDING}\n"
        "import asyncio\n"
        "sem = recording(loopsync.Semaphore, '_value')(0)\n"
        "async def bind():\n"
        "    task = asyncio.create_task(sem.acquire())\n"
        "    await asyncio.sleep(0)\n"
        "    sem.release()\n"
        "    await task\n"
        "asyncio.run(bind())\n"
        "async def main():\n"
        "    seen.clear()\n"
        "    sem.release()\n"
        "    sem.acquire_nowait()\n"
        "    print(seen)\n"
        "trio.run(main)\n"
    )
    output = python_output(code)
    assert output == "[True, True]"


def test_a_bound_primitive_is_protected_under_trio_in_a_fresh_process() -> None:
    # Bound to an asyncio loop, a primitive never looks the library up; its
    # first calls under trio must load the protecting adapter all the same.
    code = (
        f"{_RECORDING}\n"
        "import asyncio\n"
        "sem = recording(loopsync.Semaphore, '_value')(0)\n"
        "barrier = recording(loopsync.Barrier, '_state')(1)\n"
        "async def bind():\n"
        "    task = asyncio.create_task(sem.acquire())\n"
        "    await asyncio.sleep(0)\n"
        "    sem.release()\n"
        "    await task\n"
        "    await barrier.wait()\n"
        "asyncio.run(bind())\n"
        "sem._value = 1\n"
        "async def main():\n"
        "    seen.clear()\n"
        "    await sem.acquire()\n"
        "    await barrier.abort()\n"
        "    await barrier.reset()\n"
        "    print(seen)\n"
        "trio.run(main)\n"
    )
    assert python_output(code) == "[True, True, True]"


async def test_counting_the_waiters_is_protected_from_keyboard_interrupt(lib: Lib) -> None:
    # statistics(), n_waiting and repr() rebuild a queue from unprotected code.
    from loopsync._waitqueue import WaiterQueue

    seen: list[bool] = []

    class Recording(WaiterQueue):
        __slots__ = ()

        def clear(self) -> None:
            seen.append(trio.lowlevel.currently_ki_protected())
            super().clear()

    sem = loopsync.Semaphore(0)
    sem._waiters = Recording()
    async with lib.task_group() as group:
        await lib.start_queued(group, sem.acquire)
        middle = await lib.start_queued(group, sem.acquire)
        await lib.start_queued(group, sem.acquire)
        middle.cancel()  # it leaves from inside the queue, which keeps it until a sweep
        await lib.settle()
        assert sem.statistics().tasks_waiting == 2
        sem.release()
        sem.release()
    assert seen == [True]


def test_calls_that_need_no_task_work_outside_a_trio_run_as_trio_s() -> None:
    # trio's limiter lends and takes back tokens on behalf of a borrower from
    # synchronous code too; the calls that need the current task raise its
    # RuntimeError there, as do a condition's once its lock is held.
    def run(module: object) -> list[object]:
        limiter = module.CapacityLimiter(1)  # type: ignore[attr-defined]
        cond = module.Condition()  # type: ignore[attr-defined]
        trio.run(cond.acquire)
        outcomes: list[object] = []
        calls = (
            lambda: limiter.acquire_on_behalf_of_nowait("job"),
            lambda: limiter.acquire_on_behalf_of_nowait("other job"),
            lambda: limiter.release_on_behalf_of("job"),
            limiter.acquire_nowait,
            cond.notify,
            cond.notify_all,
        )
        for call in calls:
            try:
                outcomes.append(call())
            except trio.WouldBlock as exc:
                outcomes.append((trio.WouldBlock, str(exc)))
            except RuntimeError:  # worded by each library
                outcomes.append(RuntimeError)
        return [*outcomes, limiter.borrowed_tokens, cond.locked()]

    expected = [
        None,
        (trio.WouldBlock, ""),
        None,
        RuntimeError,
        RuntimeError,
        RuntimeError,
        0,
        True,
    ]
    assert run(loopsync) == run(trio) == expected
