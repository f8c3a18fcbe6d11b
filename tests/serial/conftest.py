"""Fixtures for the serial control channel: keys, a camera home, a server on a real pty."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from serial_support import FakeCamera, Keys, profile_toml

from dock.link import CameraLink
from firmware.control import CameraControlServer
from firmware.profile_store import ProfileStore
from formats.profile_sign import sign_profile
from sim.pty import PtySerialPort


@pytest.fixture(scope="session")
def keys() -> Keys:
    from crypto.keys import SigningKey

    kinds = ("dock", "dock", "integrator", "integrator", "device")
    return Keys(*(SigningKey.generate(kind) for kind in kinds))


@pytest.fixture
def make_profile(keys: Keys) -> Callable[..., tuple[bytes, bytes]]:
    """(TOML, signature file) of a valid profile, signed by the integrator by default."""

    def make(version: int, *, signer: Any = None, **kw: Any) -> tuple[bytes, bytes]:
        kw.setdefault("trusted_docks", [keys.dock.public_bytes()])
        raw = profile_toml(version, **kw)
        sig = sign_profile(raw, signer or keys.integrator).to_bytes()
        return raw, sig

    return make


@pytest.fixture
def camera(tmp_path: Path, keys: Keys) -> Iterator[FakeCamera]:
    home = tmp_path / "home"
    (home / "volume" / "recordings").mkdir(parents=True)
    (home / "device.key").write_bytes(b"camera-private: must never be readable over serial")
    cam = FakeCamera(
        device_id="BC-1A2B3C4D",
        device_key=keys.device,
        home=home,
        boot_profile=profile_toml(1, [keys.dock.public_bytes()]),
    )
    ProfileStore(home / "profiles").provision_integrator(keys.integrator.public_bytes())
    yield cam
    cam.close()


@pytest.fixture
def server(camera: FakeCamera) -> Iterator[CameraControlServer]:
    srv = CameraControlServer(camera, PtySerialPort())
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def link(server: CameraControlServer) -> Iterator[CameraLink]:
    assert server.path is not None
    with CameraLink(server.path, timeout=0.5, retries=4) as lk:
        yield lk


@pytest.fixture
def session(link: CameraLink, keys: Keys) -> CameraLink:
    """A link after HELLO and AUTH with the trusted dock key."""
    link.hello()
    link.auth(keys.dock, keys.device.public_bytes())
    return link
