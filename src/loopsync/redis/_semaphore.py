"""Semaphore, BoundedSemaphore and Lock shared through a Redis server."""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio

from .._adapters import current_backend
from .._callbacks import is_coroutine_function, refuse_awaitable
from .._exceptions import WouldBlock
from ._scripts import ACQUIRE, KEY_SUFFIXES, STATISTICS
from ._session import Session, check_seconds, refuse_copy

__all__ = ["BoundedSemaphore", "LeaseLost", "Lock", "Permit", "Semaphore", "SemaphoreStatistics"]

_logger = logging.getLogger("loopsync.redis")

# The largest value the scripts count exactly.
_MAX_VALUE = 2**53


def _refuses_value(exc: Exception) -> bool:
    """Return True if *exc* is a script's refusal of a semaphore in use with
    another value."""
    return str(exc).startswith("LOOPSYNC_VALUE ")


class LeaseLost(Exception):
    """Raised when a permit's lease ended before it was released.

    The lease expired unrenewed (the server or the network stalled past the
    local deadline), or the server lost the permit (a restart without
    persistence, a failover).  Another task may have held the permit since.

    .. versionadded:: 0.2
    """


@dataclass(frozen=True)
class SemaphoreStatistics:
    """A snapshot of a shared semaphore, across every process using it.

    .. versionadded:: 0.2
    """

    value: int
    """The number of permits."""
    borrowed: int
    """The permits held now."""
    tasks_waiting: int
    """The tasks waiting for a permit, in every process."""


class Permit:
    """A permit held from a shared semaphore, as ``acquire()`` returns it.

    Its ``fencing_token`` is greater than that of every permit of the
    semaphore granted before it, also across a restart of the server.  Pass
    it to the resource the permit guards, which should refuse a token lower
    than the highest it has seen: a holder paused past its lease (a stop of
    the process, a long collection) cannot tell that its permit was lost
    until it runs again.

    .. versionadded:: 0.2
    """

    # A dict, so that the API reference documents the attributes.
    __slots__ = {
        "_lost": None,
        "_released": None,
        "deadline": "The :func:`time.monotonic` time the lease ends by, unless renewed.",
        "fencing_token": "An int, strictly increasing per semaphore.",
        "id": "The permit's id on the server.",
        "renew_at": "The :func:`time.monotonic` time the session renews the lease.",
        "semaphore": "The semaphore the permit was taken from.",
    }

    __reduce_ex__ = refuse_copy

    def __init__(self, semaphore: Semaphore, permit_id: str, token: int, deadline: float) -> None:
        if not isinstance(semaphore, Semaphore):
            raise TypeError(
                f"semaphore must be a loopsync.redis.Semaphore, not {type(semaphore).__name__}"
            )
        if not isinstance(permit_id, str):
            raise TypeError(f"permit_id must be a str, not {type(permit_id).__name__}")
        if isinstance(token, bool) or not isinstance(token, int):
            raise TypeError(f"token must be an int, not {type(token).__name__}")
        if isinstance(deadline, bool) or not isinstance(deadline, (int, float)):
            raise TypeError(f"deadline must be a number, not {type(deadline).__name__}")
        self.semaphore = semaphore
        self.id = permit_id
        self.fencing_token = token
        self.deadline = deadline
        self.renew_at = deadline - semaphore.lease * 2 / 3
        self._lost = False
        self._released = False

    @property
    def lost(self) -> bool:
        """True once the lease ended before the permit was released, or its
        session's exit released it while its task held it."""
        return self._lost or (not self._released and time.monotonic() >= self.deadline)

    def check(self) -> None:
        """Raise :exc:`LeaseLost` if the lease has ended."""
        if self.lost:
            raise LeaseLost(f"the lease of {self!r} has ended")

    def _lose(self) -> None:
        self._lost = True
        callback = self.semaphore._on_lease_lost
        if callback is not None:
            # Called by the session's renewals, which must go on for the
            # other permits: an exception has nowhere else to go.
            try:
                result = callback(self)
                if result is not None:
                    refuse_awaitable(result, "on_lease_lost", "loopsync.redis")
            except Exception:
                _logger.exception("on_lease_lost raised, called with %r", self)

    async def release(self) -> None:
        """Release the permit: ``await permit.semaphore.release(permit)``."""
        await self.semaphore.release(self)

    def __repr__(self) -> str:
        state = "released" if self._released else "lost" if self.lost else "held"
        return (
            f"<loopsync.redis.Permit {self.semaphore.name!r} token={self.fencing_token} [{state}]>"
        )


class Semaphore:
    """A semaphore whose *value* permits (an int from 1 to 2**53) are shared
    by every process that uses the same *name* on the server of *session*.

    ``async with sem as permit:`` and :meth:`acquire` wait for a permit,
    in arrival order across all processes, and :meth:`release` (or the end
    of the ``async with`` block, for the permit it bound) gives it back, to
    the first waiting task if any.  A holder's lease lasts *lease*
    seconds and is renewed while the session runs; a holder that crashes
    loses its permit when the lease ends.  *on_lease_lost*, if given, is
    called with the :class:`Permit` when a lease ends before its release,
    once, whether a renewal, the release or the session's exit finds it; an
    exception it raises is logged (logger ``loopsync.redis``).

    A task cancelled while it waits never keeps a permit or a place in the
    queue.  Unlike :class:`asyncio.Semaphore`, the permits are counted on
    the server, so a release never adds one: releasing a permit not held
    raises :exc:`RuntimeError`.

    .. versionadded:: 0.2
    """

    _not_held_error: type[Exception] = RuntimeError

    __reduce_ex__ = refuse_copy

    def __init__(
        self,
        session: Session,
        name: str,
        value: int = 1,
        *,
        lease: float = 10.0,
        on_lease_lost: Callable[[Permit], object] | None = None,
    ) -> None:
        if not isinstance(session, Session):
            raise TypeError(
                f"session must be a loopsync.redis.Session, not {type(session).__name__}"
            )
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        if not name:
            raise ValueError("name must not be empty")
        try:
            name.encode()
        except UnicodeEncodeError:
            # A lone surrogate: no key on the server can have it.
            raise ValueError(f"name must be encodable in UTF-8, not {name!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"value must be an int, not {type(value).__name__}")
        if value < 1:
            raise ValueError(f"value must be at least 1, not {value!r}")
        if value > _MAX_VALUE:
            # The scripts count in Lua's doubles: above, two values are one.
            raise ValueError("value must be at most 2**53")
        if on_lease_lost is not None:
            if not callable(on_lease_lost):
                raise TypeError(
                    f"on_lease_lost must be callable or None, not {type(on_lease_lost).__name__}"
                )
            if is_coroutine_function(on_lease_lost):
                raise TypeError(
                    "on_lease_lost must be a plain function: loopsync.redis cannot await it"
                )
        self._lease = check_seconds("lease", lease)
        self._name = name
        self._session = session
        self._value = value
        self._lease_ms = math.ceil(self._lease * 1000)
        self._on_lease_lost = on_lease_lost
        # One hash tag, never empty (a name may start with "}"): Redis Cluster
        # keeps a semaphore in one slot.
        self._keys = [f"loopsync:{{sem:{name}}}:{suffix}" for suffix in KEY_SUFFIXES]
        self._held: dict[Any, list[Permit]] = {}  # task -> its permits, in order
        # task -> the permits its `async with` blocks bound, innermost last:
        # each block's end releases its own, whatever else the task took.
        self._entered: dict[Any, list[Permit]] = {}
        # The permits a session's exit took from tasks still holding them,
        # until each task releases them (LeaseLost) or ends.
        self._lost_at_exit: weakref.WeakKeyDictionary[Any, list[Permit]] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def name(self) -> str:
        """The name the processes share the semaphore by."""
        return self._name

    @property
    def lease(self) -> float:
        """How long, in seconds, a permit is held unless renewed."""
        return self._lease

    @property
    def value(self) -> int:
        """The number of permits."""
        return self._value

    def __repr__(self) -> str:
        return f"<loopsync.redis.{type(self).__name__} {self.name!r} value={self._value}>"

    async def acquire(self) -> Permit:
        """Wait for a permit, in arrival order across every process, and
        return it."""
        return await self._acquire(wait=True)

    async def acquire_nowait(self) -> Permit:
        """Take a permit if one is free and no task waits for one; otherwise
        raise :exc:`loopsync.WouldBlock`.  One round trip; never waits in the
        queue."""
        return await self._acquire(wait=False)

    async def _acquire(self, *, wait: bool) -> Permit:
        session = self._session
        entry = session._check_entered()
        task = current_backend().current_task()
        self._check_acquirer(task)
        # The id is chosen before the first send: a retried or repeated
        # script finds its own earlier effect instead of taking a second permit.
        permit_id = session._new_permit_id()
        alive_ms = math.ceil(session.liveness * 1000)
        asks = 0
        token = None
        try:
            session._expect_wakeups(permit_id, self)
            while True:
                if not session._entered_as(entry):
                    raise self._exited_error()
                asks += 1
                sent = time.monotonic()
                granted, detail = await self._run(
                    ACQUIRE,
                    [
                        permit_id,
                        self._lease_ms,
                        alive_ms,
                        session._highest_tokens.get(self._name, 0) + 1,
                        "1" if wait else "0",
                        asks,
                    ],
                )
                if granted:
                    token = int(detail)
                    break
                if not wait:
                    break  # neither granted nor queued: nothing to clean up
                announced = session._granted(permit_id)  # during the ask?
                if announced is None:
                    if not session._entered_as(entry):
                        # The session exited during the ask, waking only
                        # the tasks waiting then.
                        raise self._exited_error()
                    delay = session.poll_interval
                    if int(detail) >= 0:  # ms until the first lease may expire
                        delay = min(delay, int(detail) / 1000 + 0.001)
                    with anyio.move_on_after(delay):
                        await session._wakeup(permit_id).wait()
                    announced = session._granted(permit_id)
                # The server granted the permit after it received this ask,
                # so after *sent*: a lease counted from *sent* ends before the
                # server's.  Unless most of it is gone, no need to ask again.
                if (
                    announced is not None
                    and announced[1] == asks
                    and time.monotonic() - sent < self.lease / 2
                ):
                    token = announced[0]
                    break
        except BaseException:
            session._stop_expecting(permit_id)
            # Cancelled or failed anywhere, even after the server granted the
            # permit (reply lost, or cancelled before resuming): free the
            # permit or the place in the queue, whatever the server did.
            # Once the session exits, its exit does.
            if session._entered_as(entry):
                session._release_soon(self._keys, self._value, permit_id)
            raise
        session._stop_expecting(permit_id)
        if not session._entered_as(entry):  # its exit withdraws this id, granted or not
            raise self._exited_error()
        if token is None:
            raise _would_block()
        if token > session._highest_tokens.get(self._name, 0):
            session._highest_tokens[self._name] = token
        permit = Permit(self, permit_id, token, deadline=sent + self.lease)
        self._held.setdefault(task, []).append(permit)
        session._keep(permit)
        return permit

    def _exited_error(self) -> RuntimeError:
        return RuntimeError(f"the Session exited while a task waited for {self!r}")

    async def _run(self, script: str, args: list[Any]) -> Any:
        """Run *script* on this semaphore's keys, its value the first argument."""
        try:
            return await self._session._run(script, self._keys, [self._value, *args])
        except Exception as exc:
            if _refuses_value(exc):
                raise ValueError(
                    f"{self.name!r} is in use with value {str(exc).split()[1]}, not {self._value}"
                ) from None
            raise

    def _check_acquirer(self, task: Any) -> None:
        """Raise if *task* may not acquire (a Lock's owner)."""

    async def release(self, permit: Permit | None = None) -> None:
        """Release *permit*, or else the last permit the current task took.

        Raises :exc:`LeaseLost` if the permit's lease had ended before the
        release, whatever the server answers; the release is made all the
        same.  The release completes even if the task is cancelled while it
        waits for the server, which it waits for at most the session's
        *cleanup_timeout*, trying again after each
        error that may pass (a lost connection, a server busy with another
        client's script): then it raises :exc:`TimeoutError` (or the last
        such error), and the permit's lease frees it on the server.  Any
        other error the server answers with is raised at once, and the lease
        frees the permit too.
        """
        permit = self._take_back(permit)
        session = self._session
        session._drop(permit)
        if permit.lost and not permit._lost:
            # Its deadline passed unrenewed: lost, and told so before the
            # release, which a cancellation (asyncio's passes the shield) may end.
            permit._lose()
        permit._released = True
        refused = None
        try:
            held = await session._release(self._keys, self._value, permit.id)
        except Exception as exc:
            # Whether the server still holds the permit is unknown (no answer,
            # a read-only replica after a failover), and the lease frees it;
            # unless the semaphore was made again with another value, which
            # holds no permit of this id.  A lease known to have ended is
            # what the holder must hear of first.
            if not (permit._lost or _refuses_value(exc)):
                raise
            refused, held = exc, 0
        if permit._lost or held != 1:
            if not permit._lost:
                permit._lose()
            raise LeaseLost(f"the lease of {permit!r} ended before its release") from refused

    def _take_back(self, permit: Permit | None) -> Permit:
        """Return the permit to release, no longer counted as held."""
        self._session._check_entered()
        task = current_backend().current_task()
        if permit is None:
            permits = self._held.get(task) or self._lost_at_exit.get(task)
            if not permits:
                raise self._not_held_error(self._not_held_message("the current task holds none"))
            permit = permits[-1]
        elif not isinstance(permit, Permit):
            raise TypeError(f"expected a loopsync.redis.Permit, not {type(permit).__name__}")
        # By identity: a Permit made by hand with a holder's id is not held.
        if permit in self._held.get(task, ()):
            holder = task  # the usual case, without a look at every holder
        else:
            holder = next((held_by for held_by, held in self._held.items() if permit in held), None)
        if holder is None:
            self._raise_if_lost_at_exit(permit, task)
            raise self._not_held_error(self._not_held_message(f"{permit!r} is not held"))
        self._check_releaser(holder, task)
        permits = self._held[holder]
        permits.remove(permit)
        if not permits:
            del self._held[holder]
        return permit

    def _raise_if_lost_at_exit(self, permit: Permit, task: Any) -> None:
        """Raise LeaseLost if a session's exit took *permit* from a task
        still holding it, forgetting it; as any holder, only the task that
        took a Lock's may release it."""
        for holder, permits in self._lost_at_exit.items():
            if permit in permits:
                self._check_releaser(holder, task)
                permits.remove(permit)
                raise LeaseLost(f"the lease of {permit!r} ended before its release")

    def _forget_all(self) -> None:
        """Count no permit as held any more (the session exits)."""
        for task, permits in self._held.items():
            for permit in permits:
                if permit._lost:
                    self._lost_at_exit.setdefault(task, []).append(permit)
                else:
                    permit._released = True
        self._held.clear()

    def _not_held_message(self, detail: str) -> str:
        return f"release() of {self!r}: {detail}"

    def _check_releaser(self, holder: Any, task: Any) -> None:
        """Raise if *task* may not release a permit *holder* took (a Lock's owner)."""

    async def locked(self) -> bool:
        """Return True if no permit is free now."""
        statistics = await self.statistics()
        return statistics.borrowed >= statistics.value

    async def statistics(self) -> SemaphoreStatistics:
        """Return a :class:`SemaphoreStatistics` snapshot, read from the server."""
        self._session._check_entered()
        borrowed, waiting = await self._run(STATISTICS, [])
        return SemaphoreStatistics(
            value=self._value, borrowed=int(borrowed), tasks_waiting=int(waiting)
        )

    async def __aenter__(self) -> Permit:
        permit = await self.acquire()
        self._entered.setdefault(current_backend().current_task(), []).append(permit)
        return permit

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = current_backend().current_task()
        entered = self._entered[task]
        permit = entered.pop()
        if not entered:
            del self._entered[task]
        await self.release(permit)


class BoundedSemaphore(Semaphore):
    """A :class:`Semaphore` whose extra release raises :exc:`ValueError`, as
    :class:`asyncio.BoundedSemaphore`'s does.

    .. versionadded:: 0.2
    """

    _not_held_error = ValueError

    def _not_held_message(self, detail: str) -> str:
        return f"BoundedSemaphore released too many times ({detail})"


class Lock(Semaphore):
    """A lock shared through the server: a :class:`Semaphore` with one permit
    that belongs to the task that acquired it, as :class:`trio.Lock` does.

    The task holding it cannot acquire it again, and no other task can
    release it (both raise :exc:`RuntimeError`).  Ownership is kept by the
    :class:`Lock` object: the tasks of a process share one object per name
    (through a second one, the holder would wait for itself).

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        session: Session,
        name: str,
        *,
        lease: float = 10.0,
        on_lease_lost: Callable[[Permit], object] | None = None,
    ) -> None:
        super().__init__(session, name, 1, lease=lease, on_lease_lost=on_lease_lost)

    def _check_acquirer(self, task: Any) -> None:
        if self._held.get(task):
            raise RuntimeError("attempt to re-acquire an already held Lock")

    def _check_releaser(self, holder: Any, task: Any) -> None:
        if holder is not task:
            raise RuntimeError("can't release a Lock you don't own")

    def _not_held_message(self, detail: str) -> str:
        return "can't release a Lock you don't own"


def _would_block() -> WouldBlock:
    try:
        return current_backend().would_block_error()()
    except RuntimeError:  # pragma: no cover - always called from a task
        return WouldBlock()
