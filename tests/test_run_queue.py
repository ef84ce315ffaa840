"""The run queue in front of the kernels: arrival order, and a quantum after which a long cell lets others by."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.sandbox.admission import RunQueue


async def test_cells_are_admitted_in_arrival_order_when_slots_are_short() -> None:
    queue = RunQueue(slots=1, quantum=10.0)
    order: list[int] = []

    async def cell(number: int) -> None:
        async with queue.admitted():
            order.append(number)
            await asyncio.sleep(0.01)

    tasks = []
    for number in range(6):
        tasks.append(asyncio.create_task(cell(number)))
        await asyncio.sleep(0)  # each arrives before the next
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4, 5]


async def test_a_cell_past_its_quantum_gives_its_slot_to_the_next() -> None:
    queue = RunQueue(slots=1, quantum=0.05)
    long_done = asyncio.Event()
    events: list[str] = []

    async def long_cell() -> None:
        async with queue.admitted():
            await long_done.wait()
            events.append("long ended")

    async def short_cell() -> None:
        async with queue.admitted():
            events.append("short ran")

    long = asyncio.create_task(long_cell())
    await asyncio.sleep(0)
    await asyncio.wait_for(short_cell(), 5)  # admitted once the long cell's quantum is over, not when it ends
    long_done.set()
    await long
    assert events == ["short ran", "long ended"]


async def test_a_slot_is_given_back_once_whether_the_cell_ends_before_or_after_its_quantum() -> None:
    queue = RunQueue(slots=1, quantum=0.05)
    async with queue.admitted():
        pass  # ended before the quantum: the timer that would give the slot up again is cancelled
    async with queue.admitted():
        await asyncio.sleep(0.1)  # ended after it: the slot was given up once, at the quantum
    await asyncio.sleep(0.1)
    entered = 0

    async def holder() -> None:
        nonlocal entered
        async with queue.admitted():
            entered += 1
            await asyncio.sleep(10)

    holders = [asyncio.create_task(holder()) for _ in range(2)]
    await asyncio.sleep(0.02)  # within the first holder's quantum: a slot given back twice would let both in
    assert entered == 1
    for task in holders:
        task.cancel()
    await asyncio.gather(*holders, return_exceptions=True)


def test_a_queue_needs_a_slot_and_a_quantum() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        RunQueue(slots=0, quantum=1.0)
    with pytest.raises(ValueError, match="at least one slot"):
        RunQueue(slots=1, quantum=0)
