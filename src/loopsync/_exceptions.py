"""The exceptions loopsync raises."""

from __future__ import annotations

__all__ = ["BrokenBarrierError", "WouldBlock"]


class WouldBlock(Exception):
    """Raised by a ``*_nowait`` method that would have had to wait."""


class BrokenBarrierError(RuntimeError):
    """Raised when a :class:`~loopsync.Barrier` is broken while a task waits on it.

    Under asyncio, the exception raised is also an instance of
    :exc:`asyncio.BrokenBarrierError`, so existing ``except`` clauses keep
    working.
    """
