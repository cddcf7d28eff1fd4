"""Semaphores and locks shared by many processes through a Redis or Valkey server.

Install with ``pip install 'loopsync[redis]'`` (the client is coredis).
Under asyncio, uvloop, trio and anyio alike::

    async with coredis.Redis(host="127.0.0.1") as client:
        async with loopsync.redis.Session(client) as session:
            limit = loopsync.redis.Semaphore(session, "api-calls", 20)
            async with limit as permit:
                ...  # at most 20 tasks in all processes get here

Design
------
Each semaphore is six keys, ``loopsync:{sem:<name>}:<part>``, sharing one
hash tag (one Redis Cluster slot) and one expiry time: ``holders`` (permit
id -> lease expiry, server milliseconds), ``queue`` (waiting id -> arrival
number), ``waiting`` (id -> its lease, its last ask, the lowest token its
process accepts), ``alive`` (id -> liveness expiry), ``withdrawn`` (ids
released or cancelled lately) and ``meta`` (the value, the fencing counter,
each holder's token, the keys' expiry time).  Every change
is one idempotent Lua script (``_scripts``), keyed by a permit id that the
task chooses before its first send.

A permit id goes through: *new* -> *waiting* (queued, alive while its task
asks again at least every poll interval) -> *holding* (granted, its lease
renewed by the session) -> *released*; or from *waiting* or *holding* to
*withdrawn* when its task is cancelled or fails, and from *holding* to *lost*
when its lease ends.  A script that frees a permit hands it at once to the
head of the queue and publishes ``<id> <token> <ask>`` on the channel of
that waiter's session, *ask* being the number of the waiter's last request,
which the grant followed.  The session wakes that one task, which counts
its lease from the moment it sent that request (so its deadline passes
before the server's) and needs no further round trip, unless most of the
lease is gone by then.  Wake-ups are hints: a waiting task asks again after
one poll interval, or as soon as the lease it waits behind may have expired.

Why the failure cases hold:

- a crashed holder: its lease is not renewed, and the next script after its
  expiry (a waiting task asks at that moment) drops it and promotes the head;
- a crashed waiter: it stops asking, and its liveness lapses;
- a cancelled task: its session releases or withdraws its id in a task of
  its own (so the cancellation cannot interrupt it), whatever the server did
  with it, one script at a time per semaphore, each for every id of it
  cancelled meanwhile (so that a storm of cancellations cannot crowd out
  the other requests); a late ask of a withdrawn id is refused;
- a server restart: the renewal finds the permit gone (LeaseLost), and the
  fencing counter falls back to the server clock in microseconds, above
  every token issued before;
- a stalled server: the holder's local deadline, counted from before its
  request was sent, passes before the server's expiry;
- a lost pub/sub connection: the tasks poll until it is back.
"""

from ._semaphore import (
    BoundedSemaphore,
    LeaseLost,
    Lock,
    Permit,
    Semaphore,
    SemaphoreStatistics,
)
from ._session import Session

__all__ = [
    "BoundedSemaphore",
    "LeaseLost",
    "Lock",
    "Permit",
    "Semaphore",
    "SemaphoreStatistics",
    "Session",
]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
