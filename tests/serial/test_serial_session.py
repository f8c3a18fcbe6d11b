"""Sessions (PROTOCOL.md section 8): bound to the connection, expiring, every frame tagged.

Everything runs against the real control server on a real pty with real keys. A third
party on the line is played by writing frames straight into the dock's open port (as a
tap on the cable would), so the camera sees them on the same connection as the dock's.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

import pytest
import serial
from serial_support import FakeCamera, Keys, RawPort, profile_toml

from dock.link import CameraLink, ClockRefused, LinkError, LinkTampered, SessionLost
from firmware.control import NOT_AUTHENTICATED_MESSAGE, CameraControlServer
from formats.protocol import (
    HEADER_SIZE,
    SESSION_IDLE_SECONDS,
    SESSION_MAX_SECONDS,
    TAG_SIZE,
    ErrorCode,
    Frame,
    FrameDecoder,
    FrameError,
    FrameKey,
    MessageType,
    ReleaseReceipt,
    SessionKeys,
    cobs_encode,
    decode_payload,
    encode_frame,
    encode_payload,
    response_type,
)

YEAR = 365 * 86400.0


def _keys(link: CameraLink) -> SessionKeys:
    keys = link._session
    assert keys is not None, "the link has no session"
    return keys


def _error(frame: Frame | FrameError) -> tuple[int, str]:
    assert isinstance(frame, Frame) and frame.type == MessageType.ERROR, frame
    f = decode_payload(frame.payload).fields
    return f.integer("code", 0, 255), f.text("message", 1024)


class Tap:
    """Writes frames onto the dock's open line and reads the camera's answers to them."""

    def __init__(self, link: CameraLink) -> None:
        self.port = link._port
        self.decoder = FrameDecoder()

    def send(self, wire: bytes, seq: int) -> Frame:
        self.port.write(wire)
        for _ in range(400):  # bounded: 400 reads of at most the port timeout each
            for item in self.decoder.feed(bytes(self.port.read(self.port.in_waiting or 1))):
                if isinstance(item, Frame) and item.seq == seq:
                    return item
        raise AssertionError(f"no answer to the frame with sequence number {seq}")


def _status_ok(link: CameraLink) -> None:
    assert link.status()["camera"]["state"] == "docked"


# --- bound to the connection ----------------------------------------------------------


def test_session_dies_with_the_connection(
    server: CameraControlServer, camera: FakeCamera, keys: Keys
) -> None:
    assert server.path is not None
    first = CameraLink(server.path, timeout=0.5, retries=4)
    first.hello()
    first.auth(keys.dock, keys.device.public_bytes())
    _status_ok(first)
    old = _keys(first)
    next_seq = first._seq + 1
    first.close()  # the dock lets go of the port

    # A new client that sends no HELLO/AUTH, untagged or with the old session's tag.
    clock_before = camera.clock.now()
    raw = RawPort(server.path)
    try:
        raw.send_frame(MessageType.STATUS, next_seq, encode_payload({}))
        code, message = _error(raw.collect_until(next_seq)[-1])
        assert (code, message) == (ErrorCode.NOT_AUTHENTICATED, NOT_AUTHENTICATED_MESSAGE)
        jump = encode_payload({"utc": clock_before + YEAR})
        raw.send(encode_frame(MessageType.SET_TIME, next_seq + 1, jump, old.dock_to_camera))
        reply = raw.collect_until(next_seq + 1)[-1]
        assert isinstance(reply, Frame), reply
        assert _error(reply)[0] == ErrorCode.NOT_AUTHENTICATED and not reply.tagged
        raw.send_frame(MessageType.SET_TIME, next_seq + 2, jump)
        assert _error(raw.collect_until(next_seq + 2)[-1])[0] == ErrorCode.NOT_AUTHENTICATED
    finally:
        raw.close()
    assert camera.clock.now() == clock_before
    assert "clock_sync" not in camera.kinds()
    ended = [f for k, f in camera.events if k == "session_ended"]
    assert [f["reason"] for f in ended] == ["connection"]
    assert server.connection_resets >= 2  # the close, then the new client's open

    # The new client gets its own session only through a fresh AUTH, with new keys.
    with CameraLink(server.path, timeout=0.5, retries=4) as second:
        with pytest.raises(LinkError) as exc:
            second.set_time(clock_before + YEAR)
        assert exc.value.code == ErrorCode.NOT_AUTHENTICATED
        second.hello()
        second.auth(keys.dock, keys.device.public_bytes())
        _status_ok(second)
        assert _keys(second).dock_to_camera.tag(b"x") != old.dock_to_camera.tag(b"x")
    assert camera.kinds().count("dock_authenticated") == 2


def test_a_second_client_opening_the_port_ends_the_session(
    server: CameraControlServer, session: CameraLink, camera: FakeCamera
) -> None:
    assert server.path is not None
    other = serial.serial_for_url(server.path, timeout=0.05)  # opened, nothing written
    other.close()
    # The dock's next request finds its session gone; the link authenticates again.
    _status_ok(session)
    assert session.reauthentications == 1
    assert [f["reason"] for k, f in camera.events if k == "session_ended"] == ["connection"]


# --- expiry (the camera's injected clock) ---------------------------------------------


def test_idle_session_expires_on_the_camera_clock(session: CameraLink, camera: FakeCamera) -> None:
    camera.clock.advance(SESSION_IDLE_SECONDS - 1)
    _status_ok(session)  # still within the idle time
    camera.clock.advance(SESSION_IDLE_SECONDS + 1)
    with pytest.raises(SessionLost) as exc:
        session._call_once(MessageType.STATUS)  # without the link's re-authentication
    assert exc.value.code == ErrorCode.NOT_AUTHENTICATED
    assert not session.authenticated
    assert [f["reason"] for k, f in camera.events if k == "session_ended"] == ["idle"]


def test_session_lifetime_is_bounded_even_when_busy(
    session: CameraLink, camera: FakeCamera
) -> None:
    step = SESSION_IDLE_SECONDS / 2
    for _ in range(int(SESSION_MAX_SECONDS // step)):
        camera.clock.advance(step)
        session._call_once(MessageType.STATUS)  # busy: never idle
    camera.clock.advance(step)
    with pytest.raises(SessionLost):
        session._call_once(MessageType.STATUS)
    assert [f["reason"] for k, f in camera.events if k == "session_ended"] == ["lifetime"]
    # The link's own call re-authenticates once and carries on.
    _status_ok(session)
    assert session.reauthentications == 1
    assert camera.kinds().count("dock_authenticated") == 2


def test_set_time_does_not_extend_a_session(session: CameraLink, camera: FakeCamera) -> None:
    camera.clock.advance(SESSION_IDLE_SECONDS + 1)  # idle expired on the monotonic clock
    camera.clock.t -= 2 * SESSION_IDLE_SECONDS  # wall clock set back: no effect on expiry
    with pytest.raises(SessionLost):
        session._call_once(MessageType.STATUS)


# --- frames injected, replayed, reordered, altered ------------------------------------


def test_injected_frames_mid_session_are_refused_and_not_executed(
    session: CameraLink, camera: FakeCamera, keys: Keys, server: CameraControlServer
) -> None:
    path = camera.add_file("20261122T181500Z-0001", "seg-000000.bcs", b"sealed" * 100)
    import hashlib

    receipt = ReleaseReceipt.sign(
        keys.dock,
        camera.device_id,
        "20261122T181500Z-0001",
        path.name,
        hashlib.sha256(path.read_bytes()).hexdigest(),
    )
    tap = Tap(session)
    before = camera.clock.now()
    seq = session._seq + 100  # well inside the window, a number the dock has not used
    injected = [
        (MessageType.SET_TIME, {"utc": before + YEAR}),
        (MessageType.RELEASE, receipt.to_fields()),  # a real receipt, but not the dock's frame
        (MessageType.AUTH_FINISH, {"dock_signature": "00" * 64}),
    ]
    for i, (msg_type, fields) in enumerate(injected):
        reply = tap.send(encode_frame(msg_type, seq + i, encode_payload(fields)), seq + i)
        assert _error(reply) == (ErrorCode.NOT_AUTHENTICATED, NOT_AUTHENTICATED_MESSAGE)
        assert not reply.tagged
    # A frame tagged with a key of the attacker's own making fares no better.
    forged = FrameKey(b"\x07" * 32, 0x01)
    wire = encode_frame(
        MessageType.SET_TIME, seq + 5, encode_payload({"utc": before + YEAR}), forged
    )
    assert _error(tap.send(wire, seq + 5))[0] == ErrorCode.NOT_AUTHENTICATED
    assert server.frames_refused == 4
    assert camera.clock.now() == before and path.exists()
    assert "clock_sync" not in camera.kinds() and "segment_released" not in camera.kinds()
    # The dock's session is untouched: its next requests run, with no re-authentication.
    _status_ok(session)
    assert session.set_time(before - 5) == pytest.approx(5)
    assert session.reauthentications == 0
    session.hello()  # ends the session; the refused frames are counted in its end
    ended = [f for k, f in camera.events if k == "session_ended"]
    assert ended == [
        {"reason": "hello", "dock": keys.dock.public_bytes().hex(), "frames_refused": 4}
    ]


def test_an_injected_frame_does_not_take_the_docks_next_number(
    session: CameraLink, camera: FakeCamera
) -> None:
    tap = Tap(session)
    before = camera.clock.now()
    seq = session._seq + 1  # exactly the number the dock uses next
    reply = tap.send(
        encode_frame(MessageType.SET_TIME, seq, encode_payload({"utc": before + YEAR})), seq
    )
    assert _error(reply)[0] == ErrorCode.NOT_AUTHENTICATED
    # The refused frame changed no state: the dock's own request with that number runs.
    assert session.set_time(before - 3) == pytest.approx(3)
    assert session.reauthentications == 0
    assert [f["dock_utc"] for k, f in camera.events if k == "clock_sync"] == [before - 3]


def test_replayed_and_reordered_session_frames_are_refused(
    session: CameraLink, camera: FakeCamera
) -> None:
    keys = _keys(session)
    tap = Tap(session)
    start = camera.clock.now()

    def set_time(seq: int, utc: float) -> bytes:
        return encode_frame(
            MessageType.SET_TIME, seq, encode_payload({"utc": utc}), keys.dock_to_camera
        )

    seq = session._seq
    a, b = set_time(seq + 1, start - 10), set_time(seq + 2, start - 20)
    # Reordered: b arrives first (a gap is allowed), then a, which is now behind: refused.
    reply_b = tap.send(b, seq + 2)
    assert reply_b.type == response_type(MessageType.SET_TIME)
    assert keys.camera_to_dock.verify(reply_b)
    reply_a = tap.send(a, seq + 1)
    code, message = _error(reply_a)
    assert code == ErrorCode.SEQUENCE and keys.camera_to_dock.verify(reply_a)
    assert camera.clock.now() == start - 20
    # b again is a retry: the stored answer, not a second run.
    assert tap.send(b, seq + 2) == reply_b
    session._seq = seq + 2
    session.set_time(start)  # the dock moves on: b is now old
    assert tap.send(b, seq + 2).type == MessageType.ERROR  # replayed: refused
    assert camera.clock.now() == start
    assert [f["dock_utc"] for k, f in camera.events if k == "clock_sync"] == [start - 20, start]
    # The camera's own tagged answer sent back to it (reflection) is not a request.
    reflected = b"\x00" + cobs_encode(reply_b.body) + b"\x00"
    assert _error(tap.send(reflected, seq + 2))[0] == ErrorCode.NOT_AUTHENTICATED
    # A captured frame with its payload changed (tag kept, CRC recomputed) is refused.
    altered = _replace_utc(set_time(session._seq + 7, start + 10), start + YEAR)
    assert _error(tap.send(altered, session._seq + 7))[0] == ErrorCode.NOT_AUTHENTICATED
    assert camera.clock.now() == start


def test_sequence_errors_say_nothing_of_the_session(session: CameraLink) -> None:
    seq = session._seq
    tap = Tap(session)
    keys = _keys(session)
    old = encode_frame(MessageType.STATUS, seq - 3, encode_payload({}), keys.dock_to_camera)
    code, message = _error(tap.send(old, seq - 3))
    assert code == ErrorCode.SEQUENCE
    assert not re.search(r"\d", message), message


def test_sequence_errors_without_a_session_say_nothing_either(raw: Any) -> None:
    raw.send_frame(MessageType.HELLO, 500, encode_payload({}))
    raw.collect_until(500)
    raw.send_frame(MessageType.STATUS, 400, encode_payload({}))
    code, message = _error(raw.collect_until(400)[-1])
    assert code == ErrorCode.SEQUENCE and not re.search(r"\d", message), message


@pytest.fixture
def raw(server: CameraControlServer) -> Any:
    assert server.path is not None
    port = RawPort(server.path)
    yield port
    port.close()


# --- answers altered or forged on the line --------------------------------------------


def _reencode(body: bytes, payload: bytes, tag: bytes) -> bytes:
    """A frame body with another payload, the given tag and a correct CRC (anyone can)."""
    header = bytearray(body[:HEADER_SIZE])
    header[7:11] = len(payload).to_bytes(4, "big")
    if not tag:
        header[2] = 0
    new = bytes(header) + payload + tag
    return new + zlib.crc32(new).to_bytes(4, "big")


def _replace_utc(wire: bytes, utc: float) -> bytes:
    from formats.protocol import decode_frame

    frame = decode_frame(wire[1:-1])
    body = _reencode(frame.body, encode_payload({"utc": utc}), frame.tag)
    return b"\x00" + cobs_encode(body) + b"\x00"


class TamperPort:
    """A real port that rewrites the camera's STATUS answers on the way to the dock."""

    def __init__(self, port: Any, *, times: int, strip_tag: bool = False) -> None:
        self.port = port
        self.times = times
        self.strip_tag = strip_tag
        self.decoder = FrameDecoder()
        self.pending = b""
        self.tampered = 0

    @property
    def in_waiting(self) -> int:
        return len(self.pending) + int(self.port.in_waiting)

    def reset_input_buffer(self) -> None:
        self.port.reset_input_buffer()

    def write(self, data: bytes) -> int:
        self.port.write(data)
        return len(data)

    def read(self, size: int = 1) -> bytes:
        data = bytes(self.port.read(self.port.in_waiting or 1))
        for item in self.decoder.feed(data):
            if isinstance(item, FrameError):
                continue
            body = item.body
            if item.type == response_type(MessageType.STATUS) and self.tampered < self.times:
                self.tampered += 1
                fields = dict(decode_payload(item.payload).fields.data)
                fields["camera"] = {**fields["camera"], "state": "recording"}
                tag = b"" if self.strip_tag else item.tag
                body = _reencode(body, encode_payload(fields), tag)
            self.pending += b"\x00" + cobs_encode(body) + b"\x00"
        out, self.pending = self.pending[:size], self.pending[size:]
        return out

    def close(self) -> None:
        self.port.close()


@pytest.mark.parametrize("strip_tag", [False, True])
def test_an_altered_answer_is_dropped_and_the_genuine_one_used(
    server: CameraControlServer, keys: Keys, strip_tag: bool
) -> None:
    assert server.path is not None
    port = TamperPort(
        serial.serial_for_url(server.path, timeout=0.05), times=1, strip_tag=strip_tag
    )
    try:
        link = CameraLink(port, timeout=0.3, retries=3)
        link.hello()
        link.auth(keys.dock, keys.device.public_bytes())
        assert link.status()["camera"]["state"] == "docked"  # the camera's, not the forgery
        assert port.tampered == 1 and link.forged_replies == 1
        assert link.retransmissions >= 1  # the resent request got the cached genuine answer
    finally:
        port.close()


def test_answers_altered_every_time_give_link_tampered(
    server: CameraControlServer, keys: Keys
) -> None:
    assert server.path is not None
    port = TamperPort(serial.serial_for_url(server.path, timeout=0.05), times=10**6)
    try:
        link = CameraLink(port, timeout=0.2, retries=2)
        link.hello()
        link.auth(keys.dock, keys.device.public_bytes())
        with pytest.raises(LinkTampered, match="failed the session tag"):
            link.status()
        assert link.forged_replies == 3
    finally:
        port.close()


def test_a_forged_session_open_is_not_believed(
    server: CameraControlServer, keys: Keys, camera: FakeCamera
) -> None:
    """AUTH_FINISH's answer must carry the new session's tag: an untagged "session: true"
    or one tagged with another key is dropped."""
    assert server.path is not None

    class ForgeOpen(TamperPort):
        def read(self, size: int = 1) -> bytes:
            data = bytes(self.port.read(self.port.in_waiting or 1))
            for item in self.decoder.feed(data):
                if isinstance(item, FrameError):
                    continue
                body = item.body
                if item.type == response_type(MessageType.AUTH_FINISH):
                    self.tampered += 1
                    body = _reencode(body, item.payload, b"")  # tag stripped
                self.pending += b"\x00" + cobs_encode(body) + b"\x00"
            out, self.pending = self.pending[:size], self.pending[size:]
            return out

    port = ForgeOpen(serial.serial_for_url(server.path, timeout=0.05), times=0)
    try:
        link = CameraLink(port, timeout=0.2, retries=1)
        link.hello()
        with pytest.raises(LinkTampered):
            link.auth(keys.dock, keys.device.public_bytes())
        assert not link.authenticated and port.tampered == 2
    finally:
        port.close()


# --- SET_TIME bounded by the profile ---------------------------------------------------


def test_big_clock_corrections_are_refused_beyond_the_profile_bound(
    link: CameraLink, camera: FakeCamera, keys: Keys
) -> None:
    camera.boot_profile = profile_toml(1, [keys.dock.public_bytes()], max_clock_correction=600)
    link.hello()  # the camera reads its profile anew for this session
    link.auth(keys.dock, keys.device.public_bytes())
    now = camera.clock.now()
    with pytest.raises(ClockRefused) as exc:
        link.set_time(now + YEAR)
    assert exc.value.drift == pytest.approx(-YEAR) and exc.value.limit == 600
    assert "max_clock_correction_seconds" in exc.value.message
    assert camera.clock.now() == now
    refused = [f for k, f in camera.events if k == "clock_sync_refused"]
    assert refused == [
        {"dock_utc": now + YEAR, "drift_seconds": pytest.approx(-YEAR), "limit_seconds": 600}
    ]
    # Within the bound but more than a minute: applied, and logged as a clock jump.
    assert link.set_time(now - 500) == pytest.approx(500)
    assert camera.clock.now() == now - 500
    kinds = camera.kinds()
    assert kinds.count("clock_sync") == 1 and kinds.count("clock_jump") == 1
    # A small correction is a plain clock_sync.
    link.set_time(camera.clock.now() + 1.5)
    assert camera.kinds().count("clock_jump") == 1


def test_default_bound_is_one_day(session: CameraLink, camera: FakeCamera) -> None:
    now = camera.clock.now()
    with pytest.raises(ClockRefused):
        session.set_time(now - 86_401)
    assert session.set_time(now - 86_399) == pytest.approx(86_399)


def test_tags_are_hmac_sha256_as_specified() -> None:
    """The tag and the key schedule, recomputed with the independent `cryptography`."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from formats.protocol import derive_session_keys, frame_body

    shared, message = bytes(range(1, 33)), b"bodycam-auth-dock-v2\0transcript"
    keys = derive_session_keys(shared, message)
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=64,
        salt=hashlib.sha256(message).digest(),
        info=b"bodycam-session-v2",
    ).derive(shared)
    body = frame_body(MessageType.STATUS, 42, encode_payload({}), keys.dock_to_camera)
    signed = body[: -TAG_SIZE - 4]
    expected = hmac.new(okm[:32], b"\x01" + signed, hashlib.sha256).digest()[:TAG_SIZE]
    assert body[-TAG_SIZE - 4 : -4] == expected
    back = frame_body(MessageType.STATUS | 0x80, 42, encode_payload({}), keys.camera_to_dock)
    assert (
        back[-TAG_SIZE - 4 : -4]
        == hmac.new(okm[32:], b"\x02" + back[: -TAG_SIZE - 4], hashlib.sha256).digest()[:TAG_SIZE]
    )
    with pytest.raises(ValueError):
        derive_session_keys(b"\x00" * 32, message)  # a low-order share's agreement
