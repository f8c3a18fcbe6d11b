"""Helpers and fixtures for the sealed format: keys and small sealed recordings.

The fixtures reach the tests through conftest.py; tests import the helpers from here
(a module name of its own: `conftest` is ambiguous when several test folders run).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from crypto.keys import SigningKey, VaultKey
from crypto.seal import RecordingSealer

DEVICE_ID = "BC-1A2B3C4D"
STARTED = 1_795_371_300.0
SMALL_CHUNK = 64


@dataclass(frozen=True)
class CryptoKeys:
    device: SigningKey
    other_device: SigningKey
    vault: VaultKey
    other_vault: VaultKey


@pytest.fixture(scope="session")
def ckeys() -> CryptoKeys:
    return CryptoKeys(
        SigningKey.generate(kind="device"),
        SigningKey.generate(kind="device"),
        VaultKey.generate(),
        VaultKey.generate(),
    )


def pattern(label: str, n: int) -> bytes:
    """Deterministic, non-repeating plaintext (so swapped chunks differ)."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}:{i}".encode()).digest()
        i += 1
    return bytes(out[:n])


@dataclass
class Sealed:
    folder: Path
    plaintexts: list[bytes]
    recording_id: str

    @property
    def plaintext(self) -> bytes:
        return b"".join(self.plaintexts)

    def seg(self, i: int) -> Path:
        return self.folder / f"seg-{i:06d}.bcs"


def seal_recording(
    folder: Path,
    signer: SigningKey,
    recipients: list[bytes],
    sizes: tuple[int, ...],
    *,
    chunk_size: int = SMALL_CHUNK,
    finish: bool = True,
) -> Sealed:
    rid = folder.name
    sealer = RecordingSealer(folder, DEVICE_ID, rid, signer, recipients, STARTED, chunk_size)
    plaintexts = []
    for i, n in enumerate(sizes):
        data = pattern(f"{rid}/{i}", n)
        with sealer.begin_segment(i, "video/mp2t", i * 900_000, STARTED + 10 * i) as seg:
            seg.write(data)
        plaintexts.append(data)
    if finish:
        sealer.finish(STARTED + 10 * len(sizes))
    else:
        sealer.wipe()
    return Sealed(folder, plaintexts, rid)


MakeRecording = Callable[..., Sealed]


@pytest.fixture
def make_recording(tmp_path: Path, ckeys: CryptoKeys) -> MakeRecording:
    counter = [0]

    def make(
        sizes: tuple[int, ...] = (3 * SMALL_CHUNK + 10, 2 * SMALL_CHUNK, 5),
        *,
        chunk_size: int = SMALL_CHUNK,
        finish: bool = True,
        signer: SigningKey | None = None,
        recipients: list[bytes] | None = None,
        recording_id: str | None = None,
        root: Path | None = None,
    ) -> Sealed:
        counter[0] += 1
        rid = recording_id or f"20261122T181500Z-{counter[0]:04x}"
        folder = (root or tmp_path / "recordings") / rid
        return seal_recording(
            folder,
            signer or ckeys.device,
            recipients or [ckeys.vault.public_bytes()],
            sizes,
            chunk_size=chunk_size,
            finish=finish,
        )

    return make
