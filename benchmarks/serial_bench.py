"""Serial control channel benchmark: bulk READ and small-command round trips over a pty.

Both figures are ratios against the raw pty measured in the same run, with the
same reading loop (pyserial `read(in_waiting)`), and with the camera side in its
own process as on real hardware (so client and camera do not share one GIL):

- bulk: `CameraLink.read_file_to` of a 64 MiB sealed-looking file (random bytes)
  with 64 KiB READs, against a process writing raw bytes into the pty master.
  Target: >= 50 % of raw.
- round trips: STATUS requests per second, against a raw 64-byte echo over the
  same kind of pty.

Usage: python benchmarks/serial_bench.py [--mib 64] [--seconds 2]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_BULK_RATIO = 0.50

VAULT_RECIPIENT = "5c1f2a8e0d3b4c6f7a9e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a"

RAW_WRITER = """
import os, sys
fd, total = int(sys.argv[1]), int(sys.argv[2])
block = os.urandom(1 << 20)
sent = 0
while sent < total:
    sent += os.write(fd, block[: min(len(block), total - sent)])
"""

RAW_ECHO = """
import os, sys, select
fd = int(sys.argv[1])
while True:
    data = os.read(fd, 65536)
    if data == b"q":
        break
    os.write(fd, data)
"""


class _BenchClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def set_time(self, utc: float) -> float:
        drift = self.now() - utc
        self.offset -= drift
        return drift


class _NullLog:
    def append(self, kind: str, **fields: Any) -> None:
        pass


class BenchCamera:
    """CameraServices for the benchmark: real keys and files, nothing else."""

    model = "BC-BENCH"
    firmware_version = "bench"

    def __init__(self, home: Path) -> None:
        from crypto.keys import SigningKey

        self.home = home
        self.volume = home / "volume"
        self.device_id = "BC-BE0C0001"
        self.device_key = SigningKey.load(home / "device.key")
        self.clock = _BenchClock()
        self.event_log = _NullLog()
        self._raw = (home / "boot.toml").read_bytes()

    def status(self) -> dict[str, Any]:
        return {"state": "docked", "charging": True}

    def active_profile(self) -> tuple[bytes, Any]:
        from formats.profile import parse_profile

        return self._raw, parse_profile(self._raw, source="bench profile")

    def on_profile_activated(self, raw: bytes, profile: Any) -> None:
        pass


def serve(home: Path) -> None:
    """Child process: serve the bench camera until stdin closes."""
    from firmware.control import CameraControlServer
    from sim.pty import PtySerialPort

    with CameraControlServer(BenchCamera(home), PtySerialPort()) as server:
        print(server.path, flush=True)
        sys.stdin.read()


def _read_all(port: Any, total: int) -> None:
    got = 0
    while got < total:
        waiting = port.in_waiting
        got += len(port.read(waiting if waiting else 1))


def raw_bulk(total: int) -> float:
    """Bytes per second a pyserial reader gets from a process writing into a pty."""
    import tty

    import serial

    master, slave = os.openpty()
    tty.setraw(slave)
    port = serial.serial_for_url(os.ttyname(slave), timeout=0.25)
    try:
        start = time.perf_counter()
        writer = subprocess.Popen(
            [sys.executable, "-c", RAW_WRITER, str(master), str(total)], pass_fds=(master,)
        )
        _read_all(port, total)
        elapsed = time.perf_counter() - start
        writer.wait()
    finally:
        port.close()
        os.close(master)
        os.close(slave)
    return total / elapsed


def raw_round_trips(seconds: float) -> float:
    """64-byte request/response round trips per second through a raw pty echo process."""
    import tty

    import serial

    master, slave = os.openpty()
    tty.setraw(slave)
    port = serial.serial_for_url(os.ttyname(slave), timeout=0.25)
    echo = subprocess.Popen([sys.executable, "-c", RAW_ECHO, str(master)], pass_fds=(master,))
    try:
        msg = b"\x5a" * 64
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            port.write(msg)
            _read_all(port, len(msg))
            n += 1
        rate = n / (time.perf_counter() - start)
        port.write(b"q")
        echo.wait()
    finally:
        port.close()
        os.close(master)
        os.close(slave)
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64, help="bulk transfer size")
    parser.add_argument("--seconds", type=float, default=2.0, help="round-trip test length")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0

    from crypto.keys import SigningKey
    from dock.link import CameraLink
    from formats.profile import default_profile, derive_profile

    total = args.mib * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="serial-bench-") as tmp:
        home = Path(tmp) / "home"
        rec = home / "volume" / "recordings" / "20261122T181500Z-be0c"
        rec.mkdir(parents=True)
        (rec / "segment-00000.bcs").write_bytes(os.urandom(total))
        device, dock = SigningKey.generate(), SigningKey.generate()
        device.save(home / "device.key")
        base = default_profile(
            vault_recipients=[VAULT_RECIPIENT], trusted_docks=[dock.public_bytes()]
        )
        raw, _ = derive_profile(
            base, {"profile": {"name": "bench"}, "transfer": {"mode": "serial"}}
        )
        (home / "boot.toml").write_bytes(raw)

        raw_rate = max(raw_bulk(total) for _ in range(2))
        raw_rtt = raw_round_trips(args.seconds)

        camera = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(home)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert camera.stdout is not None
            path = camera.stdout.readline().strip()
            with CameraLink(path, timeout=2.0) as link:
                link.hello()
                link.auth(dock, device.public_bytes())
                rates = []
                for _ in range(2):
                    out = io.BytesIO()
                    start = time.perf_counter()
                    link.read_file_to("recordings/20261122T181500Z-be0c/segment-00000.bcs", out)
                    rates.append(total / (time.perf_counter() - start))
                    if out.getbuffer().nbytes != total:
                        raise RuntimeError("bulk READ returned the wrong number of bytes")
                read_rate = max(rates)
                n = 0
                start = time.perf_counter()
                while time.perf_counter() - start < args.seconds:
                    link.status()
                    n += 1
                status_rate = n / (time.perf_counter() - start)
        finally:
            if camera.stdin is not None:
                camera.stdin.close()
            camera.wait()

    mib = 1024 * 1024
    ratio = read_rate / raw_rate
    print(f"raw pty bulk:          {raw_rate / mib:8.1f} MiB/s")
    print(
        f"READ (64 KiB) bulk:    {read_rate / mib:8.1f} MiB/s  "
        f"= {ratio:.0%} of raw (target >= {TARGET_BULK_RATIO:.0%}: "
        f"{'met' if ratio >= TARGET_BULK_RATIO else 'NOT met'})"
    )
    print(f"raw pty echo (64 B):   {raw_rtt:8.0f} round trips/s")
    print(
        f"STATUS:                {status_rate:8.0f} round trips/s  = {status_rate / raw_rtt:.0%} "
        "of raw echo"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
