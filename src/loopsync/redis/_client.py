"""The few operations loopsync.redis needs from a Redis client.

:class:`ScriptClient` is all that the semaphores and the session use: run a
script, listen to one channel, and tell which errors are worth a retry.
:class:`CoredisClient` implements it on coredis; another client would need
only these three.  Nothing here sends a blocking command, so a cancelled
call never breaks another task's, and every script is idempotent, so a
client's own retry of one is harmless.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

__all__ = ["CoredisClient", "ScriptClient"]


class ScriptClient(Protocol):
    """What loopsync.redis needs of a client."""

    def is_transient(self, exc: Exception) -> bool:
        """Return True if running a script again after *exc* may succeed: no
        answer, or a refusal that passes (a server busy with another
        client's script, a cluster slot on the move)."""

    async def run_script(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run *script* (by its digest when the server has it), return its reply."""

    def listen(self, channel: str) -> Any:
        """Return an async context manager that subscribes to *channel* and
        gives an async iterator over the messages' payloads (str)."""


class CoredisClient:
    """:class:`ScriptClient` on a :class:`coredis.Redis` client."""

    def __init__(self, client: Any) -> None:
        from coredis import Redis, RedisCluster
        from coredis.exceptions import (
            ClusterDownError,
            ClusterError,
            ConnectionError,
            NoScriptError,
            ResponseError,
            TryAgainError,
        )

        if not isinstance(client, (Redis, RedisCluster)):
            # Anything else would fail in the listener, which takes every
            # error for a lost connection and tries again, for good.
            name = type(client).__name__
            raise TypeError(f"client must be a coredis.Redis or coredis.RedisCluster, not {name}")
        self._client = client
        self._no_script = NoScriptError
        self._response_error = ResponseError
        # ConnectionError includes a server loading its data (LOADING);
        # ClusterError is what coredis raises once its own retries of
        # TRYAGAIN (a slot being migrated) are spent.
        self._transient_errors = (
            ConnectionError,
            TimeoutError,
            OSError,
            TryAgainError,
            ClusterDownError,
            ClusterError,
        )
        self._digests: dict[str, str] = {}

    def is_transient(self, exc: Exception) -> bool:
        return isinstance(exc, self._transient_errors) or (
            # A script of another client ran past busy-reply-threshold.
            isinstance(exc, self._response_error) and str(exc).startswith("BUSY ")
        )

    async def run_script(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        digest = self._digests.get(script)
        if digest is None:
            digest = self._digests[script] = hashlib.sha1(script.encode()).hexdigest()
        try:
            return await self._client.evalsha(digest, keys=keys, args=args)
        except self._no_script:
            # First use, or the server restarted and lost its script cache.
            return await self._client.eval(script, keys=keys, args=args)

    @asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[AsyncIterator[str]]:
        # No retry of coredis's own (for ever, by default, even the first
        # connection): the session tries again, and refuses to enter if the
        # first attempt fails.
        async with self._client.pubsub(
            channels=[channel], ignore_subscribe_messages=True, retry_policy=None
        ) as pubsub:
            yield self._payloads(pubsub)

    @staticmethod
    async def _payloads(pubsub: Any) -> AsyncIterator[str]:
        async for message in pubsub:
            if message["type"] == "message":
                data = message["data"]
                yield data.decode() if isinstance(data, bytes) else str(data)
