"""KernelSession against a real local ipykernel over ipc sockets: the protocol part, with no Docker."""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import pytest_asyncio
from jupyter_client.manager import AsyncKernelManager

from orchestrator.sandbox.kernel import KernelConnector, KernelNotReady, KernelSession, new_connection_info
from orchestrator.sandbox.models import ImageOutput, TextOutput

pytestmark = pytest.mark.kernel


@asynccontextmanager
async def local_kernel(tmp_path: Path, connector: KernelConnector) -> AsyncIterator[KernelSession]:
    # AF_UNIX paths are short, so the sockets go in a short directory rather than tmp_path.
    with tempfile.TemporaryDirectory(prefix="ks") as short:
        info = new_connection_info(f"{short}/k")
        kernel = AsyncKernelManager(transport="ipc", connection_file=str(tmp_path / "kernel.json"))
        kernel.load_connection_info(info)
        await kernel.start_kernel(extra_arguments=["--HistoryManager.enabled=False"])
        sess = connector.connect(kernel.get_connection_info())
        await sess.wait_ready(60)
        yield sess
        sess.close()
        await kernel.shutdown_kernel(now=True)
        connector.close()


@pytest_asyncio.fixture
async def session(tmp_path: Path) -> AsyncIterator[KernelSession]:
    async with local_kernel(tmp_path, KernelConnector()) as sess:
        yield sess


async def _run(session: KernelSession, code: str, timeout: float = 30, **kw: object):  # noqa: ANN202
    return await session.execute(code, timeout, interrupt_grace=2, max_text_bytes=kw.pop("max_text_bytes", 1 << 20),
                                 **kw)


async def test_outputs_arrive_in_order_with_streams_and_result(session: KernelSession) -> None:
    result = await _run(session, "import sys\nprint('a')\nprint('b', file=sys.stderr)\n6 * 7")
    assert result.outcome == "ok"
    assert result.outputs == (TextOutput("stdout", "a\n"), TextOutput("stderr", "b\n"), TextOutput("result", "42\n"))


async def test_user_error_is_reported_without_ansi(session: KernelSession) -> None:
    result = await _run(session, "raise ValueError('bad')")
    assert result.outcome == "error"
    assert (result.error.name, result.error.value) == ("ValueError", "bad")
    assert all("\x1b[" not in line for line in result.error.traceback)


async def test_display_data_images_are_decoded(session: KernelSession) -> None:
    code = ("from IPython.display import display, Image\nimport base64\n"
            "png = base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9"
            "awAAAABJRU5ErkJggg==')\ndisplay(Image(data=png, format='png'))")
    result = await _run(session, code)
    assert len(result.outputs) == 1 and isinstance(result.outputs[0], ImageOutput)
    assert result.outputs[0].data.startswith(b"\x89PNG")


async def test_text_beyond_the_cap_is_dropped_with_a_marker(session: KernelSession) -> None:
    result = await _run(session, "for i in range(1000):\n    print('y' * 99)", max_text_bytes=1000)
    kept = "".join(o.text for o in result.outputs if o.kind == "stdout")
    assert len(kept) == 1000
    assert result.truncated_bytes == 100_000 - 1000
    assert result.outputs[-1] == TextOutput("notice", "\n[output truncated: 99000 more bytes were not kept]\n")


async def test_timeout_interrupts_and_keeps_partial_output(session: KernelSession) -> None:
    started = time.monotonic()
    result = await _run(session, "import time\nprint('partial', flush=True)\ntime.sleep(30)", timeout=1)
    assert time.monotonic() - started < 3
    assert result.outcome == "timeout"
    assert result.outputs[0] == TextOutput("stdout", "partial\n")
    assert (await _run(session, "print('after')")).outputs == (TextOutput("stdout", "after\n"),)


async def test_dead_kernel_is_noticed_through_the_probe(session: KernelSession) -> None:
    async def dead() -> bool:
        return False

    started = time.monotonic()
    result = await _run(session, "import time\ntime.sleep(30)", timeout=20, is_alive=dead)
    assert result.outcome == "died"
    assert time.monotonic() - started < 2


async def test_outputs_are_streamed_to_the_hook_as_they_happen(session: KernelSession) -> None:
    seen: list[tuple[float, str]] = []

    async def hook(output: object) -> None:
        seen.append((time.monotonic(), output.text))  # type: ignore[attr-defined]

    await _run(session, "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.3)",
               on_output=hook)
    assert [text for _, text in seen] == ["0\n", "1\n", "2\n"]
    assert seen[-1][0] - seen[0][0] > 0.4


def test_connection_info_rotates_key_and_sockets() -> None:
    first, second = new_connection_info("/x/k"), new_connection_info("/x/k")
    assert first["transport"] == "ipc" and first["key"] != second["key"]
    assert first["shell_port"] != second["shell_port"]


async def test_unsigned_and_malformed_messages_are_dropped_not_raised(session: KernelSession) -> None:
    result = await _run(session, (
        "k = get_ipython().kernel\n"
        "k.iopub_socket.send_multipart([b'not', b'a', b'jupyter', b'message'])\n"
        "k.session.send(k.iopub_socket, 'display_data', {'data': {'image/png': 123}}, parent=k.get_parent())\n"
        "k.session.send(k.iopub_socket, 'stream', {'name': 'stdout', 'text': ['not', 'text']},"
        " parent=k.get_parent())\n"
        "print('survived')"))
    assert result.outcome == "ok"
    assert TextOutput("stdout", "survived\n") in result.outputs


async def test_forged_and_replayed_messages_are_dropped(session: KernelSession) -> None:
    result = await _run(session, (
        "from jupyter_client.session import Session\n"
        "k = get_ipython().kernel\n"
        "forger = Session(key=b'not-the-key', signature_scheme='hmac-sha256')\n"
        "forger.send(k.iopub_socket, 'stream', {'name': 'stdout', 'text': 'forged\\n'}, parent=k.get_parent())\n"
        "frames = k.session.serialize(k.session.msg('stream', {'name': 'stdout', 'text': 'once\\n'},"
        " parent=k.get_parent()))\n"
        "k.iopub_socket.send_multipart(frames)\n"
        "k.iopub_socket.send_multipart(frames)\n"
        "print('end')"))
    assert result.outcome == "ok"
    assert [o for o in result.outputs if isinstance(o, TextOutput)] == [TextOutput("stdout", "once\n"),
                                                                       TextOutput("stdout", "end\n")]


async def test_an_oversized_message_costs_the_cell_its_output_not_a_hang(tmp_path: Path) -> None:
    """A frame over the cap drops the iopub connection (ZMQ reconnects), so the kernel's "idle" may be lost; the
    execute reply on the shell channel then ends the cell instead of the timeout."""
    async with local_kernel(tmp_path, KernelConnector(max_message_bytes=1 << 20)) as session:
        started = time.monotonic()
        result = await _run(session, "print('x' * (2 << 20))", timeout=20)
        assert result.outcome == "ok"
        assert time.monotonic() - started < 10
        assert (await _run(session, "print('next')")).outputs == (TextOutput("stdout", "next\n"),)


async def test_waiting_for_a_kernel_ends_when_its_probe_says_it_is_gone(tmp_path: Path) -> None:
    """A kernel whose container stopped mid-start is not waited on for the whole start timeout (a pooled start cut
    by an engine restart sat as "starting" for a minute, its exited container kept from the orphan sweep)."""
    connector = KernelConnector()
    with tempfile.TemporaryDirectory(prefix="ks") as short:
        nobody = connector.connect(new_connection_info(f"{short}/k"))
        probes = []

        async def alive() -> bool:
            probes.append(time.monotonic())
            return len(probes) < 3

        started = time.monotonic()
        with pytest.raises(KernelNotReady, match="stopped while it started"):
            await nobody.wait_ready(60, alive)
        assert len(probes) == 3 and time.monotonic() - started < 30
        nobody.close()
    connector.close()
