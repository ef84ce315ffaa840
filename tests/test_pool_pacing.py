"""The warm pool refills a few starts at a time (issue 34): started all at once on a small machine, the starts share
the cores and every pooled sandbox comes ready late; paced, the first one is ready after one start's time."""

from __future__ import annotations

import asyncio

from orchestrator.sandbox.pool import REFILL_AT_ONCE, WarmPool


class CountingStarts:
    """Pool starts that take `seconds` each and note how many ran at once (a fake passed in by constructor)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.running = 0
        self.most_at_once = 0
        self.started = 0
        self.discarded: list[int] = []

    async def start(self) -> int:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.running -= 1
        self.started += 1
        return self.started

    async def discard(self, item: int) -> None:
        self.discarded.append(item)


async def wait_until_ready(pool: WarmPool[int], count: int) -> None:
    async with asyncio.timeout(30):
        while pool.ready < count:
            await asyncio.sleep(0.01)


async def test_a_refill_runs_a_few_starts_at_a_time_and_fills_the_pool() -> None:
    starts = CountingStarts(0.05)
    pool = WarmPool(8, starts.start, starts.discard)
    pool.fill()
    await wait_until_ready(pool, 8)
    assert starts.most_at_once == REFILL_AT_ONCE == 2
    assert (starts.started, pool.ready, starts.discarded) == (8, 8, [])
    await pool.close()
    assert sorted(starts.discarded) == list(range(1, 9))


async def test_the_first_refilled_sandbox_is_ready_before_the_last_starts() -> None:
    starts = CountingStarts(0.2)
    pool = WarmPool(6, starts.start, starts.discard)
    pool.fill()
    await wait_until_ready(pool, 1)
    assert pool.ready < 6 and starts.started < 6
    await pool.close()

