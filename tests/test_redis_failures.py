"""loopsync.redis under failure: dead processes, a restarted or stalled server, a
lost pub/sub connection, cancellation storms and cancellations at every await."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import coredis
import pytest

import loopsync
import loopsync.redis
from libs import Handle, Lib
from loopsync.redis._client import CoredisClient
from loopsync.redis._scripts import ACQUIRE, KEY_SUFFIXES, RELEASE, RENEW
from redis_helpers import (
    connect,
    eventually,
    finished,
    session,
    start_storm,
    unique_name,
    waiting,
)
from redis_server import RedisServer, free_port

WORKER = str(Path(__file__).with_name("redis_worker.py"))


def start_worker(server: RedisServer, context: str, name: str, value: int, action: str) -> Any:
    return subprocess.Popen(
        [sys.executable, WORKER, context, str(server.port), name, str(value), action],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent,
    )


def finish(process: Any, *, kill: bool = False) -> None:
    if kill:
        process.kill()
    process.wait()
    process.stdout.close()


async def read_line(process: Any) -> str:
    line: str = await anyio.to_thread.run_sync(process.stdout.readline)
    return line.strip()


async def test_a_dead_holders_permit_is_taken_over_within_its_lease(
    lib: Lib, redis_server: RedisServer
) -> None:
    name = unique_name()
    worker = start_worker(redis_server, "asyncio", name, 1, "hold-then-die")
    token = int(await read_line(worker))
    finish(worker)
    async with session(redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(entered, name, 1, lease=0.5)
        with anyio.fail_after(10):
            permit = await semaphore.acquire()
        # Tokens are the server's clock in microseconds: the permit came back
        # no later than 50 ms after the dead holder's lease (0.5 s) ended.
        assert 0 < permit.fencing_token - token <= 550_000
        await permit.release()


async def test_a_dead_waiter_leaves_the_queue(lib: Lib, redis_server: RedisServer) -> None:
    name = unique_name()
    async with session(redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(entered, name, 1, lease=0.5)
        permit = await semaphore.acquire()
        worker = start_worker(redis_server, "trio", name, 1, "wait-then-die")
        assert await read_line(worker) == "waiting"
        await waiting(semaphore, 1)
        finish(worker, kill=True)
        await waiting(semaphore, 0)  # within its liveness: 3 poll intervals
        await permit.release()
        assert (await semaphore.statistics()).borrowed == 0


@pytest.mark.parametrize("pair", [("asyncio", "trio"), ("uvloop", "anyio-trio")])
def test_two_processes_of_two_libraries_share_one_semaphore(
    pair: Sequence[str], redis_server: RedisServer
) -> None:
    name = unique_name()
    workers = [start_worker(redis_server, context, name, 2, "share") for context in pair]
    outputs = [worker.communicate(timeout=60)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    # Each saw at most two holders at once, counted on the server.
    assert all(1 <= int(output) <= 2 for output in outputs)


async def test_a_restart_loses_the_lease_and_tokens_keep_increasing(
    lib: Lib, private_redis_server: RedisServer
) -> None:
    lost = anyio.Event()
    async with session(private_redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(
            entered, "restarted", 1, lease=0.3, on_lease_lost=lambda permit: lost.set()
        )
        permit = await semaphore.acquire()
        await anyio.to_thread.run_sync(private_redis_server.restart)
        with anyio.fail_after(10):
            await lost.wait()
        assert permit.lost
        with pytest.raises(loopsync.redis.LeaseLost):
            permit.check()
        with pytest.raises(loopsync.redis.LeaseLost, match="ended before its release"):
            await permit.release()
        # The scripts are loaded again, and the counter lost with the keys
        # gives way to the clock, which alone keeps the token of a process
        # that saw none before above the old ones.
        async with (
            session(private_redis_server) as elsewhere,
            loopsync.redis.Semaphore(elsewhere, "restarted", 1) as other,
        ):
            assert other.fencing_token > permit.fencing_token
        later = await semaphore.acquire()
        assert later.fencing_token > other.fencing_token
        await later.release()
        # The session listens again, on the new server.
        async with connect(private_redis_server) as admin:
            await eventually(lambda: _listening(entered, admin))


async def test_a_session_its_server_refuses_raises_the_refusal_on_entry(
    lib: Lib, redis_server: RedisServer
) -> None:
    # The entry raises the client's error at once, where it tried to listen
    # again and again, and never returned (see also the server down, below).
    async with coredis.Redis(
        host=redis_server.host, port=redis_server.port, username="nobody", password="wrong"
    ) as client:
        with anyio.fail_after(10), pytest.raises(coredis.exceptions.AuthenticationFailureError):
            async with loopsync.redis.Session(client):
                pass


async def _a_token_seen_then_lost_with_the_counter(
    server: RedisServer, entered: loopsync.redis.Session, name: str
) -> tuple[loopsync.redis.Semaphore, loopsync.redis.Permit]:
    """Take a permit of *name* whose token the server gave as if its clock ran
    an hour ahead, then restart the server, which loses the permit and the
    counter: after it, neither the counter nor the clock is above that token,
    but the highest token this process saw is."""
    lost = anyio.Event()
    semaphore = loopsync.redis.Semaphore(
        entered, name, 1, lease=0.3, on_lease_lost=lambda permit: lost.set()
    )
    async with connect(server) as admin:
        hour_ahead = int((await admin.time()).timestamp() + 3600) * 1_000_000
        meta = semaphore._keys[KEY_SUFFIXES.index("meta")]
        await admin.hset(meta, {"fence": str(hour_ahead)})
    permit = await semaphore.acquire()
    await anyio.to_thread.run_sync(server.restart)
    with anyio.fail_after(10):
        await lost.wait()
    return semaphore, permit


@pytest.mark.parametrize("through", ["the same object", "another object"])
async def test_tokens_stay_above_those_a_process_saw_when_the_servers_clock_is_behind_them(
    lib: Lib, private_redis_server: RedisServer, through: str
) -> None:
    async with session(private_redis_server) as entered:
        semaphore, permit = await _a_token_seen_then_lost_with_the_counter(
            private_redis_server, entered, unique_name()
        )
        if through == "another object":
            # One made per call: the session keeps the highest token seen.
            semaphore = loopsync.redis.Semaphore(entered, semaphore.name, 1)
        later = await semaphore.acquire()
        assert later.fencing_token > permit.fencing_token
        await later.release()


async def test_a_permit_handed_to_a_waiter_gets_a_token_above_those_its_process_saw(
    lib: Lib, private_redis_server: RedisServer
) -> None:
    # As above, but the permit comes by hand-off: the floor this process
    # sent with its ask holds when the server grants it from the queue.
    name = unique_name()
    async with session(private_redis_server) as entered, session(private_redis_server) as other:
        semaphore, permit = await _a_token_seen_then_lost_with_the_counter(
            private_redis_server, entered, name
        )
        # A process that saw no token takes the permit first; this one waits.
        first = await loopsync.redis.Semaphore(other, name, 1, lease=60).acquire()
        async with lib.task_group() as group:
            handle = group.start(semaphore.acquire)
            await waiting(semaphore, 1)
            await first.release()
            await finished(handle)
        later: loopsync.redis.Permit = handle.result
        assert later.fencing_token > permit.fencing_token
        await later.release()


async def test_a_grant_seen_late_is_asked_for_again_and_its_lease_counted_from_then(
    lib: Lib, redis_server: RedisServer
) -> None:
    lost: list[loopsync.redis.Permit] = []
    name = unique_name()
    async with session(redis_server) as entered, session(redis_server) as other:
        semaphore = loopsync.redis.Semaphore(entered, name, 1, lease=1.0, on_lease_lost=lost.append)
        holder = await loopsync.redis.Semaphore(other, name, 1, lease=60).acquire()
        async with lib.task_group() as group:
            handle = group.start(semaphore.acquire)
            await waiting(semaphore, 1)
            await holder.release()  # the server grants the waiter its permit
            # The event loop stalls (a long computation) for most of the lease
            # before the waiter sees the grant: the lease the waiter counts
            # from its next ask must not outlast the server's.
            time.sleep(0.8)  # noqa: ASYNC251 - blocking on purpose
            await finished(handle)
        permit: loopsync.redis.Permit = handle.result
        first_deadline = permit.deadline

        async def renewed_or_lost() -> bool:
            await semaphore.statistics()  # a round trip between looks
            return permit.deadline > first_deadline or permit.lost

        await eventually(renewed_or_lost)
        assert lost == []
        await permit.release()


async def test_a_session_entered_while_the_server_is_down_raises_and_enters_once_it_is_back(
    lib: Lib, private_redis_server: RedisServer
) -> None:
    async with connect(private_redis_server) as client:
        await anyio.to_thread.run_sync(private_redis_server.stop)
        idle = loopsync.redis.Session(client, poll_interval=0.05)
        # Its listener cannot subscribe: the entry raises the client's error
        # at once, as a command would (it used to wait for the server, for
        # good if the port was wrong).
        with anyio.fail_after(10), pytest.raises(coredis.exceptions.ConnectionError):
            await idle.__aenter__()
        with pytest.raises(RuntimeError, match="not entered"):
            idle._check_entered()
        await anyio.to_thread.run_sync(private_redis_server.start)
        async with idle as entered:
            permit = await loopsync.redis.Semaphore(entered, unique_name(), 1).acquire()
            await permit.release()


@pytest.mark.parametrize("stall", ["SIGSTOP", "CLIENT PAUSE"])
async def test_a_stalled_server_loses_the_lease_by_the_local_deadline(
    lib: Lib, private_redis_server: RedisServer, stall: str
) -> None:
    lost = anyio.Event()
    async with (
        session(private_redis_server, cleanup_timeout=1.0) as entered,
        connect(private_redis_server) as admin,
    ):
        semaphore = loopsync.redis.Semaphore(
            entered, "stalled", 1, lease=0.3, on_lease_lost=lambda permit: lost.set()
        )
        permit = await semaphore.acquire()
        if stall == "SIGSTOP":
            private_redis_server.pause()
        else:
            # Every client's commands wait for 0.8 s, this one's included.
            await admin.client_pause(800)
        try:
            with anyio.fail_after(10):
                await lost.wait()
            # Declared lost while the server answers nothing, so before any
            # other process could have been granted the permit.
            assert permit.lost
        finally:
            if stall == "SIGSTOP":
                private_redis_server.resume()
        with pytest.raises(loopsync.redis.LeaseLost):
            await permit.release()
        assert (await semaphore.statistics()).borrowed == 0


async def test_a_lease_whose_local_deadline_passed_unrenewed_is_lost_at_once(
    lib: Lib, redis_server: RedisServer
) -> None:
    # As when a busy event loop ran the renewal late: the server still holds
    # the permit, but the holder may already have seen it lost.  It is
    # reported at the renewal task's next wake, long before its renewal
    # would have fallen due (20 s).
    lost: list[loopsync.redis.Permit] = []
    async with session(redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(
            entered, unique_name(), 1, lease=60.0, on_lease_lost=lost.append
        )
        permit = await semaphore.acquire()
        permit.deadline = time.monotonic()
        assert permit.lost
        # A permit whose renewal falls due first wakes the renewal task (its
        # lease of 3 s outlasts the event loop's pauses).
        soon = await loopsync.redis.Semaphore(entered, unique_name(), 1, lease=3).acquire()

        async def reported() -> bool:
            await anyio.lowlevel.checkpoint()
            return bool(lost)

        await eventually(reported)
        assert lost == [permit]
        with pytest.raises(loopsync.redis.LeaseLost):
            await permit.release()
        assert (await semaphore.statistics()).borrowed == 0
        await soon.release()


@contextlib.asynccontextmanager
async def _a_waiter_behind_a_holder(
    lib: Lib, server: RedisServer
) -> AsyncIterator[tuple[loopsync.redis.Semaphore, loopsync.redis.Permit, Handle, Any]]:
    """A semaphore of one permit, held, a task waiting for it, and a client
    of the server's own."""
    async with session(server) as entered, connect(server) as admin:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
        permit = await semaphore.acquire()
        async with lib.task_group() as group:
            waiter = group.start(semaphore.acquire)
            await waiting(semaphore, 1)
            yield semaphore, permit, waiter, admin


async def test_a_waiter_acquires_without_its_pubsub_connection(
    lib: Lib, redis_server: RedisServer
) -> None:
    async with _a_waiter_behind_a_holder(lib, redis_server) as (semaphore, permit, waiter, admin):
        killed = await admin.client_kill(type_=coredis.PureToken.PUBSUB)
        assert killed >= 1
        await permit.release()
        # Polling (every 0.2 s here) finds the permit handed over.
        await finished(waiter, give_up_after=5)
        await semaphore.release(waiter.result)
        # And the session listens again, for the wake-ups of later waits.
        await eventually(lambda: _listening(semaphore._session, admin))


async def _listening(session: loopsync.redis.Session, client: Any) -> bool:
    """Whether *session* listens for its wake-ups on the server of *client*."""
    channel = f"loopsync:session:{session.id}"
    subscribers: dict[str, int] = await client.pubsub_numsub(channel)
    return subscribers.get(channel) == 1


async def test_a_cancellation_storm_leaves_every_permit_free_and_no_key_behind(
    lib: Lib, redis_server: RedisServer
) -> None:
    name = unique_name("storm")
    async with session(redis_server, poll_interval=0.05) as entered:
        # A lease long enough that a loaded machine still renews it in time.
        semaphore = loopsync.redis.Semaphore(entered, name, 3, lease=3.0)
        async with lib.task_group() as group:
            start_storm(lambda: semaphore, group.start)
        assert not [handle for handle in group.handles if handle.outcome == "raised"]
        await eventually(lambda: _is_idle(semaphore))
    async with connect(redis_server) as client:
        keys = await client.keys(f"loopsync:{{sem:{name}}}:*")
        assert sorted(keys) <= [f"loopsync:{{sem:{name}}}:{key}" for key in ("meta", "withdrawn")]
        # Gone, all at once, seconds after a released id is remembered no more.
        remembered = (entered.liveness + entered.cleanup_timeout) * 1000
        assert len(await _expiry_times(client, keys)) == 1
        assert 0 < await client.pttl(min(keys)) <= remembered + 4000


async def _is_idle(semaphore: loopsync.redis.Semaphore) -> bool:
    statistics = await semaphore.statistics()
    return statistics.borrowed == 0 and statistics.tasks_waiting == 0


class _Passing:
    """A client that passes everything on to *client*; the subclasses below
    change its scripts' replies or its announcements (:meth:`_messages`)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.is_transient = client.is_transient

    async def run_script(self, script: str, keys: Any, args: Any) -> Any:
        return await self._client.run_script(script, keys, args)

    @contextlib.asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[AsyncIterator[str]]:
        async with self._client.listen(channel) as messages:
            yield self._messages(messages)

    def _messages(self, messages: AsyncIterator[str]) -> AsyncIterator[str]:
        return messages


class _CountingReleases(_Passing):
    """A client that counts the RELEASE scripts it sends, and the most of
    them in flight at once."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.sent = self.in_flight = self.most_at_once = 0

    async def run_script(self, script: str, keys: Any, args: Any) -> Any:
        if script is not RELEASE:
            return await self._client.run_script(script, keys, args)
        self.sent += 1
        self.in_flight += 1
        self.most_at_once = max(self.most_at_once, self.in_flight)
        try:
            return await self._client.run_script(script, keys, args)
        finally:
            self.in_flight -= 1


async def test_tasks_cancelled_at_once_are_withdrawn_by_one_request_at_a_time(
    lib: Lib, redis_server: RedisServer
) -> None:
    # A request per cancelled task, sent at once, kept the session's other
    # requests (acquires, releases, renewals) waiting behind them, as the
    # client serves requests in turn: tasks retrying with short deadlines were
    # cancelled faster than their withdrawals went out, and nothing else did.
    async with connect(redis_server) as client:
        counting = _CountingReleases(CoredisClient(client))
        async with loopsync.redis.Session(counting, poll_interval=3600) as entered:
            semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
            permit = await semaphore.acquire()
            async with lib.task_group() as group:
                for _ in range(50):
                    group.start(semaphore.acquire)
                await waiting(semaphore, 50)
                group.cancel_all()
            assert all(handle.outcome == "cancelled" for handle in group.handles)
            await waiting(semaphore, 0)
            assert counting.most_at_once == 1
            assert counting.sent < 50
            await semaphore.release(permit)
            assert await _is_idle(semaphore)


class _ReadingRenewalsLate(_Passing):
    """A client that hands a RENEW script's reply over only once
    :attr:`resume` is set (:attr:`holding` set meanwhile): as a loop too busy
    to read it until the lease's local deadline passed."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.holding = anyio.Event()
        self.resume = anyio.Event()

    async def run_script(self, script: str, keys: Any, args: Any) -> Any:
        reply = await self._client.run_script(script, keys, args)
        if script is RENEW:
            with anyio.CancelScope(shield=True):
                self.holding.set()
                await self.resume.wait()
        return reply


async def test_a_permit_lost_stays_lost_when_a_renewal_s_reply_is_read_after_its_deadline(
    lib: Lib, redis_server: RedisServer
) -> None:
    # The server renewed the lease, but the deadline passed before the reply
    # was read: the holder may have stopped, told that the permit is lost.
    async with connect(redis_server) as client:
        late = _ReadingRenewalsLate(CoredisClient(client))
        async with loopsync.redis.Session(late) as entered:
            lost: list[loopsync.redis.Permit] = []
            semaphore = loopsync.redis.Semaphore(
                entered, unique_name(), 1, lease=0.3, on_lease_lost=lost.append
            )
            permit = await semaphore.acquire()
            await late.holding.wait()

            async def reported_lost() -> bool:
                await anyio.lowlevel.checkpoint()
                return permit.lost

            await eventually(reported_lost)
            late.resume.set()

            async def told() -> bool:
                await anyio.lowlevel.checkpoint()
                return bool(lost)

            await eventually(told)
            assert lost == [permit]
            assert permit.lost
            with pytest.raises(loopsync.redis.LeaseLost):
                await permit.release()


class _HoldingReleasesOf(_Passing):
    """A client that holds the RELEASE scripts of the semaphore with keys
    :attr:`keys` (:attr:`holding` set) until :attr:`resume` is set."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.keys: list[str] = []
        self.holding = anyio.Event()
        self.resume = anyio.Event()

    async def run_script(self, script: str, keys: Any, args: Any) -> Any:
        if script is RELEASE and list(keys) == self.keys:
            self.holding.set()
            await self.resume.wait()
        return await self._client.run_script(script, keys, args)


async def test_a_semaphore_s_withdrawals_do_not_wait_for_another_s(
    lib: Lib, redis_server: RedisServer
) -> None:
    # As when one's server is slow to answer (a node of a cluster): the
    # other's waiting tasks must not stay queued behind it.
    async with connect(redis_server) as client:
        holding = _HoldingReleasesOf(CoredisClient(client))
        entered = loopsync.redis.Session(holding, poll_interval=3600)
        stalled = loopsync.redis.Semaphore(entered, unique_name(), 1)
        other = loopsync.redis.Semaphore(entered, unique_name(), 1)
        holding.keys = stalled._keys
        async with entered:
            permits = [await stalled.acquire(), await other.acquire()]
            async with lib.task_group() as group:
                group.start(stalled.acquire)
                group.start(other.acquire)
                await waiting(stalled, 1)
                await waiting(other, 1)
                group.cancel(0)
                with anyio.fail_after(10):
                    await holding.holding.wait()  # its withdrawal is on its way
                group.cancel(1)
            await waiting(other, 0)
            assert (await stalled.statistics()).tasks_waiting == 1
            holding.resume.set()
            await waiting(stalled, 0)
            for permit in permits:
                await permit.release()


class _Interrupting(_Passing):
    """A client that cancels the acquiring task at one point: its n-th ask,
    before the ask is sent or after the server ran it (the reply is lost),
    or as the grant of its permit is announced."""

    def __init__(self, client: Any, point: str) -> None:
        super().__init__(client)
        self._point = point
        self._asks = 0
        self.scope = anyio.CancelScope()

    async def _interrupt(self) -> None:
        self.scope.cancel()
        await anyio.lowlevel.checkpoint()

    async def run_script(self, script: str, keys: Any, args: Any) -> Any:
        if script is ACQUIRE:
            self._asks += 1
        point = f"ask {self._asks}" if script is ACQUIRE else ""
        if point and self._point == f"{point}, before it is sent":
            await self._interrupt()
        result = await self._client.run_script(script, keys, args)
        if point and self._point == f"{point}, reply lost":
            await self._interrupt()
        return result

    async def _messages(self, messages: AsyncIterator[str]) -> AsyncIterator[str]:
        async for message in messages:
            if self._point == "as the grant is announced":
                self.scope.cancel()  # granted, and not resumed yet
            yield message


@pytest.mark.parametrize(
    "point",
    [
        "ask 1, before it is sent",
        "ask 1, reply lost",
        "ask 2, before it is sent",
        "ask 2, reply lost",
        "as the grant is announced",
    ],
)
async def test_a_cancellation_at_any_await_keeps_no_permit(
    lib: Lib, redis_server: RedisServer, point: str
) -> None:
    async with connect(redis_server) as client:
        interrupting = _Interrupting(CoredisClient(client), point)
        async with loopsync.redis.Session(interrupting, poll_interval=0.1) as entered:
            semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
            holder = await semaphore.acquire()

            async def waiter() -> None:
                with interrupting.scope:
                    await semaphore.acquire()
                assert interrupting.scope.cancelled_caught

            async with lib.task_group() as group:
                handle = group.start(waiter)
                if point == "as the grant is announced":
                    await waiting(semaphore, 1)
                    await semaphore.release(holder)
            assert handle.outcome == "returned"  # the waiter's assertion held
            if point != "as the grant is announced":
                await semaphore.release(holder)
            await eventually(lambda: _is_idle(semaphore))
            await (await semaphore.acquire_nowait()).release()


@pytest.mark.parametrize("grant", ["at once", "handed over", "renewed"])
async def test_a_lease_lasts_its_whole_length_on_the_server(
    lib: Lib, redis_server: RedisServer, grant: str
) -> None:
    # The holder's deadline is counted from before its request was sent: the
    # server must keep the permit at least as long after it got the request
    # (rounding its clock down to the millisecond, it kept up to 1 ms less).
    lease = 0.5
    async with session(redis_server) as entered, connect(redis_server) as client:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1, lease=lease)
        keys = semaphore._keys

        async def server_time_us() -> int:
            seconds, microseconds = await client.eval("return redis.call('TIME')", [], [])
            return int(seconds) * 1_000_000 + int(microseconds)

        short_by_us = []
        for _ in range(30):
            if grant == "handed over":
                first = await semaphore.acquire()
                async with lib.task_group() as group:
                    waiter = group.start(semaphore.acquire)
                    await waiting(semaphore, 1)
                    before = await server_time_us()
                    await semaphore.release(first)
                permit = waiter.result
            else:
                before = await server_time_us()
                permit = await semaphore.acquire()
            if grant == "renewed":
                before = await server_time_us()
                assert await entered._run(RENEW, keys, [1, round(lease * 1000), permit.id]) == [1]
            ends_us = float(await client.zscore(keys[KEY_SUFFIXES.index("holders")], permit.id))
            short_by_us.append(before + lease * 1_000_000 - ends_us * 1000)
            await semaphore.release(permit)
        assert max(short_by_us) <= 0


async def test_every_script_run_twice_has_the_effect_of_one(
    lib: Lib, redis_server: RedisServer
) -> None:
    async with session(redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
        keys = semaphore._keys

        def ask(permit_id: str) -> list[Any]:
            return [1, permit_id, 5000, 5000, 0, "1", 1]

        first = await entered._run(ACQUIRE, keys, ask("a:1"))
        assert await entered._run(ACQUIRE, keys, ask("a:1")) == first
        assert first[0] == 1
        for _ in range(2):
            assert (await entered._run(ACQUIRE, keys, ask("a:2")))[0] == 0
        assert (await semaphore.statistics()).tasks_waiting == 1
        assert await entered._run(RENEW, keys, [1, 5000, "a:1", "a:9"]) == [1, 0]
        assert await entered._run(RENEW, keys, [1, 5000, "a:1", "a:9"]) == [1, 0]
        assert await entered._run(RELEASE, keys, [1, 5000, "a:1"]) == [1]
        assert await entered._run(RELEASE, keys, [1, 5000, "a:1"]) == [1]
        # A late ask of a released id does not take a permit again.
        assert (await entered._run(ACQUIRE, keys, ask("a:1")))[0] == 0
        # The release handed the permit to a:2, once.
        granted = await entered._run(ACQUIRE, keys, ask("a:2"))
        assert granted[0] == 1
        assert await entered._run(ACQUIRE, keys, ask("a:2")) == granted
        for _ in range(2):
            assert await entered._run(RELEASE, keys, [1, 5000, "a:2"]) == [1]
        # Withdrawn from the queue, then withdrawn again: the same answer.
        for _ in range(2):
            assert (await entered._run(ACQUIRE, keys, ask("a:3")))[0] == 1
        assert (await entered._run(ACQUIRE, keys, ask("a:4")))[0] == 0
        for _ in range(2):
            assert await entered._run(RELEASE, keys, [1, 5000, "a:4"]) == [2]
        # Several ids at once (a repeated one answers as it did): the permit
        # freed goes to no waiter withdrawn by the same script.
        assert (await entered._run(ACQUIRE, keys, ask("a:5")))[0] == 0
        for _ in range(2):
            assert await entered._run(RELEASE, keys, [1, 5000, "a:3", "a:5", "a:3"]) == [1, 2, 1]
            assert await _is_idle(semaphore)


class _AnnouncingLate(_Passing):
    """A client that holds back the announcements of grants until the
    acquiring task's second ask has been answered, then delivers them."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.asks = 0
        self._deliver = anyio.Event()
        self._delivered = anyio.Event()

    async def run_script(self, script: str, keys: Any, args: Any) -> Any:
        result = await self._client.run_script(script, keys, args)
        if script is ACQUIRE:
            self.asks += 1
            if self.asks == 2:
                self._deliver.set()
                await self._delivered.wait()
        return result

    async def _messages(self, messages: AsyncIterator[str]) -> AsyncIterator[str]:
        async for message in messages:
            await self._deliver.wait()
            yield message
            self._delivered.set()  # the listener has recorded it


async def test_a_grant_announced_after_its_lease_ended_is_not_taken(
    lib: Lib, redis_server: RedisServer
) -> None:
    name = unique_name()
    async with connect(redis_server) as client, session(redis_server) as other:
        announcing = _AnnouncingLate(CoredisClient(client))
        async with loopsync.redis.Session(announcing, poll_interval=1) as late:
            semaphore = loopsync.redis.Semaphore(late, name, 1, lease=0.2)
            elsewhere = loopsync.redis.Semaphore(other, name, 1, lease=60)
            holder = await elsewhere.acquire()
            async with lib.task_group() as group:
                waiter = group.start(semaphore.acquire)
                await waiting(semaphore, 1)
                next_in_line = group.start(elsewhere.acquire)
                await waiting(semaphore, 2)
                # The waiter is granted the permit, and not told: its lease
                # (0.2 s) ends before its next ask (a poll, 1 s after the first),
                # which hands the permit to the next in line and queues the
                # waiter again.  The grant is announced only then.
                await elsewhere.release(holder)
                await finished(next_in_line)

                async def asked_again() -> bool:
                    return announcing.asks >= 3 or waiter.done

                await eventually(asked_again)
                assert not waiter.done
                assert await semaphore.statistics() == loopsync.redis.SemaphoreStatistics(
                    value=1, borrowed=1, tasks_waiting=1
                )
                await elsewhere.release(next_in_line.result)
                await finished(waiter)
            await semaphore.release(waiter.result)


@pytest.mark.parametrize("lost", [0, 1])
async def test_a_release_in_a_cancelled_scope_completes_before_it_returns(
    lib: Lib, redis_server: RedisServer, lost: int
) -> None:
    # Also when the first reply is lost: the release is tried again, still
    # shielded, before it returns.
    async with connect(redis_server) as client:
        losing = _LosingReplies(CoredisClient(client), lost)
        async with loopsync.redis.Session(losing) as entered:
            semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
            permit = await semaphore.acquire()
            returned = False
            with anyio.CancelScope() as scope:
                scope.cancel()
                await permit.release()  # shielded: the script runs, to the end
                returned = True
                await anyio.lowlevel.checkpoint()  # where the cancellation arrives
            assert returned
            assert scope.cancelled_caught
            assert losing.lost == 0
            assert not permit.lost
            assert (await semaphore.statistics()).borrowed == 0


async def test_a_release_the_server_does_not_answer_gives_up_after_cleanup_timeout(
    lib: Lib, private_redis_server: RedisServer
) -> None:
    async with session(private_redis_server, cleanup_timeout=0.2) as entered:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1, lease=60)
        permit = await semaphore.acquire()
        private_redis_server.pause()
        # A release that waited for the server would return once it resumes.
        resume = threading.Timer(10, private_redis_server.resume)
        resume.start()
        try:
            with pytest.raises(TimeoutError, match="cleanup_timeout"):
                await permit.release()
            assert resume.is_alive()  # the server has not answered
        finally:
            resume.cancel()
            private_redis_server.resume()
        # Released on neither side: the lease will free it on the server.
        assert (await semaphore.statistics()).borrowed == 1


# A script of another client's that keeps the server busy for ARGV[1] µs.
_SPIN = """
local start = redis.call('TIME')
local stop = start[1] * 1000000 + start[2] + tonumber(ARGV[1])
repeat
    local now = redis.call('TIME')
until now[1] * 1000000 + now[2] >= stop
return 1
"""


@contextlib.asynccontextmanager
async def _busy(lib: Lib, server: RedisServer) -> AsyncIterator[None]:
    """Keep *server* busy (see :func:`_start_busy`) for the body."""
    async with connect(server) as admin, connect(server) as other, lib.task_group() as group:
        spinning = await _start_busy(group, admin, other)
        yield
        await finished(spinning)
        assert spinning.outcome == "returned"


async def _start_busy(group: Any, admin: Any, other: Any) -> Handle:
    """Start a script of *other*'s that keeps the server running it for half
    a second, past busy-reply-threshold (10 ms): meanwhile it answers BUSY to
    every other request.  Return once it does, with the script's task."""
    await admin.config_set({"busy-reply-threshold": "10"})

    async def spin() -> None:
        await other.eval(_SPIN, [], [500_000])

    async def refusing() -> bool:
        try:
            await admin.ping()
        except coredis.exceptions.ResponseError as exc:
            return str(exc).startswith("BUSY ")
        return False

    spinning: Handle = group.start(spin)
    await eventually(refusing)
    return spinning


async def test_a_release_refused_by_a_busy_server_is_tried_again(
    lib: Lib, private_redis_server: RedisServer
) -> None:
    lost: list[loopsync.redis.Permit] = []
    async with session(private_redis_server) as entered:
        semaphore = loopsync.redis.Semaphore(
            entered, unique_name(), 1, lease=60, on_lease_lost=lost.append
        )
        permit = await semaphore.acquire()
        async with _busy(lib, private_redis_server):
            await permit.release()  # once the busy script has ended: no LeaseLost
        assert not permit.lost
        assert lost == []
        assert (await semaphore.statistics()).borrowed == 0


async def test_a_withdrawal_refused_by_a_busy_server_is_tried_again(
    lib: Lib, private_redis_server: RedisServer
) -> None:
    # The waiter's place would stay for three poll intervals (a minute) if
    # its withdrawal were given up.
    async with session(private_redis_server, poll_interval=20) as entered:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1, lease=60)
        permit = await semaphore.acquire()
        async with lib.task_group() as group:
            waiter = group.start(semaphore.acquire)
            await waiting(semaphore, 1)
            async with _busy(lib, private_redis_server):
                waiter.cancel()
                await finished(waiter)
            await eventually(lambda: _none_pending(entered))
        assert (await semaphore.statistics()).tasks_waiting == 0
        await permit.release()


async def test_a_release_the_server_refuses_for_good_raises_its_error_and_loses_nothing(
    lib: Lib, private_redis_server: RedisServer
) -> None:
    # A read-only server (a replica, after a failover) refuses the release;
    # whether the new primary holds the permit is unknown, and its lease
    # will free it: the error, not a lost lease, is what the holder hears.
    lost: list[loopsync.redis.Permit] = []
    async with session(private_redis_server) as entered, connect(private_redis_server) as admin:
        semaphore = loopsync.redis.Semaphore(
            entered, unique_name(), 1, lease=60, on_lease_lost=lost.append
        )
        permit = await semaphore.acquire()
        await admin.replicaof("127.0.0.1", free_port())
        try:
            with pytest.raises(coredis.exceptions.ReadOnlyError):
                await permit.release()
        finally:
            await admin.replicaof()  # NO ONE: a primary again
        assert not permit.lost
        assert lost == []
        assert (await semaphore.statistics()).borrowed == 1  # until the lease ends


async def test_a_release_of_a_lost_permit_the_server_does_not_answer_raises_lease_lost(
    lib: Lib, private_redis_server: RedisServer
) -> None:
    # Both hold: the lease ended, and the release went unanswered.  That the
    # holder's work may have overlapped another's is what it must hear of.
    async with session(private_redis_server, cleanup_timeout=0.2) as entered:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1, lease=60)
        permit = await semaphore.acquire()
        permit.deadline = time.monotonic()  # as when its renewals went unanswered
        private_redis_server.pause()
        try:
            with pytest.raises(loopsync.redis.LeaseLost) as raised:
                await permit.release()
            assert isinstance(raised.value.__cause__, TimeoutError)
        finally:
            private_redis_server.resume()


class _UnansweredReleases(_Passing):
    """A client whose RELEASE scripts fail as unanswered while :attr:`failing`;
    :attr:`sent` lists the ids they were for."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.failing = True
        self.sent: list[str] = []

    async def run_script(self, script: str, keys: Any, args: Any) -> Any:
        if script is RELEASE:
            self.sent.extend(args[2:])
        if script is RELEASE and self.failing:
            await anyio.lowlevel.checkpoint()
            raise coredis.exceptions.ConnectionError("no answer")
        return await self._client.run_script(script, keys, args)


@contextlib.asynccontextmanager
async def _held_with_unanswered_releases(
    server: RedisServer, cleanup_timeout: float
) -> AsyncIterator[tuple[_UnansweredReleases, loopsync.redis.Session, loopsync.redis.Permit]]:
    """A permit of a semaphore of one, held through a session whose client
    leaves RELEASE unanswered (see :class:`_UnansweredReleases`) and whose
    waiting tasks stay in the queue for hours once they stop asking."""
    async with connect(server) as client:
        unanswered = _UnansweredReleases(CoredisClient(client))
        async with loopsync.redis.Session(
            unanswered, poll_interval=3600, cleanup_timeout=cleanup_timeout
        ) as entered:
            permit = await loopsync.redis.Semaphore(entered, unique_name(), 1).acquire()
            yield unanswered, entered, permit
            await permit.release()


async def test_withdrawals_go_out_again_after_one_was_given_up(
    lib: Lib, redis_server: RedisServer
) -> None:
    async with _held_with_unanswered_releases(redis_server, 0.2) as (unanswered, entered, permit):
        semaphore = permit.semaphore
        for waiters in (1, 2):
            async with lib.task_group() as group:
                group.start(semaphore.acquire)
                await waiting(semaphore, waiters)
                group.cancel(0)
            if waiters == 1:
                # Given up after cleanup_timeout: the task's place stays
                # on the server until its liveness lapses.
                await eventually(lambda: _none_pending(entered))
                unanswered.failing = False
        await waiting(semaphore, 1)


async def test_a_withdrawal_asked_for_while_another_is_retried_gets_its_own_time(
    lib: Lib, redis_server: RedisServer
) -> None:
    # The second is asked for once the first has been tried ten times (half
    # a second at least, of its two): when the first is given up, the second
    # is sent, and tried until two seconds from when it was asked for.
    async with _held_with_unanswered_releases(redis_server, 2) as (unanswered, entered, permit):
        semaphore = permit.semaphore
        async with lib.task_group() as group:
            first = group.start(semaphore.acquire)
            await waiting(semaphore, 1)
            second = group.start(semaphore.acquire)
            await waiting(semaphore, 2)
            first.cancel()
            await eventually(lambda: _sent(unanswered, lambda sent: len(sent) >= 10))
            second.cancel()
            await eventually(lambda: _sent(unanswered, lambda sent: len(set(sent)) == 2))
            unanswered.failing = False
        await eventually(lambda: _none_pending(entered))
        # The first was given up: its place stays until its liveness lapses.
        assert (await semaphore.statistics()).tasks_waiting == 1


async def _sent(client: _UnansweredReleases, condition: Callable[[list[str]], bool]) -> bool:
    await anyio.lowlevel.checkpoint()
    return condition(client.sent)


async def _none_pending(session: loopsync.redis.Session) -> bool:
    return not session._to_release


async def test_a_release_reports_a_permit_the_server_lost_before_the_session_noticed(
    lib: Lib, private_redis_server: RedisServer
) -> None:
    async with session(private_redis_server) as entered:
        # Renewed 20 s from now: no renewal finds the loss first.
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1, lease=60)
        permit = await semaphore.acquire()
        await anyio.to_thread.run_sync(private_redis_server.restart)
        assert not permit.lost
        with pytest.raises(loopsync.redis.LeaseLost, match="ended before its release"):
            await permit.release()
        assert permit.lost


class _LosingReplies(_Passing):
    """A client whose first *count* RELEASE replies are lost: the server
    runs the script, and the caller gets a ConnectionError."""

    def __init__(self, client: Any, count: int) -> None:
        super().__init__(client)
        self.lost = count

    async def run_script(self, script: str, keys: Any, args: Any) -> Any:
        result = await self._client.run_script(script, keys, args)
        if script is RELEASE and self.lost > 0:
            self.lost -= 1
            raise coredis.exceptions.ConnectionError("reply lost")
        return result


@pytest.mark.parametrize("lost", [1, 2])
async def test_a_release_whose_reply_is_lost_is_retried_and_reports_no_loss(
    lib: Lib, redis_server: RedisServer, lost: int
) -> None:
    async with connect(redis_server) as client:
        losing = _LosingReplies(CoredisClient(client), lost)
        # Retried 50 ms apart, past three poll intervals: a released id is
        # remembered while its release may be retried, not only for those.
        async with loopsync.redis.Session(losing, poll_interval=0.01) as entered:
            semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
            permit = await semaphore.acquire()
            await semaphore.release(permit)  # no LeaseLost: the retry finds it released
            assert losing.lost == 0
            assert not permit.lost
            assert await _is_idle(semaphore)


async def test_connections_stay_few_however_many_tasks_wait(
    lib: Lib, redis_server: RedisServer
) -> None:
    async with session(redis_server) as entered, connect(redis_server) as admin:
        before = len(await admin.client_list())
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
        permit = await semaphore.acquire()
        async with lib.task_group() as group:
            for _ in range(100):
                group.start(semaphore.acquire)
            await waiting(semaphore, 100)
            assert len(await admin.client_list()) <= before + 1
            group.cancel_all()
        await permit.release()
        await eventually(lambda: _is_idle(semaphore))


async def test_a_failover_to_a_read_only_server_loses_the_lease_and_the_session_goes_on(
    lib: Lib, private_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    lost: list[loopsync.redis.Permit] = []
    lost_event = anyio.Event()

    def on_lease_lost(permit: loopsync.redis.Permit) -> None:
        lost.append(permit)
        lost_event.set()
        raise ValueError("a failing callback")

    async with session(private_redis_server) as entered, connect(private_redis_server) as admin:
        semaphore = loopsync.redis.Semaphore(
            entered, unique_name(), 1, lease=0.5, on_lease_lost=on_lease_lost
        )
        permit = await semaphore.acquire()
        # A replica of a primary that is not there: every write is refused
        # (READONLY), as after a failover that demoted this server.
        await admin.replicaof("127.0.0.1", free_port())
        try:
            with anyio.fail_after(10):
                await lost_event.wait()
        finally:
            await admin.replicaof()  # NO ONE: a primary again
        assert lost == [permit]
        assert permit.lost
        assert "on_lease_lost raised" in caplog.text
        with pytest.raises(loopsync.redis.LeaseLost):
            await permit.release()
        async with semaphore as again:  # the session still runs
            assert again.fencing_token > permit.fencing_token


async def test_a_session_exiting_withdraws_its_tasks_still_waiting(
    lib: Lib, redis_server: RedisServer
) -> None:
    async with session(redis_server) as holding, connect(redis_server) as client:
        name = unique_name()
        holder = loopsync.redis.Lock(holding, name)
        permit = await holder.acquire()
        async with lib.task_group() as group:
            async with loopsync.redis.Session(client, poll_interval=0.2) as exiting:
                waiter = group.start(loopsync.redis.Lock(exiting, name).acquire)
                await waiting(holder, 1)
            await finished(waiter)
            assert waiter.outcome == "raised"
            assert isinstance(waiter.exception, RuntimeError)
            assert "the Session exited while a task waited" in str(waiter.exception)
            assert (await holder.statistics()).tasks_waiting == 0
        await permit.release()
        assert await _is_idle(holder)


async def test_a_session_exiting_under_a_task_still_holding_tells_it_its_permit_is_lost(
    lib: Lib, redis_server: RedisServer
) -> None:
    # The exit releases the permit of a task of another task group, which
    # may go on: it must learn, as when its lease ends, or two would hold.
    lost: list[loopsync.redis.Permit] = []
    async with session(redis_server) as other, connect(redis_server) as client:
        name = unique_name()
        async with lib.task_group() as group, loopsync.redis.Session(client) as exiting:
            lock = loopsync.redis.Lock(exiting, name, on_lease_lost=lost.append)
            holder = group.start(lock.acquire)
            await finished(holder)
            permit = holder.result
            assert not permit.lost
        assert lost == [permit]
        assert permit.lost
        assert "[lost]" in repr(permit)
        with pytest.raises(loopsync.redis.LeaseLost):
            permit.check()
        taken = await loopsync.redis.Lock(other, name).acquire_nowait()
        assert taken.fencing_token > permit.fencing_token
        await taken.release()


@pytest.mark.parametrize("kind", ["Semaphore", "BoundedSemaphore", "Lock"])
async def test_a_task_releasing_what_its_session_s_exit_took_gets_lease_lost(
    lib: Lib, redis_server: RedisServer, kind: str
) -> None:
    # Its ``async with`` ends after the session was entered again: it said
    # the task held nothing ("released too many times" for a
    # BoundedSemaphore), as if the task had released twice.
    async with connect(redis_server) as client:
        entered = loopsync.redis.Session(client)
        semaphore = getattr(loopsync.redis, kind)(entered, unique_name(), *([2] * (kind != "Lock")))
        holding, go_on = anyio.Event(), anyio.Event()
        outcomes: list[object] = []

        async def hold() -> None:
            try:
                async with semaphore as permit:
                    holding.set()
                    await go_on.wait()
            except loopsync.redis.LeaseLost:
                outcomes.append(permit)
            with pytest.raises(RuntimeError if kind != "BoundedSemaphore" else ValueError):
                await permit.release()  # once only

        async with lib.task_group() as group:
            async with entered:
                group.start(hold)
                await holding.wait()
            async with entered:
                go_on.set()
                await finished(group.handles[0])
                assert group.handles[0].outcome == "returned"
                assert (await semaphore.statistics()).borrowed == 0
        assert [permit.lost for permit in outcomes] == [True]


class _HoldingTheFirstReply(_Passing):
    """A client that holds the reply to its first ask until :attr:`resume`
    is set, once the server has answered it (:attr:`answered`)."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.answered = anyio.Event()
        self.resume = anyio.Event()

    async def run_script(self, script: str, keys: Any, args: Any) -> Any:
        result = await self._client.run_script(script, keys, args)
        if script is ACQUIRE and not self.answered.is_set():
            self.answered.set()
            await self.resume.wait()
        return result


async def test_a_task_whose_ask_is_answered_after_its_session_exited_raises_at_once(
    lib: Lib, redis_server: RedisServer
) -> None:
    # The exit wakes the tasks waiting then; one whose ask was on its way
    # must not wait for its next ask (an hour here) to find it out.
    async with session(redis_server) as holding, connect(redis_server) as client:
        name = unique_name()
        permit = await loopsync.redis.Lock(holding, name, lease=3600).acquire()
        holding_reply = _HoldingTheFirstReply(CoredisClient(client))
        async with lib.task_group() as group:
            async with loopsync.redis.Session(holding_reply, poll_interval=3600) as exiting:
                waiter = group.start(loopsync.redis.Lock(exiting, name).acquire)
                with anyio.fail_after(10):
                    await holding_reply.answered.wait()  # queued on the server
            holding_reply.resume.set()
            await finished(waiter)
        assert waiter.outcome == "raised"
        assert "the Session exited while a task waited" in str(waiter.exception)
        assert (await loopsync.redis.Lock(holding, name).statistics()).tasks_waiting == 0
        await permit.release()


class _CancelledAsAConnectionError(_Passing):
    """A client whose pub/sub connection is cancelled while it connects, by
    *scope*, and reports a connection error instead (coredis may, under trio)."""

    def __init__(self, client: Any, scope: anyio.CancelScope) -> None:
        super().__init__(client)
        self._scope = scope

    @contextlib.asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[AsyncIterator[str]]:
        self._scope.cancel()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            raise ConnectionError("Unable to establish a connection") from None
        async with self._client.listen(channel) as messages:  # never reached
            yield messages


async def test_a_session_entry_cancelled_while_it_connects_is_cancelled(
    lib: Lib, redis_server: RedisServer
) -> None:
    async with connect(redis_server) as client:
        with anyio.CancelScope() as scope:
            connecting = _CancelledAsAConnectionError(CoredisClient(client), scope)
            async with loopsync.redis.Session(connecting):
                pytest.fail("entered")
        assert scope.cancelled_caught


async def test_a_session_entered_again_starts_afresh(lib: Lib, redis_server: RedisServer) -> None:
    async with connect(redis_server) as client:
        entered = loopsync.redis.Session(client)
        lock = loopsync.redis.Lock(entered, unique_name())
        async with entered:
            first = await lock.acquire()
        assert "[lost]" in repr(first)  # released by the exit, under its task
        async with entered:
            assert not await lock.locked()
            second = await lock.acquire()  # not a re-acquisition: the exit released it
            with pytest.raises(loopsync.redis.LeaseLost):
                await lock.release(first)
            with pytest.raises(RuntimeError, match="can't release a Lock you don't own"):
                await lock.release(first)
            await lock.release(second)


async def test_a_session_entered_again_forgets_the_permits_it_lost(
    lib: Lib, redis_server: RedisServer
) -> None:
    lost = anyio.Event()
    async with connect(redis_server) as client, connect(redis_server) as admin:
        entered = loopsync.redis.Session(client, poll_interval=0.05)
        lock = loopsync.redis.Lock(
            entered, unique_name(), lease=0.3, on_lease_lost=lambda permit: lost.set()
        )
        async with entered:
            await lock.acquire()
            await admin.delete(lock._keys)  # the server loses it
            with anyio.fail_after(10):
                await lost.wait()  # a renewal finds it gone
        async with entered:
            with anyio.fail_after(10):
                again = await lock.acquire()  # not a re-acquisition
            await again.release()


async def test_a_session_keeps_no_semaphore_it_is_done_with(
    lib: Lib, redis_server: RedisServer
) -> None:
    # Locks made per resource, on demand, go when their task is done with
    # them, however long the session lasts.
    async with session(redis_server) as entered:
        gone = []
        for _ in range(3):
            lock = loopsync.redis.Lock(entered, unique_name())
            async with lock:
                pass
            gone.append(weakref.ref(lock))
            del lock
        gc.collect()
        assert [ref() for ref in gone] == [None] * 3


async def test_a_release_the_server_refuses_reports_the_permit_lost(
    lib: Lib, redis_server: RedisServer
) -> None:
    # Here the semaphore was lost and made again with another value, which
    # the server refuses a release of this one for: the permit is lost,
    # once, and its callback told, as when a renewal finds it so.
    lost: list[loopsync.redis.Permit] = []
    name = unique_name()
    async with (
        session(redis_server) as entered,
        session(redis_server) as other,
        connect(redis_server) as admin,
    ):
        semaphore = loopsync.redis.Semaphore(entered, name, 1, lease=60, on_lease_lost=lost.append)
        permit = await semaphore.acquire()
        await admin.delete(semaphore._keys)
        remade = await loopsync.redis.Semaphore(other, name, 3).acquire()
        with pytest.raises(loopsync.redis.LeaseLost, match="ended before its release"):
            await permit.release()
        assert permit.lost
        assert lost == [permit]
        await remade.release()


async def test_a_lease_lost_callback_returning_something_to_await_is_logged_as_an_error(
    lib: Lib, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # As a lambda calling an async function: its work never runs, so the
    # coroutine is closed (no "never awaited" warning) and the error logged.
    made: list[Any] = []

    async def announce(permit: loopsync.redis.Permit) -> None: ...

    def on_lease_lost(permit: loopsync.redis.Permit) -> Any:
        made.append(announce(permit))
        return made[-1]

    async with session(redis_server) as entered, connect(redis_server) as admin:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1, on_lease_lost=on_lease_lost)
        permit = await semaphore.acquire()
        await admin.delete(semaphore._keys)  # the server lost the permit
        with pytest.raises(loopsync.redis.LeaseLost):
            await permit.release()
    assert len(made) == 1
    assert made[0].cr_frame is None  # closed
    assert "on_lease_lost returned a coroutine, which loopsync.redis cannot await" in caplog.text


@pytest.mark.libs("asyncio", "uvloop")
async def test_a_release_of_a_lost_permit_cancelled_midway_still_tells_of_the_loss(
    lib: Lib, private_redis_server: RedisServer
) -> None:
    # asyncio's cancellation passes the release's shield (as a timeout around
    # `async with sem:` does); the loss, known before, is told all the same.
    lost: list[loopsync.redis.Permit] = []
    async with session(private_redis_server, cleanup_timeout=0.2) as entered:
        semaphore = loopsync.redis.Semaphore(
            entered, unique_name(), 1, lease=60, on_lease_lost=lost.append
        )
        permit = await semaphore.acquire()
        permit.deadline = time.monotonic()  # as when its renewals went unanswered
        private_redis_server.pause()  # the release waits
        try:
            release = asyncio.ensure_future(permit.release())
            for _ in range(5):
                await asyncio.sleep(0)  # sent
            release.cancel()
            with pytest.raises(asyncio.CancelledError):
                await release
            assert permit.lost
            assert lost == [permit]
        finally:
            private_redis_server.resume()


async def test_a_session_s_exit_waits_for_a_release_under_way(
    lib: Lib, private_redis_server: RedisServer
) -> None:
    # A task of another task group releases while the session exits: the
    # exit waits for it, so that the client, closed next, still serves it.
    server = private_redis_server
    async with connect(server) as admin, connect(server) as other, lib.task_group() as group:
        async with connect(server) as client:
            async with loopsync.redis.Session(client, poll_interval=0.2) as entered:
                semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1, lease=60)
                permit = await semaphore.acquire()
                await _start_busy(group, admin, other)
                releasing = group.start(permit.release)

                async def under_way() -> bool:
                    await anyio.lowlevel.checkpoint()
                    return bool(entered._releasing)

                await eventually(under_way)
            assert releasing.done  # once the server answered again
        assert releasing.outcome == "returned"
    async with session(server) as fresh:
        assert await _is_idle(loopsync.redis.Semaphore(fresh, semaphore.name, 1))


@contextlib.asynccontextmanager
async def _releasing_while_a_session_exits(
    server: RedisServer, name: str
) -> AsyncIterator[tuple[loopsync.redis.Session, asyncio.Future[None], coredis.Redis[Any]]]:
    """Enter a session by hand, and start the release of a permit of *name*,
    which the server holds back; yield the session, the release's task and
    an admin client, for the caller to exit the session meanwhile."""
    async with connect(server) as client, connect(server) as admin:
        entered = loopsync.redis.Session(client)
        await entered.__aenter__()
        permit = await loopsync.redis.Semaphore(entered, name, 1).acquire()
        await admin.client_pause(500, coredis.PureToken.WRITE)  # the release waits
        try:
            release = asyncio.ensure_future(permit.release())
            for _ in range(5):
                await asyncio.sleep(0)  # sent
            yield entered, release, admin
        finally:
            await admin.client_unpause()


@pytest.mark.libs("asyncio", "uvloop")
async def test_a_release_cancelled_while_its_session_exits_is_finished_by_the_exit(
    lib: Lib, redis_server: RedisServer
) -> None:
    # asyncio's cancellation passes anyio's shield: the session finishes the
    # release in a task of its own, which its exit, waiting, then waits for.
    name = unique_name()
    async with _releasing_while_a_session_exits(redis_server, name) as (entered, release, _):
        asyncio.get_running_loop().call_soon(release.cancel)  # as the exit waits
        await entered.__aexit__(None, None, None)
        assert release.cancelled()
    async with session(redis_server) as fresh:
        assert await _is_idle(loopsync.redis.Semaphore(fresh, name, 1))


@pytest.mark.libs("asyncio", "uvloop")
async def test_a_session_s_exit_cancelled_as_it_waits_for_a_release_still_closes_it(
    lib: Lib, redis_server: RedisServer
) -> None:
    # asyncio's cancellation passes anyio's shield: the exit, cancelled as it
    # waits for another task's release, closes the session all the same.
    name = unique_name()
    async with _releasing_while_a_session_exits(redis_server, name) as (entered, release, admin):
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().call_soon(task.cancel)  # as the exit waits
        with pytest.raises(asyncio.CancelledError):
            await entered.__aexit__(None, None, None)
        if sys.version_info >= (3, 11):
            task.uncancel()
        await admin.client_unpause()
        await release
        # Closed: its listener's connection with it, and it may be entered again.
        await eventually(lambda: _no_subscribers(admin))
        async with entered:
            assert await _is_idle(loopsync.redis.Semaphore(entered, name, 1))


async def _no_subscribers(admin: coredis.Redis[Any]) -> bool:
    return not await admin.client_list(type_=coredis.PureToken.PUBSUB)


async def test_every_key_of_a_semaphore_ends_at_one_time(
    lib: Lib, redis_server: RedisServer
) -> None:
    """A queue must not outlive its waiters' entries, nor they it: a waiter
    asking again keeps every key, the queue included."""
    async with session(redis_server, poll_interval=0.05) as entered, connect(redis_server) as admin:
        semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
        permit = await semaphore.acquire()
        async with lib.task_group() as group:
            first = group.start(semaphore.acquire)
            await waiting(semaphore, 1)
            second = group.start(semaphore.acquire)
            await waiting(semaphore, 2)
            # The holder's entry needs its lease, the waiters' theirs, far
            # shorter; and a waiter asking again writes to some keys only.
            alive = next(key for key in semaphore._keys if key.endswith(":alive"))
            (waiter_id,) = await admin.zrange(alive, 0, 0)
            asked = await admin.zscore(alive, waiter_id)
            await eventually(lambda: _grew(admin.zscore(alive, waiter_id), asked))
            assert len(await _expiry_times(admin, semaphore._keys)) == 1
            assert (await semaphore.statistics()).tasks_waiting == 2
            await permit.release()
            await finished(first)
            assert second.outcome == "running"  # first come, first served
            await semaphore.release(first.result)
            await finished(second)
        await semaphore.release(second.result)


async def test_a_waiter_whose_entry_was_evicted_still_acquires(
    lib: Lib, redis_server: RedisServer
) -> None:
    async with _a_waiter_behind_a_holder(lib, redis_server) as (semaphore, permit, waiter, admin):
        # As a server short of memory may evict one key of six.
        await admin.delete([key for key in semaphore._keys if key.endswith(":waiting")])
        await permit.release()  # its hand-off finds no entry: no error
        await finished(waiter)
        assert waiter.outcome == "returned"
        await semaphore.release(waiter.result)
        assert await _is_idle(semaphore)


class _Unannounced(_Passing):
    """A client that hears no announcement of a grant, so that its waiting
    tasks find their grants by asking again; it sends no more than two asks
    until :attr:`ask_again` is set."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.asks = 0
        self.ask_again = anyio.Event()

    async def run_script(self, script: str, keys: Any, args: Any) -> Any:
        if script is ACQUIRE:
            self.asks += 1
            if self.asks > 2:
                await self.ask_again.wait()
        return await self._client.run_script(script, keys, args)

    def _messages(self, messages: AsyncIterator[str]) -> AsyncIterator[str]:
        return (message async for message in messages if False)


async def test_a_waiter_that_next_asks_after_a_restart_queues_again_and_acquires(
    lib: Lib, private_redis_server: RedisServer
) -> None:
    # The restart lost the queue, and the holder's permit: the waiter's next
    # ask, the first the new server sees of it, queues it again.
    async with connect(private_redis_server) as client:
        unannounced = _Unannounced(CoredisClient(client))
        async with loopsync.redis.Session(unannounced, poll_interval=0.2) as entered:
            semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
            permit = await semaphore.acquire()
            async with lib.task_group() as group:
                waiter = group.start(semaphore.acquire)  # the second ask
                await waiting(semaphore, 1)
                await anyio.to_thread.run_sync(private_redis_server.restart)
                unannounced.ask_again.set()
                await finished(waiter)
            assert waiter.outcome == "returned"
            assert waiter.result.fencing_token > permit.fencing_token
            await semaphore.release(waiter.result)
            with pytest.raises(loopsync.redis.LeaseLost):
                await permit.release()


async def test_a_waiter_granted_a_permit_whose_token_was_evicted_still_acquires(
    lib: Lib, redis_server: RedisServer
) -> None:
    # The server grants the permit to the waiter, then loses the key that
    # keeps the tokens (evicted, or deleted by an operator) before the
    # waiter, not told, asks again: it is granted anew, with a new token.
    async with connect(redis_server) as client, connect(redis_server) as admin:
        unannounced = _Unannounced(CoredisClient(client))
        async with loopsync.redis.Session(unannounced, poll_interval=0.2) as entered:
            semaphore = loopsync.redis.Semaphore(entered, unique_name(), 1)
            permit = await semaphore.acquire()
            async with lib.task_group() as group:
                waiter = group.start(semaphore.acquire)
                await waiting(semaphore, 1)
                await permit.release()  # the holder's ask was the first, the waiter's the second
                await admin.delete([key for key in semaphore._keys if key.endswith(":meta")])
                unannounced.ask_again.set()
                await finished(waiter)
            assert waiter.outcome == "returned"
            assert waiter.result.fencing_token > permit.fencing_token
            await semaphore.release(waiter.result)
            assert await _is_idle(semaphore)


@pytest.mark.parametrize("name", ["}", "}x", "a}b", "{x}", "x"])
def test_the_keys_of_any_name_share_one_cluster_slot(name: str) -> None:
    def hash_tag(key: str) -> str:
        # Redis Cluster hashes the part between the first "{" and the first
        # "}" after it, if that part is not empty, and else the whole key.
        start = key.find("{")
        end = key.find("}", start + 1)
        if start < 0 or end < 0 or end == start + 1:
            return key
        return key[start + 1 : end]

    semaphore = loopsync.redis.Semaphore(loopsync.redis.Session(coredis.Redis()), name, 1)
    tags = {hash_tag(key) for key in semaphore._keys}
    assert len(tags) == 1
    assert len(set(semaphore._keys)) == 6


async def _expiry_times(client: Any, keys: Sequence[str]) -> set[int]:
    """The times (server ms) at which the keys of *keys* that exist expire."""
    times = set()
    for key in keys:
        with contextlib.suppress(coredis.exceptions.NoKeyError):
            times.add(await client.pexpiretime(key))
    return times


async def _grew(value: Awaitable[Any], than: Any) -> bool:
    return bool(await value > than)
