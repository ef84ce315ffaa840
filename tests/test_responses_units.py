"""The pure parts of the Responses face: markers stripped from streamed text exactly as from the whole text, and a
context of items turned into chat-completions messages a chat server accepts."""

from __future__ import annotations

import random

import pytest

from orchestrator.errors import InvalidRequest
from orchestrator.responses.items import check_outputs, normalize, to_messages
from orchestrator.responses.markers import MarkerFilter, strip

TEXTS = [
    "Overtime is paid 1.5x【0:1†handbook.pdf】. Leave is 20 days【0:2†handbook.pdf】.",
    "Brackets that are not markers stay: 【note】, 【12 and 【3:x†a】 and a lone 【",
    "A marker at the very end【1†a.txt】",
    "【0:0†a】【0:1†b】 back to back, and one never closed【4:5†c",
    "Nested 【1†a【2:3†b】 and 】 stray closers 】",
]


@pytest.mark.parametrize("text", TEXTS)
def test_streamed_text_joins_to_the_text_without_markers(text: str) -> None:
    chooser = random.Random(7)
    for _ in range(50):
        cuts = sorted(chooser.sample(range(1, len(text)), k=chooser.randint(0, min(8, len(text) - 1))))
        pieces = [text[start:end] for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        marker_filter = MarkerFilter()
        streamed = "".join(marker_filter.feed(piece) for piece in pieces) + marker_filter.flush()
        assert streamed == strip(text), pieces


def test_text_outside_markers_streams_without_waiting() -> None:
    marker_filter = MarkerFilter()
    assert marker_filter.feed("Hello 【not a marker") == "Hello 【not a marker"
    assert marker_filter.feed(" and 【1:2") == " and "
    assert marker_filter.feed("†a.txt】 done") == " done"


def test_a_turns_calls_share_one_assistant_message_with_their_outputs_after_it() -> None:
    items = normalize([
        {"role": "user", "content": "Rate and plot?"},
        {"type": "code_interpreter_call", "id": "ci_1", "code": "print(1)", "container_id": "cntr_1",
         "outputs": [{"type": "logs", "logs": "1\n"}], "status": "completed"},
        {"type": "function_call", "call_id": "call_9", "name": "get_rate", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_9", "output": "1.09"},
    ])
    messages = to_messages(items, lambda file_id: f"data:{file_id}")
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["ci_1", "call_9"]
    assert messages[2] == {"role": "tool", "tool_call_id": "ci_1", "content": "1\n"}
    assert messages[3] == {"role": "tool", "tool_call_id": "call_9", "content": "1.09"}


def test_an_output_without_its_call_is_refused() -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_outputs(normalize([{"type": "function_call_output", "call_id": "call_x", "output": "1"}]))
    assert refused.value.param == "input"


def test_input_items_get_ids_and_types() -> None:
    [message, output] = normalize([{"role": "user", "content": "hi"},
                                   {"type": "function_call_output", "call_id": "c", "output": "o"}])
    assert message["type"] == "message" and message["id"].startswith("msg_")
    assert message["content"] == [{"type": "input_text", "text": "hi"}]
    assert output["id"].startswith("fco_")
    with pytest.raises(InvalidRequest):
        normalize([{"role": "wizard", "content": "hi"}])


def test_an_unclosed_marker_is_let_go_and_costs_linear_time() -> None:
    marker_filter = MarkerFilter()
    streamed = [marker_filter.feed(piece) for piece in ["【1:2†", *["abcd"] * 25_000]]
    assert "".join(streamed) + marker_filter.flush() == "【1:2†" + "abcd" * 25_000
    assert sum(1 for piece in streamed if piece) > 24_000  # streamed as it came, not held to the end


def test_markers_are_noted_where_they_stood() -> None:
    marker_filter = MarkerFilter()
    text = marker_filter.feed("Paid 1.5x【0:1†hand") + marker_filter.feed("book.pdf】. Leave【2†a】.")
    assert text + marker_filter.flush() == "Paid 1.5x. Leave."
    assert [(m.text, m.index) for m in marker_filter.markers] == [("【0:1†handbook.pdf】", 9), ("【2†a】", 16)]
