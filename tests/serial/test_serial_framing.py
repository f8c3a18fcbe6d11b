"""Framing: COBS, frame header, CRC-32 and payload codec, without a port."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formats.protocol import (
    MAX_ENCODED_FRAME,
    MAX_JSON,
    MAX_PAYLOAD,
    ErrorCode,
    Frame,
    FrameDecoder,
    FrameError,
    MessageError,
    cobs_decode,
    cobs_encode,
    decode_frame,
    decode_payload,
    encode_frame,
    encode_payload,
    frame_body,
    parse_frame_body,
)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\x00\x00",
        b"a" * 253,
        b"a" * 254,
        b"a" * 255,
        b"a" * 254 + b"\x00",
        b"a" * 508,
        b"\x00" * 300,
        bytes(range(256)) * 3,
    ],
)
def test_cobs_edge_cases_round_trip(data: bytes) -> None:
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert cobs_decode(encoded) == data


def test_cobs_known_vector() -> None:
    # Wikipedia's COBS examples.
    assert cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert cobs_encode(b"\x00") == b"\x01\x01"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_cobs_round_trip(data: bytes) -> None:
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert cobs_decode(encoded) == data


def test_frame_round_trip_carries_type_seq_payload() -> None:
    wire = encode_frame(0x21, 0xDEADBEEF, b"payload\x00with zero")
    assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
    frame = decode_frame(wire[1:-1])
    assert (frame.type, frame.seq, frame.payload) == (0x21, 0xDEADBEEF, b"payload\x00with zero")
    body = frame_body(0x21, 0xDEADBEEF, b"payload\x00with zero")
    assert frame.crc == zlib.crc32(body[:-4])


def test_every_single_bit_flip_is_detected() -> None:
    body = frame_body(0x04, 7, encode_payload({"x": 1}, b"abc"))
    for i in range(len(body)):
        for bit in range(8):
            damaged = bytearray(body)
            damaged[i] ^= 1 << bit
            with pytest.raises(FrameError):
                parse_frame_body(bytes(damaged))


def test_length_field_is_bounded_and_must_match() -> None:
    body = bytearray(frame_body(0x04, 7, b"abcd"))
    struct.pack_into(">I", body, 7, MAX_PAYLOAD + 1)
    with pytest.raises(FrameError) as exc:
        parse_frame_body(bytes(body))
    assert exc.value.code == ErrorCode.FRAME_TOO_LARGE
    struct.pack_into(">I", body, 7, 3)
    with pytest.raises(FrameError, match="length field"):
        parse_frame_body(bytes(body))
    with pytest.raises(ValueError):
        frame_body(0x04, 1, b"x" * (MAX_PAYLOAD + 1))


def test_wrong_version_and_short_frames_are_rejected() -> None:
    body = bytearray(frame_body(0x04, 7, b""))
    body[0] = 1  # version 1 frames carry no session tag: refused
    with pytest.raises(FrameError, match="version"):
        parse_frame_body(bytes(body))
    with pytest.raises(FrameError, match="too short"):
        parse_frame_body(b"\x01\x04")


@settings(max_examples=100, deadline=None)
@given(
    frames=st.lists(
        st.tuples(st.integers(0, 255), st.integers(0, 2**32 - 1), st.binary(max_size=600)),
        min_size=1,
        max_size=8,
    ),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
)
def test_decoder_reassembles_frames_split_anywhere(
    frames: list[tuple[int, int, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(t, s, p) for t, s, p in frames)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    got: list[Frame | FrameError] = []
    for a, b in zip(points, points[1:], strict=False):
        got.extend(decoder.feed(stream[a:b]))
    assert [(f.type, f.seq, f.payload) for f in got if isinstance(f, Frame)] == frames
    assert not [f for f in got if isinstance(f, FrameError)]


def test_decoder_bounds_memory_on_a_stream_without_delimiters() -> None:
    decoder = FrameDecoder()
    errors: list[Frame | FrameError] = []
    for _ in range(5):
        errors.extend(decoder.feed(b"\x41" * (MAX_ENCODED_FRAME // 2)))
    assert len(decoder._buf) <= MAX_ENCODED_FRAME
    assert [e.code for e in errors if isinstance(e, FrameError)] == [ErrorCode.FRAME_TOO_LARGE]
    # The next delimiter ends the discarded frame; a following frame decodes normally.
    after = decoder.feed(b"\x00" + encode_frame(1, 2, b"ok"))
    assert [(f.type, f.seq, f.payload) for f in after if isinstance(f, Frame)] == [(1, 2, b"ok")]


def test_payload_round_trip_and_bounds() -> None:
    payload = encode_payload({"path": "recordings/x", "offset": 3}, b"\x00\x01blob")
    msg = decode_payload(payload)
    assert msg.fields.text("path", 64) == "recordings/x"
    assert msg.fields.integer("offset", 0, 10) == 3
    assert msg.blob == b"\x00\x01blob"
    with pytest.raises(MessageError):
        encode_payload({"x": "y" * MAX_JSON})
    with pytest.raises(MessageError):
        encode_payload({}, b"z" * MAX_PAYLOAD)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00",
        b"\x00\x10{}",  # JSON length beyond the payload
        struct.pack(">H", MAX_JSON + 1) + b"{}" * (MAX_JSON // 2 + 1),
        b"\x00\x02[]",  # not an object
        b"\x00\x03{x}",
        b'\x00\x0b{"a": NaN}',
        b"\x00\x02\xff\xfe",
        struct.pack(">H", 8000) + b"[" * 8000,  # deep nesting
    ],
)
def test_malformed_payloads_raise_message_error(payload: bytes) -> None:
    with pytest.raises(MessageError):
        decode_payload(payload)


def test_field_accessors_check_type_range_and_length() -> None:
    f = decode_payload(encode_payload({"n": True, "s": "abc", "h": "zz", "big": 10**6})).fields
    with pytest.raises(MessageError, match="integer"):
        f.integer("n", 0, 1)  # a bool is not an integer
    with pytest.raises(MessageError, match="longer"):
        f.text("s", 2)
    with pytest.raises(MessageError):
        f.hexbytes("h", 1)
    with pytest.raises(MessageError, match="outside"):
        f.integer("big", 0, 10)
    with pytest.raises(MessageError, match="missing"):
        f.text("absent", 10)
