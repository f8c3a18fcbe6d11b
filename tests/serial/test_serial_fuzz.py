"""Malformed, oversized and out-of-order input gets an error reply; the camera keeps serving.

Fuzzed with hypothesis at the byte/frame level and at the message level against a
server running on a real pty.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serial_support import FakeCamera, Keys, RawPort

from dock.link import CameraLink, LinkError
from firmware.control import CameraControlServer
from formats.protocol import (
    MAX_ENCODED_FRAME,
    MAX_PAYLOAD,
    SEQUENCE_WINDOW,
    ErrorCode,
    Frame,
    FrameError,
    MessageType,
    cobs_encode,
    decode_payload,
    encode_frame,
    encode_payload,
    frame_body,
    response_type,
)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def raw(server: CameraControlServer) -> Iterator[RawPort]:
    assert server.path is not None
    port = RawPort(server.path)
    yield port
    port.close()


def _error_code(frame: Frame | FrameError) -> int:
    assert isinstance(frame, Frame), f"the camera sent an undecodable frame: {frame}"
    assert frame.type == MessageType.ERROR
    return decode_payload(frame.payload).fields.integer("code", 0, 255)


class _Probe:
    """Checks that the server still answers, with fresh sequence numbers."""

    def __init__(self, raw: RawPort) -> None:
        self.raw = raw
        self.seq = itertools.count(1_000_000)

    def alive(self) -> list[Frame | FrameError]:
        seq = next(self.seq)
        # The leading delimiter ends whatever half frame the fuzz input left behind.
        self.raw.send(b"\x00")
        self.raw.send_frame(MessageType.HELLO, seq, encode_payload({"client": "probe"}))
        got = self.raw.collect_until(seq)
        for item in got:  # the camera never sends garbage, only frames
            assert isinstance(item, Frame), item
            assert item.type in (MessageType.ERROR, response_type(MessageType.HELLO))
        last = got[-1]
        assert isinstance(last, Frame) and last.type == response_type(MessageType.HELLO)
        return got


def test_fuzz_random_bytes(raw: RawPort, server: CameraControlServer) -> None:
    probe = _Probe(raw)

    @FUZZ
    @given(st.binary(max_size=2000))
    def check(data: bytes) -> None:
        raw.send(data)
        probe.alive()
        assert server.running

    check()


def test_fuzz_mutated_valid_frames(raw: RawPort, server: CameraControlServer) -> None:
    probe = _Probe(raw)
    base = frame_body(MessageType.STATUS, 5, encode_payload({"a": 1}, b"blob"))

    @FUZZ
    @given(
        st.lists(
            st.tuples(st.integers(0, len(base) - 1), st.integers(1, 255)), min_size=1, max_size=4
        ),
        st.integers(0, len(base)),
    )
    def check(flips: list[tuple[int, int]], cut: int) -> None:
        body = bytearray(base)
        for pos, mask in flips:
            body[pos] ^= mask
        sent = bytes(body[:cut] if cut > 4 else body)
        raw.send(b"\x00" + cobs_encode(sent) + b"\x00")
        got = probe.alive()
        errors = [_error_code(f) for f in got[:-1]]
        if sent != base:
            # A damaged frame is refused as a frame (never executed under a damaged seq).
            assert errors and set(errors) <= {ErrorCode.BAD_FRAME, ErrorCode.FRAME_TOO_LARGE}

    check()


def test_fuzz_well_framed_messages(raw: RawPort, server: CameraControlServer) -> None:
    probe = _Probe(raw)
    seq = itertools.count(1)
    json_values = st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=40),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=10,
    )
    names = st.sampled_from(
        [
            "client",
            "path",
            "offset",
            "length",
            "utc",
            "size",
            "sha256",
            "dock_public",
            "dock_nonce",
            "after",
            "recording",
            "segment",
        ]
    )

    @FUZZ
    @given(
        st.integers(0, 255),
        st.one_of(
            st.binary(max_size=300),
            st.builds(
                lambda f, b: encode_payload(f, b),
                st.dictionaries(names, json_values, max_size=5),
                st.binary(max_size=100),
            ),
        ),
    )
    def check(msg_type: int, payload: bytes) -> None:
        probe.alive()  # a HELLO first: sequence numbers restart, no session
        n = next(seq) + 2_000_000
        raw.send_frame(msg_type, n, payload)
        if msg_type == MessageType.ERROR:
            # Errors are never answered; the next request still is.
            assert all(isinstance(f, Frame) and f.seq != n for f in probe.alive())
            return
        reply = raw.collect_until(n)[-1]
        assert isinstance(reply, Frame)
        assert reply.type in (MessageType.ERROR, response_type(msg_type))
        if reply.type == MessageType.ERROR:
            assert _error_code(reply) != ErrorCode.INTERNAL

    check()


def test_fuzz_commands_in_an_authenticated_session(
    link: CameraLink, keys: Keys, camera: FakeCamera, server: CameraControlServer
) -> None:
    camera.add_file("20261122T181500Z-0001", "seg-000000.bcs", b"sealed" * 100)
    link.hello()
    link.auth(keys.dock, keys.device.public_bytes())
    commands = [t for t in MessageType if t not in (MessageType.HELLO, MessageType.ERROR)]
    values = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=300),
        st.lists(st.integers(), max_size=3),
    )
    fields = st.dictionaries(
        st.sampled_from(
            [
                "path",
                "offset",
                "length",
                "utc",
                "size",
                "sha256",
                "after",
                "recording",
                "segment",
                "dock_public",
                "signature",
                "dock_nonce",
                "dock_signature",
            ]
        ),
        values,
        max_size=6,
    )

    @FUZZ
    @given(st.sampled_from(commands), fields, st.binary(max_size=200))
    def check(msg_type: MessageType, f: dict[str, object], blob: bytes) -> None:
        try:
            link.call(msg_type, f, blob)
        except LinkError as exc:
            assert exc.code != ErrorCode.INTERNAL, exc
        if not link.authenticated or msg_type == MessageType.AUTH_BEGIN:
            link.auth(keys.dock, keys.device.public_bytes())
        assert link.status()["camera"]["state"] == "docked"

    check()
    # Nothing was deleted and the camera still runs its boot profile.
    assert (camera.volume / "recordings" / "20261122T181500Z-0001" / "seg-000000.bcs").exists()
    assert link.profile_read().version == 1


# --- explicit cases ----------------------------------------------------------------------


def test_bad_crc_is_answered_bad_frame_with_seq_zero(raw: RawPort) -> None:
    body = bytearray(frame_body(MessageType.HELLO, 7, encode_payload({})))
    body[-1] ^= 0xFF
    raw.send(b"\x00" + cobs_encode(bytes(body)) + b"\x00")
    got = raw.collect_until(0)
    assert _error_code(got[-1]) == ErrorCode.BAD_FRAME


def test_error_frames_are_never_answered(camera: FakeCamera) -> None:
    from formats.protocol import decode_frame, error_payload

    server = CameraControlServer(camera)  # handle() alone: no port needed
    wire = encode_frame(MessageType.ERROR, 0, error_payload(ErrorCode.BAD_FRAME, "x"))
    assert server.handle(decode_frame(wire[1:-1])) == b""
    wire = encode_frame(MessageType.ERROR, 12, b"junk")
    assert server.handle(decode_frame(wire[1:-1])) == b""


def test_oversized_input_is_refused_without_buffering_it(
    raw: RawPort, server: CameraControlServer
) -> None:
    raw.send(b"\x41" * (MAX_ENCODED_FRAME + 100) + b"\x00")
    assert _error_code(raw.collect_until(0)[-1]) == ErrorCode.FRAME_TOO_LARGE
    # A frame whose length field is over the limit (consistent CRC) is refused as well.
    header = struct.pack(">BBBII", 2, MessageType.HELLO, 0, 9, MAX_PAYLOAD + 1)
    raw.send(b"\x00" + cobs_encode(header + b"\x00" * 8) + b"\x00")
    assert _error_code(raw.collect_until(0)[-1]) == ErrorCode.FRAME_TOO_LARGE
    _Probe(raw).alive()


def test_out_of_order_and_replayed_sequence_numbers(raw: RawPort) -> None:
    def ask(msg_type: int, seq: int, payload: bytes = b"\x00\x02{}") -> Frame:
        raw.send_frame(msg_type, seq, payload)
        reply = raw.collect_until(seq)[-1]
        assert isinstance(reply, Frame)
        return reply

    assert ask(MessageType.HELLO, 100).type == response_type(MessageType.HELLO)
    first = ask(MessageType.STATUS, 101)
    assert _error_code(first) == ErrorCode.NOT_AUTHENTICATED
    assert ask(MessageType.STATUS, 101) == first  # a retry: same answer
    assert _error_code(ask(MessageType.STATUS, 101, encode_payload({"x": 1}))) == (
        ErrorCode.SEQUENCE
    )  # same number, other content
    assert _error_code(ask(MessageType.STATUS, 50)) == ErrorCode.SEQUENCE  # behind
    assert _error_code(ask(MessageType.STATUS, 101 + SEQUENCE_WINDOW + 1)) == ErrorCode.SEQUENCE
    assert _error_code(ask(MessageType.STATUS, 105)) == ErrorCode.NOT_AUTHENTICATED  # a gap: ok
    assert _error_code(ask(0x55, 106)) == ErrorCode.UNKNOWN_COMMAND
    assert _error_code(ask(response_type(MessageType.STATUS), 107)) == ErrorCode.UNKNOWN_COMMAND
    raw.send_frame(MessageType.STATUS, 0, b"\x00\x02{}")
    assert _error_code(raw.collect_until(0)[-1]) == ErrorCode.SEQUENCE
    # Wrap-around: 2**32 - 1 is followed by 1.
    assert ask(MessageType.HELLO, 2**32 - 1).type == response_type(MessageType.HELLO)
    assert _error_code(ask(MessageType.STATUS, 1)) == ErrorCode.NOT_AUTHENTICATED


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 12)), min_size=1, max_size=25))
def test_sequence_rules_match_the_spec_model(
    camera: FakeCamera, steps: list[tuple[bool, int]]
) -> None:
    """Random HELLO/STATUS frames with colliding sequence numbers, against PROTOCOL.md 4."""
    from formats.protocol import decode_frame

    server = CameraControlServer(camera)  # not started: handle() alone is the logic under test
    last: int | None = None
    last_wire: bytes | None = None
    for is_hello, seq in steps:
        wire = encode_frame(
            MessageType.HELLO if is_hello else MessageType.STATUS, seq, encode_payload({})
        )
        reply = decode_frame(server.handle(decode_frame(wire[1:-1]))[1:-1])
        if seq == last and wire == last_wire:
            continue  # replayed answer: checked by test_out_of_order_and_replayed_...
        if is_hello:
            assert reply.type == response_type(MessageType.HELLO)
        elif last is not None and not 0 < seq - last:
            assert _error_code(reply) == ErrorCode.SEQUENCE
            continue
        else:
            assert _error_code(reply) == ErrorCode.NOT_AUTHENTICATED
        last, last_wire = seq, wire
