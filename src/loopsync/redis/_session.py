"""One process's presence on the server: its identity, wake-ups and leases."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from ._client import CoredisClient, ScriptClient
from ._scripts import RELEASE, RENEW

if TYPE_CHECKING:
    from ._semaphore import Permit

__all__ = ["Session", "check_seconds"]


def check_seconds(name: str, seconds: object) -> float:
    """Return *seconds* as a float; raise TypeError or ValueError if it is
    not a positive, finite number."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {seconds!r}")
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{name} must be positive and finite, not {seconds!r}")
    return float(seconds)


class Session:
    """The presence of one process on a Redis or Valkey server.

    ``async with Session(client) as session:`` gives the process an identity,
    listens on one pub/sub channel for the wake-ups of its waiting tasks,
    renews the leases of the permits its tasks hold, and on exit releases
    whatever they still hold or wait for.  Every
    :class:`~loopsync.redis.Semaphore` and :class:`~loopsync.redis.Lock` is
    used through a session.

    *client* is an entered :class:`coredis.Redis` client.  A waiting task
    asks the server again every *poll_interval* seconds (or sooner, when a
    lease it waits behind is due to expire), so a lost wake-up costs at most
    that long; a waiting task that stops asking for three intervals is
    dropped from the queue.  *cleanup_timeout* bounds how long a release or
    a withdrawal is retried in the background when the server does not
    answer; the leases and liveness limits then free what it held.
    """

    def __init__(
        self, client: Any, *, poll_interval: float = 1.0, cleanup_timeout: float = 10.0
    ) -> None:
        poll_interval = check_seconds("poll_interval", poll_interval)
        cleanup_timeout = check_seconds("cleanup_timeout", cleanup_timeout)
        self._client: ScriptClient = (
            client if hasattr(client, "run_script") else CoredisClient(client)
        )
        self.poll_interval = poll_interval
        self.cleanup_timeout = cleanup_timeout
        self.id = ""
        self._count = 0
        self._task_group: anyio.abc.TaskGroup | None = None
        self._listener: anyio.CancelScope | None = None
        self._wakeups: dict[str, anyio.Event] = {}
        self._held: dict[str, tuple[Permit, anyio.CancelScope]] = {}

    @property
    def liveness(self) -> float:
        """Seconds after which the server drops a waiting task that stopped asking."""
        return 3 * self.poll_interval

    async def __aenter__(self) -> Session:
        if self._task_group is not None:
            raise RuntimeError("this Session is already entered")
        self.id = uuid.uuid4().hex
        self._listener = anyio.CancelScope()
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        try:
            await task_group.start(self._listen)
        except BaseException:
            self._task_group = None
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        task_group = self._task_group
        assert task_group is not None
        for permit, keeper in list(self._held.values()):
            keeper.cancel()
            self.release_soon(permit.semaphore._keys, permit.semaphore._value, permit.id)
        self._held.clear()
        assert self._listener is not None
        self._listener.cancel()
        try:
            # The body's own exception propagates as it is, not in a group.
            await task_group.__aexit__(None, None, None)
        finally:
            self._task_group = None
        return None

    def check_entered(self) -> anyio.abc.TaskGroup:
        """Return the session's task group; raise RuntimeError if not entered."""
        if self._task_group is None:
            raise RuntimeError("the Session is not entered: use 'async with Session(client)'")
        return self._task_group

    def new_permit_id(self) -> str:
        """Return a permit id never used before: '<session id>:<n>'."""
        self._count += 1
        return f"{self.id}:{self._count}"

    async def run(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run *script* on the server."""
        return await self._client.run_script(script, keys, args)

    # Wake-ups: the server publishes a permit id on the channel of the
    # session whose task it hands a permit to.

    async def _listen(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        assert self._listener is not None
        with self._listener:
            channel = f"loopsync:session:{self.id}"
            while True:
                try:
                    async with self._client.listen(channel) as messages:
                        task_status.started()
                        task_status = anyio.TASK_STATUS_IGNORED  # on reconnection
                        async for permit_id in messages:
                            event = self._wakeups.get(permit_id)
                            if event is not None:
                                event.set()
                except Exception:
                    # A lost connection: waiting tasks poll meanwhile.
                    await anyio.sleep(self.poll_interval)

    def expect_wakeup(self, permit_id: str) -> anyio.Event:
        """Return a new event that the next wake-up of *permit_id* sets."""
        event = self._wakeups[permit_id] = anyio.Event()
        return event

    def stop_expecting(self, permit_id: str) -> None:
        self._wakeups.pop(permit_id, None)

    # Leases: a keeper task per held permit renews it every third of its
    # lease, and declares it lost when the local deadline passes first.

    def keep(self, permit: Permit) -> None:
        """Renew *permit*'s lease until :meth:`drop` is called for it."""
        keeper = anyio.CancelScope()
        self._held[permit.id] = (permit, keeper)
        self.check_entered().start_soon(self._keep, permit, keeper)

    def drop(self, permit: Permit) -> None:
        """Stop renewing *permit*'s lease."""
        entry = self._held.pop(permit.id, None)
        if entry is not None:
            entry[1].cancel()

    async def _keep(self, permit: Permit, keeper: anyio.CancelScope) -> None:
        semaphore = permit.semaphore
        with keeper:
            while True:
                await anyio.sleep(semaphore.lease / 3)
                sent = time.monotonic()
                renewed = 0
                with anyio.move_on_after(permit.deadline - sent):
                    try:
                        renewed = await self.run(
                            RENEW,
                            semaphore._keys,
                            [semaphore._value, permit.id, semaphore._lease_ms],
                        )
                    except self._client.transient_errors:
                        continue  # retried until the deadline passes
                if not renewed:
                    # Gone from the server, or the deadline passed unanswered.
                    self._held.pop(permit.id, None)
                    permit._lose()
                    return
                permit.deadline = sent + semaphore.lease

    # Cleanup runs in the session's own tasks, so that the cancellation of
    # the task that asked for it cannot interrupt it.

    def release_soon(self, keys: Sequence[str], value: int, permit_id: str) -> _Outcome:
        """Release or withdraw *permit_id* in the background; return its outcome."""
        outcome = _Outcome()
        self.check_entered().start_soon(self._release, keys, value, permit_id, outcome)
        return outcome

    async def _release(
        self, keys: Sequence[str], value: int, permit_id: str, outcome: _Outcome
    ) -> None:
        remember_ms = math.ceil(self.liveness * 1000)
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(self.cleanup_timeout):
                while True:
                    try:
                        outcome.result = await self.run(
                            RELEASE, keys, [value, permit_id, remember_ms]
                        )
                        outcome.error = None
                        break
                    except self._client.transient_errors as exc:
                        outcome.error = exc
                        await anyio.sleep(min(self.poll_interval, 0.1))
                    except Exception as exc:
                        outcome.error = exc
                        break
        outcome.done.set()


class _Outcome:
    """The result of a release run in the background."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: int | None = None
        self.error: Exception | None = None
