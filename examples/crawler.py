"""A bounded-concurrency crawler, written once, run under asyncio, uvloop and trio.

The crawler fetches ``PAGES`` fake URLs, with at most ``LIMIT`` requests in
flight at once, enforced by a single :class:`loopsync.Semaphore`.  There is no
network: a fetch sleeps for a few milliseconds, the same for a given URL on
every run.

The crawler is plain ``async def`` code that never names an async library.
What does differ between libraries, how to sleep and how to start a batch of
tasks and wait for them, comes in as a :class:`~_runtimes.Runtime` of two
functions (``sleep`` and ``run_all``), defined once per library in
``_runtimes.py``: ``asyncio.sleep`` and ``asyncio.gather`` for asyncio and
uvloop, ``trio.sleep`` and a nursery for trio.  The semaphore needs no such
help: loopsync finds out which library is running by itself.

For each library the example prints how many pages were fetched, the peak
number of fetches in flight (checked to be exactly ``LIMIT``) and the elapsed
time, next to the sum of all simulated latencies for comparison.

Run it with::

    python examples/crawler.py [asyncio|uvloop|trio|all]    # default: all

uvloop or trio is skipped, with a note, if it is not installed.
"""

from __future__ import annotations

import sys
import time
import zlib
from dataclasses import dataclass
from functools import partial

from _runtimes import Runtime, available, parse_libraries, run

import loopsync

PAGES = 60
LIMIT = 5
URLS = [f"https://example.com/page/{n}" for n in range(PAGES)]


def latency(url: str) -> float:
    """The simulated response time of *url*: 1 to 5 ms, fixed per URL."""
    return (1 + zlib.crc32(url.encode()) % 5) / 1000


async def fake_get(url: str, runtime: Runtime) -> str:
    """Pretend to download *url*."""
    await runtime.sleep(latency(url))
    return f"<html><title>{url}</title></html>"


@dataclass(frozen=True)
class CrawlResult:
    pages: dict[str, str]
    peak_in_flight: int
    elapsed: float


async def crawl(urls: list[str], limit: int, runtime: Runtime) -> CrawlResult:
    """Fetch every URL in *urls*, at most *limit* at a time."""
    semaphore = loopsync.Semaphore(limit)
    pages: dict[str, str] = {}
    in_flight = peak = 0

    async def fetch(url: str) -> None:
        nonlocal in_flight, peak
        async with semaphore:
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                pages[url] = await fake_get(url, runtime)
            finally:
                in_flight -= 1

    start = time.perf_counter()
    await runtime.run_all(partial(fetch, url) for url in urls)
    elapsed = time.perf_counter() - start
    assert semaphore.value == limit, "a permit was lost"
    assert semaphore.statistics().tasks_waiting == 0
    return CrawlResult(pages, peak, elapsed)


def main(argv: list[str]) -> None:
    serial_time = sum(map(latency, URLS))
    for library in parse_libraries(argv):
        if not available(library):
            print(f"{library:<8} skipped ({library} is not installed)")
            continue
        result = run(library, partial(crawl, URLS, LIMIT))
        assert sorted(result.pages) == sorted(URLS), "some pages are missing"
        assert result.peak_in_flight == LIMIT, f"peak {result.peak_in_flight} != {LIMIT}"
        print(
            f"{library:<8} fetched {len(result.pages)}/{len(URLS)} pages, "
            f"peak {result.peak_in_flight} in flight (limit {LIMIT}), "
            f"{result.elapsed * 1000:.0f} ms "
            f"(simulated latency adds up to {serial_time * 1000:.0f} ms)"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
