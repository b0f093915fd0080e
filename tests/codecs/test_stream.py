"""Fuzzing of both stream parsers: random bytes, and valid frames hidden in noise."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import cjt188, dlt645
from connectors.codec_errors import FrameError
from connectors.codec_stream import Corrupt

DLT_FRAMES = [
    dlt645.encode_read("000000000161", "00010000"),
    dlt645.encode_read_response("000000000161", "02010100", Decimal("230.1"), preamble=False),
    dlt645.encode_relay("111111111111", "trip"),
    dlt645.encode_relay_error("111111111111", 0x04, preamble=False),
    bytes.fromhex("68 04 60 07 00 15 00 68 93 06 37 93 3A 33 48 33 9B 16".replace(" ", "")),
]
CJT_FRAMES = [
    cjt188.encode_read(0x10, "78330011223344"),
    cjt188.encode_valve(0x30, "00000000000003", "close", ser=1, preamble=False),
    cjt188.encode_read_response(0x10, "78330011223344", Decimal("12.34")),
    cjt188.encode_valve_response(0x10, "78330011223344", cjt188.Status(1, 0), preamble=False),
]


def _run(parser: dlt645.StreamParser | cjt188.StreamParser, data: bytes, chunks: list[int]):
    out: list[object] = []
    pos = 0
    for size in chunks:
        out += parser.feed(data[pos : pos + size])
        pos += size
    out += parser.feed(data[pos:])
    out += parser.flush()
    return out


def _strip(frame: bytes) -> bytes:
    return frame.lstrip(b"\xfe")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 64), max_size=20))
def test_random_bytes_never_raise(data: bytes, chunks: list[int]) -> None:
    for parser in (dlt645.StreamParser(), cjt188.StreamParser()):
        try:
            out = _run(parser, data, chunks)
        except FrameError:  # the codecs' own error is the only one allowed through
            continue
        for item in out:
            assert isinstance(item, Corrupt | dlt645.Frame | cjt188.Frame)
        assert parser.pending == b""


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.binary(max_size=80), st.integers(0, len(DLT_FRAMES) - 1)), max_size=6),
    st.binary(max_size=80),
    st.lists(st.integers(1, 40), max_size=30),
)
def test_dlt645_frames_in_noise_are_all_found(
    parts: list[tuple[bytes, int]], tail: bytes, chunks: list[int]
) -> None:
    _check_embedded(dlt645.StreamParser(), DLT_FRAMES, parts, tail, chunks)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.binary(max_size=80), st.integers(0, len(CJT_FRAMES) - 1)), max_size=6),
    st.binary(max_size=80),
    st.lists(st.integers(1, 40), max_size=30),
)
def test_cjt188_frames_in_noise_are_all_found(
    parts: list[tuple[bytes, int]], tail: bytes, chunks: list[int]
) -> None:
    _check_embedded(cjt188.StreamParser(), CJT_FRAMES, parts, tail, chunks)


def _check_embedded(
    parser: dlt645.StreamParser | cjt188.StreamParser,
    frames: list[bytes],
    parts: list[tuple[bytes, int]],
    tail: bytes,
    chunks: list[int],
) -> None:
    data = b"".join(noise + frames[i] for noise, i in parts) + tail
    out = _run(parser, data, chunks)
    found = [item.raw for item in out if not isinstance(item, Corrupt)]
    wanted = [_strip(frames[i]) for _, i in parts]
    it = iter(found)
    assert all(any(f == w for f in it) for w in wanted), (wanted, found)


def test_garbage_and_corrupt_frames_are_reported_with_their_bytes() -> None:
    good = dlt645.encode_read("000000000161", "00010000", preamble=False)
    damaged = bytearray(good)
    damaged[-2] ^= 0xFF
    stream = b"\x01\x02\x03" + bytes(damaged) + b"\xfe\xfe" + good
    parser = dlt645.StreamParser()
    out = parser.feed(stream) + parser.flush()
    assert isinstance(out[-1], dlt645.Frame) and out[-1].raw == good
    corrupt = [c for c in out if isinstance(c, Corrupt)]
    assert b"".join(c.raw for c in corrupt) == b"\x01\x02\x03" + bytes(damaged)
    assert corrupt[0].reason.startswith("noise")


def test_partial_frames_wait_for_more_bytes() -> None:
    good = CJT_FRAMES[0]
    parser = cjt188.StreamParser()
    assert parser.feed(good[:9]) == []
    (frame,) = parser.feed(good[9:])
    assert isinstance(frame, cjt188.Frame) and frame.raw == _strip(good)


def test_valid_frame_with_unknown_content_is_reported_whole() -> None:
    body = bytes.fromhex("6861010000000068910844444444333333 33".replace(" ", ""))
    frame = body + bytes([sum(body) & 0xFF, 0x16])
    parser = dlt645.StreamParser()
    (item,) = parser.feed(frame)
    assert isinstance(item, Corrupt) and item.raw == frame and "unknown DI" in item.reason


def test_truncated_frame_at_flush_is_corrupt() -> None:
    parser = dlt645.StreamParser()
    assert parser.feed(DLT_FRAMES[1][:-3]) == []
    (item,) = parser.flush()
    assert isinstance(item, Corrupt) and "truncated" in item.reason
