"""What the loopsync.redis tests share: a client, a session, and waiting for the server."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import coredis

import loopsync.redis
from libs import Handle
from redis_server import RedisServer

__all__ = [
    "connect",
    "eventually",
    "finished",
    "session",
    "start_storm",
    "unique_name",
    "waiting",
]

_names = 0


def unique_name(prefix: str = "sem") -> str:
    """A semaphore name no other test uses."""
    global _names
    _names += 1
    return f"{prefix}-{_names}"


@contextlib.asynccontextmanager
async def connect(server: RedisServer) -> AsyncIterator[Any]:
    """An entered coredis client of *server*."""
    async with coredis.Redis(host=server.host, port=server.port, decode_responses=True) as client:
        yield client


@contextlib.asynccontextmanager
async def session(server: RedisServer, **options: Any) -> AsyncIterator[loopsync.redis.Session]:
    """An entered session on a client of its own."""
    options.setdefault("poll_interval", 0.2)
    async with connect(server) as client, loopsync.redis.Session(client, **options) as entered:
        yield entered


async def eventually(condition: Callable[[], Awaitable[bool]], give_up_after: float = 10.0) -> None:
    """Ask *condition* (a round trip to the server each time) until it holds."""
    with anyio.fail_after(give_up_after):
        while not await condition():
            await anyio.lowlevel.checkpoint()


async def finished(handle: Handle, give_up_after: float = 10.0) -> None:
    """Return once the task of *handle* has ended."""

    async def condition() -> bool:
        return handle.done

    await eventually(condition, give_up_after)


async def waiting(semaphore: loopsync.redis.Semaphore, count: int) -> None:
    """Return once *count* tasks wait on *semaphore*, in any process."""

    async def condition() -> bool:
        return (await semaphore.statistics()).tasks_waiting == count

    await eventually(condition)


def start_storm(
    hold: Callable[[], contextlib.AbstractAsyncContextManager[Any]],
    start: Callable[..., object],
    *,
    waiters: int = 300,
    seed: int = 20261203,
) -> None:
    """Start a cancellation storm: 6 tasks taking a permit 10 times each for
    5 ms, and *waiters* tasks giving up after 0 to 200 ms, all through
    ``async with hold():``, each started by ``start(function, *args)``."""

    async def impatient(deadline: float) -> None:
        with anyio.move_on_after(deadline):
            async with hold():
                await anyio.lowlevel.checkpoint()

    async def churn() -> None:
        for _ in range(10):
            async with hold():
                await anyio.sleep(0.005)

    rng = random.Random(seed)
    for _ in range(6):
        start(churn)
    for _ in range(waiters):
        start(impatient, rng.uniform(0, 0.2))
