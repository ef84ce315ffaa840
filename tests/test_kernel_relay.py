"""The kernel relay's stream framing (issue 33): messages survive any chunking, and what is over the limits is
read past and dropped without costing more than one message of memory."""

from __future__ import annotations

from orchestrator.sandbox.kernel_relay import MAX_FRAMES, Decoder, encode


def _feed_bytewise(decoder: Decoder, data: bytes) -> list[tuple[int, list[bytes]]]:
    out = []
    for i in range(len(data)):
        out += decoder.feed(data[i:i + 1])
    return out


def test_messages_come_back_whole_however_the_stream_is_cut() -> None:
    messages = [(0, [b"id", b"<IDS|MSG>", b"sig", b"{}", b"", b"{}", b'{"code": "1"}']), (4, [b"ping"]), (1, [b""])]
    stream = b"".join(encode(channel, frames) for channel, frames in messages)
    assert Decoder(1 << 20).feed(stream) == messages
    assert _feed_bytewise(Decoder(1 << 20), stream) == messages


def test_an_oversized_message_is_dropped_and_the_next_one_still_arrives() -> None:
    decoder = Decoder(100)
    stream = encode(1, [b"x" * 60, b"y" * 60]) + encode(0, [b"small"])
    assert _feed_bytewise(decoder, stream) == [(0, [b"small"])]
    assert decoder.dropped == 1


def test_too_many_frames_or_an_unknown_channel_is_dropped() -> None:
    decoder = Decoder(1 << 20)
    stream = encode(0, [b"f"] * (MAX_FRAMES + 1)) + encode(9, [b"what"]) + encode(2, [b"ok"])
    assert decoder.feed(stream) == [(2, [b"ok"])]
    assert decoder.dropped == 2
