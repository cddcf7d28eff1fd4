"""loopsync.redis: the shared Semaphore, BoundedSemaphore and Lock, on a real server."""

from __future__ import annotations

import asyncio
import copy
import math
import pickle
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import coredis
import pytest
import trio

import loopsync
import loopsync.redis
from libs import Lib
from redis_helpers import (
    connect,
    eventually,
    finished,
    session,
    unique_name,
    waiting,
)
from redis_server import RedisServer


async def test_async_with_binds_a_permit_with_increasing_fencing_tokens(
    lib: Lib, redis_server: RedisServer
) -> None:
    async with session(redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 2)
        tokens = []
        for _ in range(3):
            async with semaphore as permit:
                assert isinstance(permit, loopsync.redis.Permit)
                assert not permit.lost
                assert (await semaphore.statistics()).borrowed == 1
                tokens.append(permit.fencing_token)
        assert all(isinstance(token, int) for token in tokens)
        assert tokens == sorted(set(tokens))
        assert await semaphore.statistics() == loopsync.redis.SemaphoreStatistics(
            value=2, borrowed=0, tasks_waiting=0
        )


async def test_never_more_holders_than_permits(lib: Lib, redis_server: RedisServer) -> None:
    async with session(redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 3)
        holding = 0
        most = 0
        full = anyio.Event()

        async def hold() -> None:
            nonlocal holding, most
            async with semaphore:
                holding += 1
                most = max(most, holding)
                if holding == 3:
                    full.set()
                await full.wait()  # every permit is held once at the same time
                holding -= 1

        async with lib.task_group() as group:
            for _ in range(20):
                group.start(hold)
        assert most == 3
        assert (await semaphore.statistics()).borrowed == 0


async def test_the_end_of_async_with_releases_the_permit_it_bound(
    lib: Lib, redis_server: RedisServer
) -> None:
    # Not the task's last permit: one taken inside the block (to hand to
    # another task, say) stays held until it is released.
    async with session(redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 3)
        async with semaphore:
            async with semaphore:
                taken = await semaphore.acquire()
            assert (await semaphore.statistics()).borrowed == 2
        assert (await semaphore.statistics()).borrowed == 1
        await semaphore.release(taken)  # it was still held
        assert (await semaphore.statistics()).borrowed == 0


async def test_a_held_permit_outlives_its_lease_while_the_session_renews_it(
    lib: Lib, redis_server: RedisServer
) -> None:
    # A lease of a second: renewed every third of it, it stays held through
    # the event loop's pauses of a busy machine (under 0.6 s).
    async with session(redis_server) as entered, session(redis_server) as other:
        name = unique_name()
        semaphore = loopsync.redis.Semaphore(entered, name, 1, lease=1.0)
        permit = await semaphore.acquire()
        first_deadline = permit.deadline

        async def renewed_past_first_deadline() -> bool:
            await semaphore.statistics()  # a round trip between looks
            return permit.deadline > first_deadline + 1.0

        await eventually(renewed_past_first_deadline)
        with pytest.raises(loopsync.WouldBlock):
            await loopsync.redis.Semaphore(other, name, 1, lease=1.0).acquire_nowait()
        assert not permit.lost
        await permit.release()


async def test_waiting_tasks_are_served_in_arrival_order(
    lib: Lib, redis_server: RedisServer
) -> None:
    async with session(redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
        order: list[int] = []

        async def take(index: int) -> None:
            async with semaphore:
                order.append(index)

        first = await semaphore.acquire()
        async with lib.task_group() as group:
            for index in range(5):
                group.start(take, index)
                await waiting(semaphore, index + 1)
            await semaphore.release(first)
        assert order == [0, 1, 2, 3, 4]


async def test_a_release_hands_the_permit_to_exactly_one_waiting_task(
    lib: Lib, redis_server: RedisServer
) -> None:
    async with session(redis_server) as entered, session(redis_server) as other:
        name = unique_name()
        semaphore = loopsync.redis.Semaphore(entered, name, 1)
        elsewhere = loopsync.redis.Semaphore(other, name, 1)
        permit = await semaphore.acquire()
        async with lib.task_group() as group:
            handles = []
            for count in (1, 2, 3):
                handles.append(group.start(elsewhere.acquire))
                await waiting(semaphore, count)
            await semaphore.release(permit)
            # Handed straight to the head of the queue: no barging, one woken.
            statistics = await semaphore.statistics()
            assert (statistics.borrowed, statistics.tasks_waiting) == (1, 2)
            await finished(handles[0])
            assert handles[0].result.fencing_token > permit.fencing_token
            assert not handles[1].done
            await elsewhere.release(handles[0].result)
            await finished(handles[1])
            await elsewhere.release(handles[1].result)
            await finished(handles[2])
            await elsewhere.release(handles[2].result)


async def test_a_cancelled_waiting_task_keeps_no_permit_and_no_place(
    lib: Lib, redis_server: RedisServer
) -> None:
    async with session(redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
        permit = await semaphore.acquire()
        async with lib.task_group() as group:
            cancelled = group.start(semaphore.acquire)
            later = group.start(semaphore.acquire)
            await waiting(semaphore, 2)
            cancelled.cancel()
            await waiting(semaphore, 1)
            await semaphore.release(permit)
            await finished(later)
        assert cancelled.outcome == "cancelled"
        assert later.outcome == "returned"
        await semaphore.release(later.result)
        assert (await semaphore.statistics()).borrowed == 0


async def test_a_deadline_of_zero_takes_nothing(lib: Lib, redis_server: RedisServer) -> None:
    async with session(redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
        permit = await semaphore.acquire()
        with anyio.move_on_after(0) as scope:
            await semaphore.acquire()
        assert scope.cancelled_caught
        await semaphore.release(permit)
        await eventually(
            lambda: _statistics_are(semaphore, borrowed=0, tasks_waiting=0),
        )


async def _statistics_are(semaphore: loopsync.redis.Semaphore, **expected: int) -> bool:
    statistics = await semaphore.statistics()
    return all(getattr(statistics, key) == value for key, value in expected.items())


async def test_acquire_nowait_raises_the_native_would_block_and_never_queues(
    lib: Lib, redis_server: RedisServer
) -> None:
    async with session(redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
        permit = await semaphore.acquire_nowait()
        with pytest.raises(loopsync.WouldBlock) as caught:
            await semaphore.acquire_nowait()
        if lib.family == "trio":
            import trio

            assert isinstance(caught.value, trio.WouldBlock)
        assert (await semaphore.statistics()).tasks_waiting == 0
        await semaphore.release(permit)
        assert (await semaphore.statistics()).borrowed == 0


async def test_locked_is_true_while_no_permit_is_free(lib: Lib, redis_server: RedisServer) -> None:
    async with session(redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 2)
        first = await semaphore.acquire()
        assert not await semaphore.locked()
        second = await semaphore.acquire()
        assert await semaphore.locked()
        await semaphore.release(first)
        await semaphore.release(second)
        assert not await semaphore.locked()


async def test_release_without_a_permit_releases_the_tasks_last(
    lib: Lib, redis_server: RedisServer
) -> None:
    async with session(redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 2)
        first = await semaphore.acquire()
        second = await semaphore.acquire()
        await semaphore.release()
        assert repr(second).endswith("[released]>")
        assert repr(first).endswith("[held]>")
        await first.release()
        assert (await semaphore.statistics()).borrowed == 0


async def test_releasing_a_permit_not_held_raises(lib: Lib, redis_server: RedisServer) -> None:
    async with session(redis_server) as entered:
        name = unique_name()
        semaphore = loopsync.redis.Semaphore(entered, name, 1)
        with pytest.raises(RuntimeError, match="the current task holds none"):
            await semaphore.release()
        permit = await semaphore.acquire()
        await semaphore.release(permit)
        with pytest.raises(RuntimeError, match=r"Permit 'sem-\d+' token=\d+ \[released\]> is not"):
            await semaphore.release(permit)
        bounded = loopsync.redis.BoundedSemaphore(entered, unique_name(), 1)
        with pytest.raises(ValueError, match=r"^BoundedSemaphore released too many times"):
            await bounded.release()
        other = loopsync.redis.Semaphore(entered, unique_name(), 1)
        foreign = await other.acquire()
        with pytest.raises(RuntimeError, match="is not held"):
            await semaphore.release(foreign)
        with pytest.raises(TypeError, match=r"^expected a loopsync\.redis\.Permit, not int$"):
            await semaphore.release(3)  # type: ignore[arg-type]
        await other.release(foreign)
        assert (await other.statistics()).borrowed == 0


async def test_only_the_permit_acquire_returned_releases_it(
    lib: Lib, redis_server: RedisServer
) -> None:
    async with session(redis_server) as entered:
        lock = loopsync.redis.Lock(entered, unique_name("lock"))
        permit = await lock.acquire()
        # A permit made with the holder's id is no claim to its lock.
        forged = loopsync.redis.Permit(lock, permit.id, permit.fencing_token, permit.deadline)
        async with lib.task_group() as group:
            stranger = group.start(lock.release, forged)
        assert isinstance(stranger.exception, RuntimeError)
        assert str(stranger.exception) == "can't release a Lock you don't own"
        assert (await lock.statistics()).borrowed == 1
        await permit.release()  # no LeaseLost: the lock was held throughout
        assert not await lock.locked()


async def test_session_semaphore_and_permit_refuse_to_be_copied(
    lib: Lib, redis_server: RedisServer
) -> None:
    async with session(redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
        async with semaphore as permit:
            for claim in (entered, semaphore, permit):
                for duplicate in (copy.copy, copy.deepcopy, pickle.dumps):
                    with pytest.raises(TypeError, match=r"^cannot pickle or copy <loopsync\.redis"):
                        duplicate(claim)
            assert repr(permit).endswith("[held]>")


async def test_a_permit_may_be_released_by_another_task(
    lib: Lib, redis_server: RedisServer
) -> None:
    async with session(redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
        async with lib.task_group() as group:
            taker = group.start(semaphore.acquire)
        await semaphore.release(taker.result)
        assert (await semaphore.statistics()).borrowed == 0


async def test_lock_has_trios_owner_rules(lib: Lib, redis_server: RedisServer) -> None:
    async with session(redis_server) as entered:
        lock = loopsync.redis.Lock(entered, unique_name("lock"))
        async with lock as permit:
            with pytest.raises(RuntimeError, match=r"^attempt to re-acquire an already held Lock$"):
                await lock.acquire()
            async with lib.task_group() as group:
                stranger = group.start(lock.release, permit)
                nobody = group.start(lock.release)
            for handle in (stranger, nobody):
                assert isinstance(handle.exception, RuntimeError)
                assert str(handle.exception) == "can't release a Lock you don't own"
            assert await lock.locked()
        assert not await lock.locked()


async def test_processes_must_agree_on_the_value(lib: Lib, redis_server: RedisServer) -> None:
    async with session(redis_server) as entered:
        name = unique_name()
        permit = await loopsync.redis.Semaphore(entered, name, 2).acquire()
        with pytest.raises(ValueError, match=r"^'sem-\d+' is in use with value 2, not 3$"):
            await loopsync.redis.Semaphore(entered, name, 3).acquire()
        await permit.release()


async def test_reading_an_unused_name_fixes_no_value(lib: Lib, redis_server: RedisServer) -> None:
    async with session(redis_server) as entered:
        name = unique_name()
        reader = loopsync.redis.Semaphore(entered, name, 2)
        assert not await reader.locked()
        assert await reader.statistics() == loopsync.redis.SemaphoreStatistics(2, 0, 0)
        async with loopsync.redis.Semaphore(entered, name, 3) as permit:
            assert permit.fencing_token > 0
            with pytest.raises(ValueError, match=r"^'sem-\d+' is in use with value 3, not 2$"):
                await reader.statistics()


async def test_a_session_must_be_entered(lib: Lib, redis_server: RedisServer) -> None:
    async with connect(redis_server) as client:
        idle = loopsync.redis.Session(client)
        semaphore = loopsync.redis.Semaphore(idle, unique_name(), 1)
        message = r"^the Session is not entered: use 'async with Session\(client\)'$"
        for operation in (semaphore.acquire, semaphore.acquire_nowait, semaphore.statistics):
            with pytest.raises(RuntimeError, match=message):
                await operation()
        async with idle as entered:
            with pytest.raises(RuntimeError, match=r"^this Session is already entered$"):
                await entered.__aenter__()


async def _in_a_trio_guest_run(async_fn: Callable[[], Awaitable[Any]]) -> Any:
    """Return ``await async_fn()`` run by a trio guest of the running loop."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()
    trio.lowlevel.start_guest_run(
        async_fn,
        run_sync_soon_threadsafe=loop.call_soon_threadsafe,
        done_callback=done.set_result,
        host_uses_signal_set_wakeup_fd=True,  # uvloop does
    )
    outcome = await done
    return outcome.unwrap()


async def test_a_session_serves_only_the_thread_and_library_that_entered_it(
    lib: Lib, redis_server: RedisServer
) -> None:
    # A task of another thread (or of a trio guest run) reached the session's
    # task group from outside its loop: it raised what that loop's calls
    # raise elsewhere, or seemed to succeed and broke the session's exit.
    entered_there, done = threading.Event(), threading.Event()
    shared: dict[str, Any] = {}

    async def host() -> None:
        async with session(redis_server) as entered:
            semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
            shared["semaphore"] = semaphore
            entered_there.set()
            await asyncio.to_thread(done.wait)
            shared["borrowed"] = (await semaphore.statistics()).borrowed

    thread = threading.Thread(target=asyncio.run, args=(host(),))
    thread.start()
    try:
        await anyio.to_thread.run_sync(entered_there.wait)
        semaphore = shared["semaphore"]
        message = r"^the Session serves the tasks of the thread that entered it only$"
        for operation in (semaphore.acquire, semaphore.acquire_nowait, semaphore.statistics):
            with pytest.raises(RuntimeError, match=message):
                await operation()
    finally:
        done.set()
        await anyio.to_thread.run_sync(thread.join)
    assert shared["borrowed"] == 0
    if lib.family == "asyncio":
        # A trio guest of this loop: its thread, not its library.
        async with session(redis_server) as entered:
            semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
            message = r"^the Session was entered under asyncio, not trio$"
            with pytest.raises(RuntimeError, match=message):
                await _in_a_trio_guest_run(semaphore.statistics)
            assert (await semaphore.statistics()).borrowed == 0


async def test_leaving_the_session_frees_what_its_tasks_held(
    lib: Lib, redis_server: RedisServer
) -> None:
    name = unique_name()
    async with session(redis_server) as entered:
        await loopsync.redis.Semaphore(entered, name, 2).acquire()
    async with session(redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(entered, name, 2)
        assert (await semaphore.statistics()).borrowed == 0


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (("",), ValueError, "^name must not be empty$"),
        ((b"x",), TypeError, "^name must be a str, not bytes$"),
        (("x", 0), ValueError, "^value must be at least 1, not 0$"),
        # Two larger values would be one to the server, which counts in doubles.
        (("x", 2**53 + 1), ValueError, r"^value must be at most 2\*\*53$"),
        (("x", 1.5), TypeError, "^value must be an int, not float$"),
        (("x", True), TypeError, "^value must be an int, not bool$"),
        (("x", 1, 0), ValueError, "^lease must be positive and finite, not 0$"),
        (("x", 1, -1.0), ValueError, "^lease must be positive and finite, not -1.0$"),
        (("x", 1, math.inf), ValueError, "^lease must be positive and finite, not inf$"),
        (("x", 1, "10"), TypeError, "^lease must be a number of seconds, not str$"),
        (("x", 1, 1e16), ValueError, "^lease must be at most 1000000000 seconds$"),
        (("x", 1, 10**400), ValueError, "^lease must be at most 1000000000 seconds$"),
        (("x", 1, math.nan), ValueError, "^lease must be positive and finite, not nan$"),
        # Under a millisecond, the server's unit, a permit is lost as it is granted.
        (("x", 1, 5e-324), ValueError, "^lease must be at least 0.001 seconds, not 5e-324$"),
        # A lone surrogate, which no key on the server can have.
        (("\ud800",), ValueError, r"^name must be encodable in UTF-8, not '\\ud800'$"),
    ],
)
def test_bad_arguments_raise_clear_errors(
    arguments: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    session = loopsync.redis.Session(coredis.Redis())
    name, *rest = arguments
    options = {"lease": rest[1]} if len(rest) > 1 else {}
    with pytest.raises(error, match=message):
        loopsync.redis.Semaphore(session, name, *rest[:1], **options)


def test_a_lease_lost_callback_to_await_is_refused() -> None:
    # Its work would never run: loopsync.redis calls it, and cannot await it.
    session = loopsync.redis.Session(coredis.Redis())

    async def on_lease_lost(permit: loopsync.redis.Permit) -> None: ...

    class Awaited:
        async def __call__(self, permit: loopsync.redis.Permit) -> None: ...

    for callback in (on_lease_lost, Awaited()):
        with pytest.raises(TypeError, match=r"^on_lease_lost must be a plain function"):
            loopsync.redis.Semaphore(session, "x", on_lease_lost=callback)


def test_a_permit_made_of_bad_arguments_is_refused() -> None:
    semaphore = loopsync.redis.Semaphore(loopsync.redis.Session(coredis.Redis()), "x")
    for arguments, message in (
        ((1, "id", 1, 0.0), r"^semaphore must be a loopsync\.redis\.Semaphore, not int$"),
        ((semaphore, 1, 1, 0.0), "^permit_id must be a str, not int$"),
        ((semaphore, "id", "1", 0.0), "^token must be an int, not str$"),
        ((semaphore, "id", 1, None), "^deadline must be a number, not NoneType$"),
    ):
        with pytest.raises(TypeError, match=message):
            loopsync.redis.Permit(*arguments)


def test_a_semaphore_s_name_lease_and_value_are_read_only() -> None:
    # A lease reassigned changed the renewals' period, not the server's lease.
    semaphore = loopsync.redis.Semaphore(loopsync.redis.Session(coredis.Redis()), "x", 2, lease=5)
    for attribute, new in (("name", "y"), ("lease", 60.0), ("value", 3)):
        with pytest.raises(AttributeError):
            setattr(semaphore, attribute, new)
    assert (semaphore.name, semaphore.lease, semaphore.value) == ("x", 5.0, 2)


def test_a_session_s_poll_interval_and_cleanup_timeout_are_read_only() -> None:
    # Set later, they went unchecked, and the time a withdrawn id is
    # remembered for, computed from them once, no longer matched.
    session = loopsync.redis.Session(coredis.Redis(), poll_interval=2, cleanup_timeout=5)
    for attribute in ("poll_interval", "cleanup_timeout"):
        with pytest.raises(AttributeError):
            setattr(session, attribute, "x")
    assert (session.poll_interval, session.cleanup_timeout, session.liveness) == (2.0, 5.0, 6.0)


def test_bad_session_arguments_raise_clear_errors() -> None:
    with pytest.raises(TypeError, match=r"^session must be a loopsync\.redis\.Session, not int$"):
        loopsync.redis.Semaphore(1, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^on_lease_lost must be callable or None, not int$"):
        loopsync.redis.Lock(loopsync.redis.Session(coredis.Redis()), "x", on_lease_lost=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^poll_interval must be positive and finite, not 0$"):
        loopsync.redis.Session(coredis.Redis(), poll_interval=0)
    with pytest.raises(ValueError, match=r"^cleanup_timeout must be at most 1000000000 seconds"):
        loopsync.redis.Session(coredis.Redis(), cleanup_timeout=2e9)
    with pytest.raises(TypeError, match=r"^cleanup_timeout must be a number of seconds"):
        loopsync.redis.Session(coredis.Redis(), cleanup_timeout=None)  # type: ignore[arg-type]
    # Shorter, every release gave up before the server could answer.
    with pytest.raises(ValueError, match=r"^cleanup_timeout must be at least 0.001 seconds"):
        loopsync.redis.Session(coredis.Redis(), cleanup_timeout=0.0005)
    # Taken for a coredis client, anything else made entering wait for good.
    for client in (None, "redis://127.0.0.1:6379", object()):
        with pytest.raises(TypeError, match=r"^client must be a coredis\.Redis or"):
            loopsync.redis.Session(client)
