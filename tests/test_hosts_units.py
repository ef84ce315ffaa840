"""Placement among sandbox hosts (issue 33), with hosts that only say their name and memory."""

from __future__ import annotations

from typing import Any, cast

import pytest

from orchestrator.sandbox.errors import EngineUnavailable
from orchestrator.sandbox.host import SandboxHost
from orchestrator.sandbox.hosts import Hosts

GIB = 1 << 30


class Sized:
    def __init__(self, name: str, memory: int | None) -> None:
        self.name, self._memory = name, memory
        self.watched = name.startswith("tcp://")
        self.asked = 0

    def memory_bytes(self) -> int:
        self.asked += 1
        if self._memory is None:
            raise EngineUnavailable(f"{self.name} is not answering")
        return self._memory


def hosts(*members: Sized) -> Hosts:
    return Hosts([cast(SandboxHost, member) for member in members])


def measured(*members: Sized) -> Hosts:
    made = hosts(*members)
    for host in made.unmeasured():
        made.measure(host)
    return made


def test_a_new_sandbox_goes_where_the_most_memory_is_left() -> None:
    small, big = Sized("tcp://small", 4 * GIB), Sized("tcp://big", 8 * GIB)
    placed = measured(small, big)
    order = [placed.place(f"s{n}", GIB).name for n in range(6)]
    # big has 8, small 4: big takes sandboxes until both have as much left, then they alternate (a tie goes to the
    # host listed first).
    assert order == ["tcp://big", "tcp://big", "tcp://big", "tcp://big", "tcp://small", "tcp://big"]
    assert sorted(placed.on(cast(Any, big))) == ["s0", "s1", "s2", "s3", "s5"]
    placed.forget("s0")
    assert placed.place("s6", GIB).name == "tcp://big"


def test_a_down_host_gets_nothing_and_a_host_that_never_said_its_memory_gets_nothing() -> None:
    local, remote, mute = Sized("local", 2 * GIB), Sized("tcp://remote", 16 * GIB), Sized("tcp://mute", None)
    placed = measured(local, remote, mute)
    assert [host.name for host in placed.unmeasured()] == ["tcp://mute"]
    assert placed.mark_down(cast(Any, remote)) and not placed.mark_down(cast(Any, remote))
    assert placed.place("a", GIB).name == "local"
    assert placed.mark_up(cast(Any, remote))
    assert placed.place("b", GIB).name == "tcp://remote"
    assert remote.asked == 1  # asked once, not at every placement


def test_no_host_up_is_a_clear_error_and_the_local_host_is_never_watched() -> None:
    local, remote = Sized("local", GIB), Sized("tcp://remote", GIB)
    placed = measured(local, remote)
    assert not placed.is_watched(cast(Any, local)) and placed.is_watched(cast(Any, remote))
    placed.mark_down(cast(Any, local))
    placed.mark_down(cast(Any, remote))
    with pytest.raises(EngineUnavailable, match="No sandbox host is answering"):
        placed.place("x", GIB)


def test_a_host_left_out_is_no_longer_a_host_but_the_last_one_stays() -> None:
    first, second = Sized("tcp://first", GIB), Sized("tcp://second", GIB)
    placed = measured(first, second)
    placed.leave_out(cast(Any, first))
    assert [host.name for host in placed.all()] == ["tcp://second"]
    placed.leave_out(cast(Any, second))
    assert [host.name for host in placed.all()] == ["tcp://second"]
