"""A connection-pool limit with timeouts, in anyio code, on both anyio backends.

A :class:`loopsync.BoundedSemaphore` of ``POOL_SIZE`` stands for a pool of
connections: a request holds a permit while it uses a connection.  The code is
ordinary anyio: task groups, ``tg.start()``, ``anyio.move_on_after``,
``anyio.fail_after`` and cancel scopes; loopsync needs nothing else from it.

With the pool exhausted by slow queries, requests that cannot get a
connection give up in three ways:

* ``move_on_after``: the request silently stops waiting;
* ``fail_after``: the request gets :exc:`TimeoutError`;
* a cancel scope: a whole task group of queued requests is cancelled.

None of them ever gets a connection, none gives one back (a stray
``release()`` would make the bounded semaphore raise :exc:`ValueError`), and
none leaves a permit behind: once the slow queries finish, every connection
is free again and later requests are served as usual.  The example checks
that the semaphore ends with its initial value.

Everything printed comes from one task at points where the state is settled,
so the output is the same on every run.

Run it with::

    python examples/anyio_pool.py [asyncio|trio|all]    # anyio backend; default: all

The trio backend is skipped, with a note, if trio is not installed.
"""

from __future__ import annotations

import sys

import anyio
import anyio.abc
from _runtimes import available, parse_libraries

import loopsync

BACKENDS = ("asyncio", "trio")
POOL_SIZE = 2
TIMEOUT = 0.05
QUERY_TIME = 0.005


def report(event: str, pool: loopsync.BoundedSemaphore) -> None:
    in_use = pool.max_value - pool.value
    waiting = pool.statistics().tasks_waiting
    print(f"  {event:<46} connections in use: {in_use}/{pool.max_value}, waiting: {waiting}")


async def slow_query(
    pool: loopsync.BoundedSemaphore,
    finish: anyio.Event,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Hold a connection until *finish* is set."""
    async with pool:
        task_status.started()
        await finish.wait()


async def request(pool: loopsync.BoundedSemaphore, name: str, served: list[str]) -> None:
    """Run a quick query on a pooled connection."""
    async with pool:
        served.append(name)
        await anyio.sleep(QUERY_TIME)


async def demo() -> None:
    pool = loopsync.BoundedSemaphore(POOL_SIZE)
    served: list[str] = []
    report("new pool", pool)

    finish = anyio.Event()
    async with anyio.create_task_group() as tg:
        for _ in range(POOL_SIZE):
            await tg.start(slow_query, pool, finish)
        report(f"{POOL_SIZE} slow queries take every connection", pool)

        with anyio.move_on_after(TIMEOUT) as scope:
            await request(pool, "impatient", served)
        assert scope.cancelled_caught
        report(f"move_on_after({TIMEOUT}): gave up, got nothing", pool)

        try:
            with anyio.fail_after(TIMEOUT):
                await request(pool, "strict", served)
        except TimeoutError:
            report(f"fail_after({TIMEOUT}): TimeoutError, got nothing", pool)
        else:
            raise AssertionError("a request got a connection from a full pool")

        async with anyio.create_task_group() as queued:
            for n in range(3):
                queued.start_soon(request, pool, f"queued {n}", served)
            await anyio.wait_all_tasks_blocked()  # until all three are parked in acquire()
            report("3 more requests queue up", pool)
            queued.cancel_scope.cancel()
        report("their task group is cancelled", pool)

        assert served == [], f"served from a full pool: {served}"
        finish.set()
    report("the slow queries finish", pool)

    async with anyio.create_task_group() as tg:
        for n in range(5):
            tg.start_soon(request, pool, f"late {n}", served)
    assert len(served) == 5
    report(f"{len(served)} new requests are served", pool)

    try:
        pool.release()
    except ValueError:
        report("an extra release() raises ValueError", pool)
    else:
        raise AssertionError("an extra release() was accepted")

    assert pool.value == POOL_SIZE, f"lost {POOL_SIZE - pool.value} connection(s)"
    print(f"  value at the end: {pool.value} == initial value {POOL_SIZE}")


def main(argv: list[str]) -> None:
    for backend in parse_libraries(argv, BACKENDS):
        if not available(backend):
            print(f"anyio on {backend}: skipped ({backend} is not installed)")
            continue
        print(f"anyio on {backend}:")
        anyio.run(demo, backend=backend)


if __name__ == "__main__":
    main(sys.argv[1:])
