"""The backend protocol: what a loopsync primitive asks of an async library.

Every primitive is written once against :class:`Backend`.  One adapter
implements it for asyncio (``_asyncio_backend``, also uvloop and anyio's
asyncio backend) and one for trio (``_trio_backend``, also anyio's trio
backend); ``_adapters.current_backend()`` picks the one of the running
library.

How a task waits
----------------
A primitive that must make a task wait asks the backend for a
:class:`Waiter`, appends it to one of its :class:`~loopsync._waitqueue.WaiterQueue`
and awaits it.  Whoever wakes the task does so through a named operation of
the queue, which calls ``set_result(value)`` on the first waiter that is not
done; the ``await`` then returns *value*.

Cancellation is what makes this hard, and the protocol settles it in one
rule: **the library cancels a waiter the moment it delivers a cancellation
to its task**, before the task runs again (asyncio's ``Task.cancel()``
cancels the future its task awaits; trio calls the abort function of the
parked task).  So a waiter that is done when a waker reaches it was
cancelled, and the waker passes it over: a permit or a notification is never
handed to a task that will not take it.  (asyncio's Lock is the exception
loopsync copies: its release wakes nobody while the first waiter is
cancelled, and that waiter's task passes the lock on when it runs.)  The
cancelled task notes its departure on the queue when it runs; the queue
drops it at once from either end, and sweeps out the others in bulk.  Every
removal is O(1), amortized.

Two flags decide everything else that differs between libraries in how
tasks wait, each on its own, so that every cell of this grid is a
consistent set of rules::

                              wakeup_revocable=False    wakeup_revocable=True
    always_checkpoints=True   trio                      (none so far)
    always_checkpoints=False  (none so far)             asyncio, uvloop

(Tests also run primitives in the empty cells, with adapters derived from these.)

``always_checkpoints`` is trio's rule: every blocking call is a checkpoint,
cancellable and yielding even when it need not wait.  When it is False, the
rule is asyncio's: a call that can finish at once never yields.

``wakeup_revocable`` says whether a task can still be cancelled after it was
woken and before it runs.  Under asyncio it can, so whatever a primitive
hands a woken task stays provisional until the task resumes; a cancelled one
gives it back, and a permit handed over keeps the primitive locked until its
taker resumes.  Under trio a rescheduled task cannot be cancelled, so a
hand-off is final the moment it is made.

A third flag, ``tracks_owners``, is trio's rule that a lock belongs to the
task that acquired it: only that task may release it, it may not acquire it
again, and if it exits still holding the lock, the lock is broken
(``exit_watch()``).  asyncio's locks have no owner.  It is not free: a lock
with an owner passes straight to its next owner, a hand-off that cannot be
revoked, so ``tracks_owners`` must be ``not wakeup_revocable``.

Loop binding, and one library at a time
---------------------------------------
asyncio binds a primitive to the event loop of its first wait.  loopsync
binds to what ``current_loop()`` returns at the first wait, and later
waiters are created for that loop (``create_waiter(loop=...)``).  Before a
task waits, a primitive asks ``runs_on()``, which refuses a task of another
loop, library or thread at once, as asyncio does, so that such a task never
counts as waiting.  trio has no loop to bind to (``current_loop()`` is
None), so a primitive is never bound to a trio run.

The tasks waiting on a primitive are all of one library, so that every
wake-up follows the rules of the library of the task it wakes: a task of
another library that must wait meanwhile gets a RuntimeError.  This only
matters where two libraries share a thread: trio as a guest of asyncio, or
one library's run called by a task of the other (``_thread_library`` tells
which runs on top, for the adapters' ``is_current()``).

Writing an adapter
------------------
1. Write a waiter class with the methods of :class:`Waiter`.  Its
   ``__await__`` parks the current task until ``set_result()`` is called; if
   the task is cancelled first, it marks itself cancelled (so that
   ``done()`` is true) before the task runs again, and raises the library's
   cancellation exception.
2. Write the backend class with the members of :class:`Backend`.
   Its exceptions subclass loopsync's and the library's own: see
   ``_exceptions.native()``.
3. Teach ``_adapters.current_backend()`` the library's sniffio name (the
   library must set it while its tasks run).  A test can put an adapter in
   ``_adapters._backends`` under that name instead.
4. If the library can interrupt a task with KeyboardInterrupt at any bytecode
   (trio can), its adapter protects the functions ``_ki.marked`` lists as it
   loads, and ``_ki`` learns to load it (it knows trio's).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Protocol, TypeVar

from ._exceptions import BrokenBarrierError, WouldBlock

__all__ = ["Backend", "Loop", "Waiter"]

_T = TypeVar("_T")


class Loop(Protocol):
    """An event loop a primitive can be bound to (asyncio's); primitives only
    keep it and hand it back to the adapter that gave it."""


class Waiter(Protocol):
    """A one-shot wake-up for one parked task; a plain future under asyncio.

    Primitives call ``set_result()`` only on a waiter that is not done,
    ``result()`` only on one woken, and ``cancel()`` only from the waiter's
    own task, after its ``await`` raised: it never has to wake a task.
    """

    def done(self) -> bool:
        """Return True once the waiter is woken or cancelled."""

    def cancelled(self) -> bool:
        """Return True if the waiter was cancelled."""

    def set_result(self, value: Any) -> None:
        """Schedule the parked task to resume with *value*; only if not done."""

    def result(self) -> Any:
        """Return the value a woken waiter was woken with."""

    def cancel(self) -> bool:
        """Withdraw a waiter that is not done; return False if it was done.
        May raise RuntimeError if its loop is closed, having cancelled it."""

    def __await__(self) -> Generator[Any, None, Any]:
        """Park the current task until the waiter is woken."""


class Backend(Protocol):
    """The operations and rules of one async library."""

    always_checkpoints: bool
    """True if every blocking call checkpoints even when it need not wait."""

    wakeup_revocable: bool
    """True if a woken task can still be cancelled before it resumes."""

    tracks_owners: bool
    """True if a lock belongs to the task that acquired it (trio's rule)."""

    broken_barrier_error: type[BrokenBarrierError]
    """What a broken barrier raises: a subclass of the library's own, if any."""

    event_bool_error: str | None
    """The message of the NotImplementedError that ``bool(event)`` raises,
    or None if an event is simply true (asyncio's)."""

    def would_block_error(self) -> type[WouldBlock]:
        """Return what a ``*_nowait`` call raises now: a subclass of the
        library's own WouldBlock, and of anyio's once anyio is imported."""

    def broken_resource_error(self) -> type[Exception]:
        """Return what a lock whose owner exited raises (``tracks_owners``)."""

    def current_task(self) -> object:
        """Return the running task, hashable and the same object for the
        task's life: a lock's owner, a limiter's default borrower.  Raise
        RuntimeError where the library does not run."""

    def exit_watch(self, on_exit: Callable[[Any], None]) -> object:
        """Return a watch that calls ``on_exit(task)`` as a task it watches
        exits, however it ends (``tracks_owners`` only)."""

    def watch_exit(self, task: Any, watch: Any) -> None:
        """Start watching *task* with *watch*, a return of ``exit_watch()``."""

    def unwatch_exit(self, task: Any, watch: Any) -> None:
        """Stop watching *task* with *watch*."""

    def is_current(self) -> bool:
        """Return True if this library runs the current task (or callback),
        False if another one does, or none."""

    def is_current_awaited(self) -> bool:
        """Return ``is_current()`` for a coroutine being awaited; where no
        library runs it (awaited by hand), True if the library's own
        primitives work there until they must wait (asyncio's), else False.
        The awaited paths of a primitive bound to no loop ask it on every
        call, so it may skip what is costly in ``is_current()``."""

    def current_loop(self) -> Loop | None:
        """Return the running loop, to bind to; None if the library has none."""

    def runs_on(self, loop: Any) -> object:
        """Return something true if *loop* runs the current task; false if
        another loop or library runs it, *loop* runs in another thread, or
        no task of *loop* runs (a coroutine driven by hand, a callback)."""

    def create_waiter(self, *, loop: Any) -> Waiter:
        """Return a new waiter for the current task, belonging to *loop*
        (what ``current_loop()`` returned, now or for an earlier waiter)."""

    async def checkpoint(self) -> None:
        """Check for cancellation and let other tasks run."""

    async def checkpoint_if_cancelled(self) -> None:
        """Raise if the current task is cancelled; do not yield otherwise.
        A library that cannot tell a pending cancellation does nothing
        (asyncio, but for an anyio cancel scope's)."""

    async def cancel_shielded_checkpoint(self) -> None:
        """Let other tasks run without checking for cancellation; a library
        that cannot hold a cancellation back (asyncio) raises it, and the
        caller gives back what it took.  Over asyncio, anyio's cancel scopes
        are shielded meanwhile, as anyio's own checkpoint does."""

    async def uncancellable(
        self, async_fn: Callable[[], Awaitable[_T]], *, shield_scopes: bool = False
    ) -> _T:
        """Return ``await async_fn()`` even if the task is cancelled
        meanwhile; the cancellation reaches the task afterwards, as the
        library delivers it (asyncio, which cannot shield a task: by calling
        *async_fn* again after each one, then raising; trio: at the next
        checkpoint).  With *shield_scopes*, asyncio holds back the
        cancellations of anyio's cancel scopes too, as trio does."""
