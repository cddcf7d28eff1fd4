"""One process's presence on the server: its identity, wake-ups and leases."""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, SupportsIndex, cast

import anyio
import anyio.abc
import anyio.lowlevel
import sniffio

from ._client import CoredisClient, ScriptClient
from ._scripts import RELEASE, RENEW

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    import coredis

    from ._semaphore import Permit, Semaphore

# How soon a script that failed on a transient error is tried again.
_RETRY_DELAY = 0.05

# The most ids one background RELEASE frees: a script blocks the server while it runs.
_RELEASE_BATCH = 256

# The longest duration taken, in seconds: the scripts' times stay exact.
_MAX_SECONDS = 1e9
# The shortest: the server counts milliseconds.
_MIN_SECONDS = 0.001

_NOT_ENTERED = "the Session is not entered: use 'async with Session(client)'"

__all__ = ["Session", "check_seconds", "refuse_copy"]


def check_seconds(name: str, seconds: object) -> float:
    """Return *seconds* as a float; raise TypeError or ValueError if it is
    not a finite number from a millisecond (the server's unit) to a billion."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(seconds).__name__}")
    # Compared, not converted: an int as large as 10**400 has no float.
    if not seconds > 0 or seconds == math.inf:  # nan is not > 0
        raise ValueError(f"{name} must be positive and finite, not {seconds!r}")
    if seconds < _MIN_SECONDS:
        raise ValueError(f"{name} must be at least {_MIN_SECONDS} seconds, not {seconds!r}")
    if seconds > _MAX_SECONDS:
        raise ValueError(f"{name} must be at most {_MAX_SECONDS:.0f} seconds")
    return float(seconds)


def refuse_copy(self: object, protocol: SupportsIndex) -> NoReturn:
    """``__reduce_ex__`` of what stands for a session's state on the server,
    of which a copy would be a second claim."""
    raise TypeError(
        f"cannot pickle or copy {self!r}: it stands for a session's state on the server"
    )


class Session:
    """The presence of one process on a Redis or Valkey server.

    ``async with Session(client) as session:`` gives the process an identity,
    listens on one pub/sub channel for the wake-ups of its waiting tasks,
    renews the leases of the permits its tasks hold, and on exit releases
    the permits they still hold, which are then lost to them (see
    :attr:`Permit.lost <loopsync.redis.Permit.lost>`), and withdraws the tasks
    still waiting, whose :meth:`~loopsync.redis.Semaphore.acquire` then
    raises :exc:`RuntimeError`.  Every
    :class:`~loopsync.redis.Semaphore` and :class:`~loopsync.redis.Lock` is
    used through a session.

    *client* is an entered :class:`coredis.Redis` (or
    :class:`coredis.RedisCluster`) client.  A waiting task
    asks the server again every *poll_interval* seconds (or sooner, when a
    lease it waits behind is due to expire), so a lost wake-up costs at most
    that long; a waiting task that stops asking for three intervals is
    dropped from the queue.  *cleanup_timeout* bounds how long, from when it
    is asked for, a release or a withdrawal is tried again when the server
    does not answer; the leases and liveness limits then free what it held.
    The exit waits for the releases under way, in any task.

    A session serves the tasks of the thread and the library that entered
    it; any other task gets :exc:`RuntimeError`.  Entering it raises the
    client's error if the server is down or refuses the client.

    .. versionadded:: 0.2
    """

    _renewals_changed: anyio.Event  # set when a renewal falls due earlier

    __reduce_ex__ = refuse_copy

    def __init__(
        self,
        client: coredis.Redis[Any] | coredis.RedisCluster[Any],
        *,
        poll_interval: float = 1.0,
        cleanup_timeout: float = 10.0,
    ) -> None:
        poll_interval = check_seconds("poll_interval", poll_interval)
        cleanup_timeout = check_seconds("cleanup_timeout", cleanup_timeout)
        # Another client may come as a ScriptClient of its own.
        self._client: ScriptClient = (
            cast("ScriptClient", client) if hasattr(client, "run_script") else CoredisClient(client)
        )
        self._poll_interval = poll_interval
        self._cleanup_timeout = cleanup_timeout
        self.id = ""
        self._count = 0
        self._task_group: anyio.abc.TaskGroup | None = None
        self._closing = False
        self._waiting: dict[str, Semaphore] = {}
        self._wakeups: dict[str, anyio.Event | None] = {}
        self._grants: dict[str, tuple[int, int]] = {}
        self._held: dict[str, Permit] = {}
        # Those whose permits this entry took (a lost permit keeps its own).
        self._used: weakref.WeakSet[Semaphore] = weakref.WeakSet()
        self._next_renewal = math.inf
        # The highest fencing token its tasks got, per semaphore name: the
        # floor of the next (across its entries, and its Semaphore objects).
        self._highest_tokens: dict[str, int] = {}
        # A withdrawn id is remembered while a late ask of it may arrive, and
        # while its release may still be retried (its first answer kept).
        self._remember_ms = math.ceil((self.liveness + cleanup_timeout) * 1000)
        # The ids to release in the background, per semaphore (keys, value),
        # each list sent by a task of its own, with the time to give each up.
        self._to_release: dict[tuple[tuple[str, ...], int], list[tuple[str, float]]] = {}
        # The releases under way in tasks, which the exit waits for.
        self._releasing = 0
        self._releases_done: anyio.Event | None = None

    @property
    def poll_interval(self) -> float:
        """Seconds between a waiting task's asks of the server (read-only)."""
        return self._poll_interval

    @property
    def cleanup_timeout(self) -> float:
        """Seconds a release or a withdrawal is retried for (read-only)."""
        return self._cleanup_timeout

    @property
    def liveness(self) -> float:
        """Seconds after which the server drops a waiting task that stopped asking."""
        return 3 * self.poll_interval

    async def __aenter__(self) -> Session:
        if self._task_group is not None:
            raise RuntimeError("this Session is already entered")
        self.id = uuid.uuid4().hex
        self._closing = False
        # Its task group serves the tasks of one library in one thread.
        self._thread = threading.get_ident()
        self._library = sniffio.current_async_library()
        self._renewals_changed = anyio.Event()
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        try:
            await task_group.start(self._listen)
            task_group.start_soon(self._renew_leases)
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
    ) -> None:
        task_group = self._task_group
        assert task_group is not None
        self._closing = True
        for permit in list(self._held.values()):
            self._release_soon(permit.semaphore._keys, permit.semaphore._value, permit.id)
            # Its task may hold it still (a task of another task group) and
            # go on: to that task the permit is lost, as when its lease ends.
            permit._lose()
        self._held.clear()
        # Lost permits too: a task holds none of this entry once it exits.
        for semaphore in self._used:
            semaphore._forget_all()
        self._used.clear()
        # Tasks of other task groups may still wait: withdraw them, and wake
        # them to raise (an ask in flight meets a withdrawn id, refused).
        for permit_id, semaphore in self._waiting.items():
            self._release_soon(semaphore._keys, semaphore._value, permit_id)
        for event in self._wakeups.values():
            if event is not None:
                event.set()
        # Releases under way in tasks of other task groups use the client,
        # which the caller may close once this returns.  Each gives up by
        # cleanup_timeout.
        try:
            with anyio.CancelScope(shield=True):
                while self._releasing:
                    self._releases_done = anyio.Event()
                    await self._releases_done.wait()
        finally:
            # asyncio's own cancellation passes the shield: the session is
            # closed all the same, and the cancellation propagates after.
            self._releases_done = None
            task_group.cancel_scope.cancel()  # the releases just started are shielded
            try:
                # The body's own exception propagates as it is, not in a group.
                await task_group.__aexit__(None, None, None)
            finally:
                self._task_group = None

    def _check_entered(self) -> anyio.abc.TaskGroup:
        """Return the session's task group; raise RuntimeError if it is not
        entered, or exiting, or the caller is not of its thread and library."""
        if self._task_group is None or self._closing:
            raise RuntimeError(_NOT_ENTERED)
        if threading.get_ident() != self._thread:
            raise RuntimeError("the Session serves the tasks of the thread that entered it only")
        library = sniffio.current_async_library()
        if library != self._library:
            raise RuntimeError(f"the Session was entered under {self._library}, not {library}")
        return self._task_group

    def _entered_as(self, task_group: anyio.abc.TaskGroup) -> bool:
        """Return True while the session stays in the entry whose task group
        :meth:`_check_entered` returned as *task_group*."""
        return self._task_group is task_group and not self._closing

    def _new_permit_id(self) -> str:
        """Return a permit id never used before: '<session id>:<n>'."""
        self._count += 1
        return f"{self.id}:{self._count}"

    async def _run(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run *script* on the server."""
        return await self._client.run_script(script, keys, args)

    # Wake-ups: the server publishes '<permit id> <token> <ask>' on the
    # channel of the session whose task it hands a permit to.

    async def _listen(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        channel = f"loopsync:session:{self.id}"
        listening = False
        while True:
            try:
                async with self._client.listen(channel) as messages:
                    if not listening:
                        listening = True
                        task_status.started()
                    async for message in messages:
                        permit_id, token, ask = message.split()
                        if permit_id in self._wakeups:
                            self._grants[permit_id] = (int(token), int(ask))
                            event = self._wakeups[permit_id]
                            if event is not None:
                                event.set()
            except Exception as exc:
                if not listening:
                    # A cancelled entry is cancelled, although the client may
                    # have turned the cancellation of its connecting into a
                    # connection error (coredis does under trio).
                    await anyio.lowlevel.checkpoint_if_cancelled()
                    # No server to enter the session on (refused, or the
                    # client refused by it): the entry raises why, at once,
                    # out of the client's task groups.
                    error: BaseException = exc
                    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
                        error = error.exceptions[0]
                    raise error from None
                # A lost connection: waiting tasks poll meanwhile.
                await anyio.sleep(self.poll_interval)

    def _expect_wakeups(self, permit_id: str, semaphore: Semaphore) -> None:
        """Record the grants announced to *permit_id*, of *semaphore*, from
        now on, and withdraw it on exit unless :meth:`_stop_expecting` is
        called first."""
        self._waiting[permit_id] = semaphore
        self._wakeups[permit_id] = None

    def _wakeup(self, permit_id: str) -> anyio.Event:
        """Return a new event that the next announced grant to *permit_id* sets."""
        event = self._wakeups[permit_id] = anyio.Event()
        return event

    def _granted(self, permit_id: str) -> tuple[int, int] | None:
        """Return the token and the ask number of the last grant to *permit_id*
        that the server announced, if any, forgetting it."""
        return self._grants.pop(permit_id, None)

    def _stop_expecting(self, permit_id: str) -> None:
        self._waiting.pop(permit_id, None)
        self._wakeups.pop(permit_id, None)
        self._grants.pop(permit_id, None)

    # Leases: one task renews every held permit a third of the way through
    # its lease, and declares it lost when its local deadline passes first.

    def _keep(self, permit: Permit) -> None:
        """Renew *permit*'s lease until :meth:`_drop` is called for it."""
        self._held[permit.id] = permit
        self._used.add(permit.semaphore)
        if permit.renew_at < self._next_renewal:
            self._renewals_changed.set()

    def _drop(self, permit: Permit) -> None:
        """Stop renewing *permit*'s lease."""
        self._held.pop(permit.id, None)

    async def _renew_leases(self) -> None:
        while True:
            # While nothing is held, wake once per poll interval anyway: a
            # permit kept meanwhile then needs no wake-up of its own.
            self._next_renewal = min(
                (permit.renew_at for permit in self._held.values()),
                default=time.monotonic() + self.poll_interval,
            )
            self._renewals_changed = changed = anyio.Event()
            with anyio.move_on_after(self._next_renewal - time.monotonic()) as scope:
                await changed.wait()  # an earlier renewal is due
            if not scope.cancelled_caught:
                continue
            now = time.monotonic()
            due: dict[Semaphore, list[Permit]] = {}
            for permit in list(self._held.values()):
                if permit.deadline <= now:
                    # Late (the loop was busy): the permit may have been
                    # reported lost already, so it stays lost.
                    del self._held[permit.id]
                    permit._lose()
                elif permit.renew_at <= now:
                    due.setdefault(permit.semaphore, []).append(permit)
            for semaphore, permits in due.items():
                await self._renew(semaphore, permits)

    async def _renew(self, semaphore: Semaphore, permits: list[Permit]) -> None:
        """Renew the leases of *permits*, all of *semaphore*, in one script."""
        sent = time.monotonic()
        renewed = None
        deadline = min(permit.deadline for permit in permits)
        # Any error counts as no answer: the permit is lost when its deadline
        # passes unrenewed (a failover leaves a read-only server, say).
        with anyio.move_on_after(deadline - sent), contextlib.suppress(Exception):
            renewed = await self._run(
                RENEW,
                semaphore._keys,
                [semaphore._value, semaphore._lease_ms, *(permit.id for permit in permits)],
            )
        now = time.monotonic()
        for index, permit in enumerate(permits):
            if permit.id not in self._held:
                continue  # released meanwhile
            if now >= permit.deadline or (renewed is not None and not renewed[index]):
                # The deadline passed before an answer was read (the permit
                # may have been reported lost already, so it stays lost), or
                # it is gone from the server.
                del self._held[permit.id]
                permit._lose()
            elif renewed is not None:
                permit.deadline = sent + semaphore.lease
                permit.renew_at = sent + semaphore.lease / 3
            else:
                permit.renew_at = now + _RETRY_DELAY

    # Releases and withdrawals complete even if the task that asked for them
    # is cancelled: in place when the library's cancel scope shields it, in a
    # task of the session's own otherwise (the script is idempotent).  Either
    # way they wait for the server at most cleanup_timeout; the leases and the
    # liveness limits free what they would have.

    async def _release(self, keys: Sequence[str], value: int, permit_id: str) -> int:
        """Release or withdraw *permit_id*; return what RELEASE returns for it."""
        self._releasing += 1
        try:
            return int((await self._release_shielded(keys, value, [permit_id]))[0])
        except Exception:
            raise  # the server's or the client's, once retried: nothing left to do
        except BaseException:
            # Natively cancelled (an asyncio Task.cancel() passes anyio's
            # shield): the session finishes, unless it has exited meanwhile.
            if self._task_group is not None:
                self._release_soon(keys, value, permit_id)
            raise
        finally:
            self._releasing -= 1
            if not self._releasing and self._releases_done is not None:
                self._releases_done.set()

    def _release_soon(self, keys: Sequence[str], value: int, permit_id: str) -> None:
        """Release or withdraw *permit_id* in the background, also while the
        session exits, which waits for it."""
        if self._task_group is None:
            raise RuntimeError(_NOT_ENTERED)
        semaphore = (tuple(keys), value)
        entry = (permit_id, anyio.current_time() + self.cleanup_timeout)
        pending = self._to_release.get(semaphore)
        if pending is not None:
            pending.append(entry)  # its task sends it next
            return
        self._to_release[semaphore] = [entry]
        try:
            self._task_group.start_soon(self._release_pending, semaphore)
        except BaseException:
            self._to_release.pop(semaphore, None)
            raise

    async def _release_pending(self, semaphore: tuple[tuple[str, ...], int]) -> None:
        # One task per semaphore sends its ids, one script at a time: the
        # client serves requests in turn, and a request per cancelled task,
        # in a storm of them, kept every other request waiting long enough
        # to be cancelled in turn, for as long as the storm lasted.
        pending = self._to_release[semaphore]
        try:
            while pending:
                batch = pending[:_RELEASE_BATCH]
                del pending[:_RELEASE_BATCH]
                # Given up (each id is tried for cleanup_timeout from when it
                # was asked for: the ids queued while a batch was retried get
                # their time, and those past it none), the leases and the
                # liveness limits free what the batch held.  Refused (a
                # semaphore made again with another value), nothing is held.
                with contextlib.suppress(Exception):
                    await self._release_shielded(
                        *semaphore,
                        [permit_id for permit_id, _ in batch],
                        give_up_at=max(give_up_at for _, give_up_at in batch),
                    )
        finally:
            # No await since *pending* was last found empty: an id appended
            # meanwhile went out, and the next one starts a task of its own.
            del self._to_release[semaphore]

    async def _release_shielded(
        self,
        keys: Sequence[str],
        value: int,
        permit_ids: Sequence[str],
        give_up_at: float | None = None,
    ) -> list[int]:
        """Run RELEASE, shielded, again after each transient error (see
        ScriptClient.is_transient()), until *give_up_at* (anyio's clock; by
        default cleanup_timeout from now); then raise the last error, or
        TimeoutError."""
        error: Exception = TimeoutError(
            f"the server did not answer within cleanup_timeout ({self.cleanup_timeout} s);"
            " the lease frees what it held"
        )
        if give_up_at is None:
            give_up_at = anyio.current_time() + self.cleanup_timeout
        # Shielded from the caller's cancellation; its own deadline still ends it.
        with anyio.CancelScope(shield=True, deadline=give_up_at):
            while True:
                try:
                    return list(
                        await self._run(RELEASE, keys, [value, self._remember_ms, *permit_ids])
                    )
                except Exception as exc:
                    if not self._client.is_transient(exc):
                        raise
                    error = exc
                    await anyio.sleep(_RETRY_DELAY)
        raise error
