"""The cap on live sandboxes: bounded backpressure when every sandbox is busy, eviction of the idle one otherwise,
and files that survive an eviction. A real server with a cap of 2 and no pool."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai import OpenAI

from orchestrator.localserver import Server
from orchestrator.sandbox.capacity import Slots
from orchestrator.sandbox.errors import CapacityExhausted
from tests.conftest import logs, metric_value, run

CAP = 2
WAIT_S = 3


@pytest.fixture(scope="module")
def capped(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("capped"), TOOLSHED_MAX_SANDBOXES=str(CAP),
                 TOOLSHED_CAPACITY_WAIT=str(WAIT_S), TOOLSHED_POOL_SIZE="0", TOOLSHED_SANDBOX_DISK_QUOTA="16m")
    srv.start()
    yield srv
    srv.stop()
    srv.remove_containers()


def live_containers(server: Server) -> int:
    out = subprocess.run(["docker", "ps", "-q", "--filter", f"label=toolshed.namespace={server.namespace}"],
                         capture_output=True, text=True, check=True).stdout
    return len(out.split())


@pytest.mark.docker
def test_at_the_cap_busy_sandboxes_make_callers_wait_then_idle_ones_are_evicted(capped: Server) -> None:
    client = OpenAI(base_url=f"{capped.base_url}/v1", api_key="unused", max_retries=0, timeout=60)
    a = client.containers.create(name="a").id
    b = client.containers.create(name="b").id
    assert run(client, a, "open('/mnt/data/kept.txt', 'w').write('still here'); x = 1")["status"] == "completed"

    # Both sandboxes busy: a third container waits the bounded time, then gets a clear, retryable error.
    busy = [threading.Thread(target=run, args=(client, cid, "import time; time.sleep(5)")) for cid in (a, b)]
    for thread in busy:
        thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as refused:
        client.containers.create(name="c")
    waited = time.monotonic() - started
    assert refused.value.status_code == 503
    assert refused.value.response.headers["retry-after"] == "5"
    error = refused.value.response.json()["error"]
    assert error["code"] == "sandbox_capacity" and "TOOLSHED_MAX_SANDBOXES" in error["message"]
    assert waited >= WAIT_S - 0.5, "the request must have waited for a slot before giving up"

    # A caller that arrives while both are busy gets in as soon as one finishes: the waiting is backpressure.
    started = time.monotonic()
    c = client.containers.create(name="c").id
    assert time.monotonic() - started >= 1.0, "c must have waited for a busy sandbox to finish"
    for thread in busy:
        thread.join()
    assert live_containers(capped) == CAP

    # The evicted sandbox (a or b, whichever was idle longest) comes back with its files and says so.
    statuses = {cid: client.containers.retrieve(cid).status for cid in (a, b)}
    [evicted] = [cid for cid, status in statuses.items() if status == "expired"]
    again = run(client, evicted, "print(open('/mnt/data/kept.txt').read() if __import__('os').path.exists("
                                 "'/mnt/data/kept.txt') else 'no file'); print('x' in globals())")
    assert again["status"] == "completed"
    assert "reclaimed to make room" in logs(again)
    assert ("still here" if evicted == a else "no file") in logs(again)
    assert "False" in logs(again)
    # Coming back took a slot from the sandbox idle longest; the cap held throughout.
    assert live_containers(capped) == CAP
    assert run(client, c, "1 + 1")["status"] == "completed"
    assert live_containers(capped) == CAP

    text = httpx.get(f"{capped.base_url}/metrics").text
    assert metric_value(text, 'toolshed_sandboxes_reaped_total{reason="capacity"}') >= 2
    assert metric_value(text, "toolshed_capacity_wait_seconds_count") >= 3
    assert metric_value(text, 'toolshed_sandbox_slots{kind="used"}') == CAP
    assert metric_value(text, 'toolshed_sandbox_slots{kind="limit"}') == CAP


# ---- the Slots logic on its own (no Docker) ------------------------------------------------------------------


async def test_slots_wait_in_order_and_time_out_with_a_clear_error() -> None:
    slots = Slots(limit=1, wait_s=0.3)
    assert await slots.take("a", make_room=_nothing_to_free) == 0.0
    order: list[str] = []

    async def take(sandbox_id: str) -> None:
        await slots.take(sandbox_id, make_room=_nothing_to_free)
        order.append(sandbox_id)

    first, second = asyncio.create_task(take("b")), asyncio.create_task(take("c"))
    await asyncio.sleep(0.05)
    slots.release("a")
    await first
    assert order == ["b"] and not second.done()  # c is still queued behind b's slot
    with pytest.raises(CapacityExhausted, match="TOOLSHED_MAX_SANDBOXES"):
        await second
    assert slots.used == 1 and slots.holds("b")


async def test_slots_make_room_frees_a_slot_and_the_pool_never_takes_the_last_one() -> None:
    slots = Slots(limit=2, wait_s=1)
    assert slots.try_take("pooled", spare=1)
    assert not slots.try_take("pooled-2", spare=1)  # would leave no free slot
    await slots.take("user", make_room=_nothing_to_free)

    async def evict_pooled() -> bool:
        slots.release("pooled")
        return True

    waited = await slots.take("another", make_room=evict_pooled)
    assert waited < 1 and slots.holds("another") and not slots.holds("pooled")


async def _nothing_to_free() -> bool:
    return False
