"""A worker process for the loopsync.redis tests, under any of the five contexts.

    python redis_worker.py CONTEXT PORT NAME VALUE ACTION

ACTION is ``hold-then-die`` (take a permit, print its token, exit without
releasing), ``wait-then-die`` (queue behind a held permit, print ``waiting``,
then wait to be killed) or ``share`` (four tasks take turns ten times each,
counting on the server how many hold at once; print the most seen).
"""

from __future__ import annotations

import os
import sys

import anyio
import anyio.lowlevel
import coredis

import loopsync.redis
from contexts import CONTEXTS


async def main(port: int, name: str, value: int, action: str) -> None:
    async with (
        coredis.Redis(host="127.0.0.1", port=port, decode_responses=True) as client,
        loopsync.redis.Session(client, poll_interval=0.2) as session,
    ):
        semaphore = loopsync.redis.Semaphore(session, name, value, lease=0.5)
        if action == "hold-then-die":
            permit = await semaphore.acquire()
            print(permit.fencing_token, flush=True)
            os._exit(0)
        elif action == "wait-then-die":
            async with anyio.create_task_group() as group:
                group.start_soon(semaphore.acquire)
                print("waiting", flush=True)
                await anyio.sleep_forever()
        else:
            most = 0

            async def take_turns() -> None:
                nonlocal most
                for _ in range(10):
                    async with semaphore:
                        most = max(most, await client.incr(f"{name}:inside"))
                        await anyio.lowlevel.checkpoint()
                        await client.decr(f"{name}:inside")

            async with anyio.create_task_group() as group:
                for _ in range(4):
                    group.start_soon(take_turns)
            print(most, flush=True)


if __name__ == "__main__":
    context_name, port, name, value, action = sys.argv[1:]
    context = next(context for context in CONTEXTS if context.name == context_name)
    context.run(main, int(port), name, int(value), action)
