"""A lossy line: dropped, truncated and flipped bytes both ways are retried, never misread."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator

import pytest
import serial
from serial_support import FakeCamera, Keys, LossyPort, random_recording

from dock.link import CameraLink, LinkTimeout
from firmware.control import CameraControlServer
from formats.protocol import MessageType, ReleaseReceipt, encode_frame, encode_payload
from sim.pty import PtySerialPort


@pytest.fixture
def lossy(server: CameraControlServer) -> Iterator[LossyPort]:
    assert server.path is not None
    port = LossyPort(serial.serial_for_url(server.path, timeout=0.05), write_every=5, read_every=6)
    yield port
    port.close()


def test_small_commands_survive_damage_in_both_directions(
    lossy: LossyPort, server: CameraControlServer, camera: FakeCamera, keys: Keys
) -> None:
    link = CameraLink(lossy, timeout=0.1, retries=6)
    link.hello()
    link.auth(keys.dock, keys.device.public_bytes())
    calls = 0
    for i in range(8):
        status = link.status()
        assert status["profile"]["version"] == 1
        before = camera.clock.now()
        assert link.set_time(1_790_000_000.0 + i) == pytest.approx(before - 1_790_000_000.0 - i)
        calls += 1
    # Every damage kind happened, and was recovered from by resending.
    assert {"write-drop", "write-truncate", "write-flip", "read-drop", "read-flip"} <= set(
        lossy.faults
    )
    assert link.retransmissions >= len(lossy.faults) // 2
    assert server.frames_rejected > 0
    # A resent SET_TIME was answered from the cache, not run again: one log entry per call.
    assert camera.kinds().count("clock_sync") == calls


def test_set_time_drift_is_exact_despite_retries(
    lossy: LossyPort, camera: FakeCamera, keys: Keys
) -> None:
    link = CameraLink(lossy, timeout=0.1, retries=6)
    link.hello()
    link.auth(keys.dock, keys.device.public_bytes())
    resent_before = link.retransmissions
    faults_before = len(lossy.faults)
    for step in range(1, 6):
        before = camera.clock.now()
        target = before + step
        # If a retried SET_TIME ran twice, the second run would report drift 0.
        assert link.set_time(target) == pytest.approx(-step)
        assert camera.clock.now() == target
    assert "read-drop" in lossy.faults[faults_before:]  # a reply lost after the clock was set
    assert link.retransmissions > resent_before
    assert camera.kinds().count("clock_sync") == 5


def test_bulk_read_over_a_noisy_line_is_exact(
    server: CameraControlServer, camera: FakeCamera, keys: Keys
) -> None:
    assert server.path is not None
    sizes = [300_000, 70_001]
    paths = random_recording(camera, "20261122T181500Z-0bad", sizes)
    port = LossyPort(serial.serial_for_url(server.path, timeout=0.05), read_byte_period=150_000)
    try:
        link = CameraLink(port, timeout=0.3, retries=4)
        link.hello()
        link.auth(keys.dock, keys.device.public_bytes())
        for p in paths:
            buf = io.BytesIO()
            link.read_file_to(f"recordings/20261122T181500Z-0bad/{p.name}", buf)
            assert (
                hashlib.sha256(buf.getvalue()).digest() == hashlib.sha256(p.read_bytes()).digest()
            )
        assert port.faults.count("read-bulk-flip") >= 2
        assert link.retransmissions >= 2
        # RELEASE over the noisy line still deletes exactly the named segment.
        sha = hashlib.sha256(paths[0].read_bytes()).hexdigest()
        link.release(
            ReleaseReceipt.sign(
                keys.dock, camera.device_id, "20261122T181500Z-0bad", paths[0].name, sha
            )
        )
        assert not paths[0].exists() and paths[1].exists()
    finally:
        port.close()


def test_a_silent_camera_gives_link_timeout(keys: Keys) -> None:
    # loop:// echoes our own requests back: never a reply with the right type and sequence.
    port = serial.serial_for_url("loop://", timeout=0.02)
    link = CameraLink(port, timeout=0.05, retries=2)
    try:
        with pytest.raises(LinkTimeout, match="did not answer HELLO after 3 attempts"):
            link.hello()
    finally:
        port.close()


def test_a_retried_request_is_answered_from_the_cache(camera: FakeCamera) -> None:
    # Feed the same frame twice straight into a (not started) server: same reply, one run.
    import os

    from formats.protocol import decode_frame, derive_session_keys

    server = CameraControlServer(camera, PtySerialPort())
    keys = derive_session_keys(os.urandom(32), b"transcript")
    server._conn.keys = keys  # a session, as AUTH_FINISH would open it
    server._conn.last_seq = 99
    wire = encode_frame(
        MessageType.SET_TIME, 100, encode_payload({"utc": 1_790_000_100.0}), keys.dock_to_camera
    )
    frame = decode_frame(wire[1:-1])
    first = server.handle(frame)
    again = server.handle(frame)
    assert first == again
    reply = decode_frame(first[1:-1])
    assert reply.type == MessageType.SET_TIME | 0x80 and keys.camera_to_dock.verify(reply)
    assert camera.kinds().count("clock_sync") == 1
