"""Fixtures for the dock: one SeaweedFS server per session, S3 credentials, stores."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dock_support import Dock, make_camera
from fake_camera import FakeCamera
from s3_support import ACCESS_KEY, REGION, SECRET_KEY, WeedServer, start_weed

from crypto.keys import SigningKey, VaultKey
from dock.ledger import Ledger


@pytest.fixture(scope="session")
def weed() -> Iterator[WeedServer]:
    """A real SeaweedFS with S3 on 127.0.0.1, started once for the session.

    The leak check (tests/conftest.py) counts the server as this fixture's, since it
    starts in the fixture's setup: it may outlive a test, and is gone after the last.
    """
    with tempfile.TemporaryDirectory(prefix="bodycam-weed-") as tmp:
        server = start_weed(Path(tmp))
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return env


@dataclass
class DockKeys:
    dock: SigningKey
    other_dock: SigningKey
    vault: VaultKey
    integrator: SigningKey


@pytest.fixture(scope="session")
def dock_keys() -> DockKeys:
    return DockKeys(
        SigningKey.generate(kind="dock"),
        SigningKey.generate(kind="dock"),
        VaultKey.generate(),
        SigningKey.generate(kind="integrator"),
    )


@pytest.fixture
def docks(tmp_path: Path) -> Iterator[Dock]:
    dock = Dock(tmp_path / "slots")
    yield dock
    dock.close()


@pytest.fixture
def make_cam(tmp_path: Path, dock_keys: DockKeys) -> Iterator[Callable[..., FakeCamera]]:
    made: list[FakeCamera] = []

    def make(
        name: str = "cam1", transfer: str = "mass-storage", trusted: list[bytes] | None = None
    ) -> FakeCamera:
        cam = make_camera(
            tmp_path / "cameras",
            name,
            trusted or [dock_keys.dock.public_bytes()],
            dock_keys.vault,
            transfer,
        )
        made.append(cam)
        return cam

    yield make
    for cam in made:
        cam.close()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "state" / "ledger.sqlite") as led:
        yield led


@pytest.fixture(autouse=True)
def _own_dock_locations(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Default ledger and running-dock notes in this test's own folders, never the user's."""
    base = tmp_path_factory.mktemp("dock-env")
    (base / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_STATE_HOME", str(base / "state"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base / "run"))
    monkeypatch.delenv("BODYCAM_DOCK_LEDGER", raising=False)
