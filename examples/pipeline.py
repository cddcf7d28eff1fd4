"""A producer/consumer pipeline, written once, run under asyncio, uvloop and trio.

Producers put ``ITEMS`` jobs into a bounded buffer guarded by a
:class:`loopsync.Condition`; consumers take them out and process them, at
most ``SLOTS`` at a time, under a :class:`loopsync.CapacityLimiter` (think of
a pool of connections).  A :class:`loopsync.Lock` guards the shared tally
of results, and a :class:`loopsync.Event` tells the consumers that the
producers are done.  There is no network: processing a job sleeps for a
millisecond or two.

As in ``crawler.py``, only sleeping and starting tasks come from the
library (``_runtimes.py``); the four primitives find out by themselves which
library runs them.

Run it with::

    python examples/pipeline.py [asyncio|uvloop|trio|all]    # default: all
"""

from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass
from functools import partial

from _runtimes import Runtime, available, parse_libraries, run

import loopsync

ITEMS = 40
PRODUCERS = 2
CONSUMERS = 6
BUFFER = 4
SLOTS = 3


@dataclass(frozen=True)
class PipelineResult:
    processed: list[int]
    peak_buffered: int
    peak_processing: int


async def pipeline(runtime: Runtime) -> PipelineResult:
    """Produce ``ITEMS`` jobs, and process each exactly once."""
    buffer: deque[int] = deque()
    changed = loopsync.Condition()
    slots = loopsync.CapacityLimiter(SLOTS)
    tally_lock = loopsync.Lock()
    producers_done = loopsync.Event()
    processed: list[int] = []
    peak_buffered = peak_processing = 0
    producers_left = PRODUCERS

    async def produce(first: int) -> None:
        nonlocal peak_buffered, producers_left
        for item in range(first, ITEMS, PRODUCERS):
            async with changed:
                await changed.wait_for(lambda: len(buffer) < BUFFER)
                buffer.append(item)
                peak_buffered = max(peak_buffered, len(buffer))
                changed.notify_all()
        async with changed:
            producers_left -= 1
            if not producers_left:
                producers_done.set()
                changed.notify_all()  # wake consumers waiting on an empty buffer

    async def consume() -> None:
        nonlocal peak_processing
        while True:
            async with changed:
                await changed.wait_for(lambda: buffer or producers_done.is_set())
                if not buffer:
                    return
                item = buffer.popleft()
                changed.notify_all()  # room in the buffer
            async with slots:
                peak_processing = max(peak_processing, slots.borrowed_tokens)
                await runtime.sleep((1 + item % 2) / 1000)
            async with tally_lock:
                processed.append(item)

    await runtime.run_all(
        [partial(produce, first) for first in range(PRODUCERS)]
        + [consume for _ in range(CONSUMERS)]
    )
    assert slots.borrowed_tokens == 0, "a token was not given back"
    assert not tally_lock.locked()
    assert not changed.locked()
    return PipelineResult(processed, peak_buffered, peak_processing)


def main(argv: list[str]) -> None:
    for library in parse_libraries(argv):
        if not available(library):
            print(f"{library:<8} skipped ({library} is not installed)")
            continue
        result = run(library, pipeline)
        assert sorted(result.processed) == list(range(ITEMS)), "a job was lost or repeated"
        assert result.peak_buffered <= BUFFER, f"buffer held {result.peak_buffered}"
        assert result.peak_processing == SLOTS, f"peak {result.peak_processing} != {SLOTS}"
        print(
            f"{library:<8} processed {len(result.processed)}/{ITEMS} jobs exactly once, "
            f"at most {result.peak_buffered} buffered (limit {BUFFER}), "
            f"{result.peak_processing} processing at once (limit {SLOTS})"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
