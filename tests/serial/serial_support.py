"""Test doubles for the serial control channel, built from real pieces.

The camera itself is the shared test camera (`fake_camera.FakeCamera`,
re-exported here): real Ed25519 keys, a real home and volume on disk, the real
signed event log and a settable clock. `LossyPort` wraps a real pyserial port
and damages bytes in both directions on a fixed, bounded schedule; `RawPort`
speaks raw frames to a server for fuzzing.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
import termios
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import serial
from fake_camera import FakeCamera, FakeClock

from crypto.format import segment_name
from crypto.keys import SigningKey
from formats.profile import default_profile, derive_profile
from formats.protocol import Frame, FrameDecoder, FrameError, encode_frame

__all__ = [
    "FakeCamera",
    "FakeClock",
    "Keys",
    "LossyPort",
    "RawPort",
    "SocketPort",
    "profile_toml",
    "random_recording",
]

VAULT_RECIPIENT = "5c1f2a8e0d3b4c6f7a9e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a"


def profile_toml(
    version: int,
    trusted_docks: list[bytes],
    *,
    name: str = "test-site",
    prerecord_seconds: int = 30,
    transfer: str = "serial",
    max_clock_correction: int | None = None,
) -> bytes:
    """A valid profile's TOML: the embedded default with these changes."""
    base = default_profile(vault_recipients=[VAULT_RECIPIENT], trusted_docks=trusted_docks)
    changes: dict[str, Any] = {
        "profile": {"name": name, "version": version},
        "prerecord": {"seconds": prerecord_seconds},
        "transfer": {"mode": transfer},
    }
    if max_clock_correction is not None:
        changes["device"] = {"max_clock_correction_seconds": max_clock_correction}
    return derive_profile(base, changes, source="test profile")[0]


@dataclass
class Keys:
    dock: SigningKey
    other_dock: SigningKey
    integrator: SigningKey
    other_integrator: SigningKey
    device: SigningKey


class LossyPort:
    """A real pyserial port that damages traffic on a fixed schedule, both ways.

    Writes (requests): every `write_every`-th write is dropped, truncated or has a byte
    flipped, in turn. Reads (replies): every `read_every`-th non-empty read is dropped or
    flipped; and, for bulk replies, one byte is flipped per `read_byte_period` bytes. The
    periods keep faults far enough apart that a retry always gets through.
    """

    def __init__(
        self,
        port: Any,
        *,
        write_every: int = 0,
        read_every: int = 0,
        read_byte_period: int = 0,
    ) -> None:
        self.port = port
        self.write_every = write_every
        self.read_every = read_every
        self.read_byte_period = read_byte_period
        self.writes = self.reads = 0
        self.bytes_read = 0
        self.next_byte_fault = read_byte_period
        self.faults: list[str] = []

    @property
    def in_waiting(self) -> int:
        return int(self.port.in_waiting)

    def reset_input_buffer(self) -> None:
        self.port.reset_input_buffer()

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.write_every and self.writes % self.write_every == 0:
            kind = ("drop", "truncate", "flip")[(self.writes // self.write_every) % 3]
            self.faults.append(f"write-{kind}")
            if kind == "drop":
                return len(data)
            if kind == "truncate":
                self.port.write(data[: len(data) // 2])
                return len(data)
            damaged = bytearray(data)
            damaged[len(data) // 2] ^= 0x5A
            self.port.write(bytes(damaged))
            return len(data)
        self.port.write(data)
        return len(data)

    def read(self, size: int = 1) -> bytes:
        data = bytes(self.port.read(size))
        if not data:
            return data
        self.reads += 1
        start = self.bytes_read
        self.bytes_read += len(data)
        if self.read_every and self.reads % self.read_every == 0:
            if (self.reads // self.read_every) % 2:
                self.faults.append("read-drop")
                return b""
            self.faults.append("read-flip")
            damaged = bytearray(data)
            damaged[len(data) // 2] ^= 0x21
            return bytes(damaged)
        if self.read_byte_period and self.bytes_read > self.next_byte_fault:
            damaged = bytearray(data)
            damaged[min(max(self.next_byte_fault - start, 0), len(data) - 1)] ^= 0x10
            self.next_byte_fault += self.read_byte_period
            self.faults.append("read-bulk-flip")
            return bytes(damaged)
        return data

    def close(self) -> None:
        self.port.close()


class SocketPort:
    """The accepting end of a TCP connection, shaped like a pyserial port."""

    def __init__(self, sock: socket.socket, timeout: float = 0.05) -> None:
        self.sock = sock
        self.timeout = timeout

    @property
    def in_waiting(self) -> int:
        raw = fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        return int(struct.unpack("i", raw)[0])

    def read(self, size: int = 1) -> bytes:
        ready, _, _ = select.select([self.sock], [], [], self.timeout)
        return self.sock.recv(size) if ready else b""

    def write(self, data: bytes) -> int:
        self.sock.sendall(data)
        return len(data)

    def close(self) -> None:
        self.sock.close()


class RawPort:
    """Speaks raw bytes and frames to a control server over its pty."""

    def __init__(self, path: str) -> None:
        self.port = serial.serial_for_url(path, timeout=0.05)
        self.port.reset_input_buffer()
        self.decoder = FrameDecoder()
        self.pending: list[Frame | FrameError] = []

    def close(self) -> None:
        self.port.close()

    def send(self, data: bytes) -> None:
        self.port.write(data)

    def send_frame(self, msg_type: int, seq: int, payload: bytes) -> None:
        self.send(encode_frame(msg_type, seq, payload))

    def collect_until(self, seq: int, timeout: float = 5.0) -> list[Frame | FrameError]:
        """Everything received up to and including the reply carrying `seq`."""
        got: list[Frame | FrameError] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self.pending:
                item = self.pending.pop(0)
                got.append(item)
                if isinstance(item, Frame) and item.seq == seq:
                    return got
            waiting = self.port.in_waiting
            data = self.port.read(waiting if waiting else 1)
            if data:
                self.pending.extend(self.decoder.feed(data))
        raise AssertionError(f"no reply with sequence number {seq} within {timeout} s: {got}")


def random_recording(camera: FakeCamera, recording_id: str, sizes: list[int]) -> list[Path]:
    return [
        camera.add_file(recording_id, segment_name(i), os.urandom(size))
        for i, size in enumerate(sizes)
    ]
