"""Write the test vectors in crypto/vectors/ (run: python -m crypto.make_vectors [DIR]).

Each vector is a whole recording folder sealed with fixed keys and a fixed
random stream, so the output is byte-for-byte reproducible: the JSON holds the
keys, every random value the sealer drew (in order), the plaintexts and the
exact bytes of every file, plus mutations with the error a reader must raise.
Other implementations check themselves against these files; the tests check
that this script still produces them unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NotRequired, TypedDict

from crypto.keys import SigningKey, VaultKey
from crypto.recovery import recover_recordings
from crypto.seal import RecordingSealer

VECTORS_DIR = Path(__file__).resolve().parent / "vectors"
DEVICE_ID = "BC-1A2B3C4D"
STARTED = 1_795_371_300.0  # 2026-11-22T18:15:00Z
CHUNK = 64


Mutation = dict[str, object]  # a change to a file and the error a reader must raise


class Vector(TypedDict):
    """One vector file's JSON object."""

    name: str
    description: str
    format_version: int
    device_id: str
    recording_id: str
    chunk_size: int
    device_private_seed: str
    device_public: str
    vault_recipients: list[str]
    vault_private: str
    vault_public: str
    random_drawn_in_order: list[str]
    segment_plaintexts: list[str]
    recording_plaintext_sha256: str
    files: dict[str, str]  # file name -> its bytes in hex
    mutations: NotRequired[list[Mutation]]


class RecordingRandom:
    """A deterministic byte stream (SHA-256 in counter mode) that logs what it hands out."""

    def __init__(self, label: str) -> None:
        self._seed = hashlib.sha256(b"bodycam test vector " + label.encode()).digest()
        self._counter = 0
        self.drawn: list[str] = []

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        self.drawn.append(out[:n].hex())
        return out[:n]


def _key(label: str) -> bytes:
    return hashlib.sha256(b"bodycam test key " + label.encode()).digest()


def _plaintext(label: str, n: int) -> bytes:
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}:{i}".encode()).digest()
        i += 1
    return out[:n]


def _files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_bytes().hex() for p in sorted(folder.iterdir())}


def _flip(files: dict[str, str], name: str, offset: int) -> Mutation:
    return {"file": name, "offset": offset, "xor": 1, "size": len(bytes.fromhex(files[name]))}


def _vector(
    name: str,
    description: str,
    recipients: int,
    open_with: int,
    build: Callable[[RecordingSealer], list[bytes]],
    after: Callable[[Path, SigningKey], None] | None = None,
) -> Vector:
    device = SigningKey.from_seed(_key("device"), kind="device")
    vaults = [VaultKey.from_private_bytes(_key(f"vault-{i}")) for i in range(recipients)]
    rng = RecordingRandom(name)
    recording_id = "20261122T181500Z-" + hashlib.sha256(name.encode()).hexdigest()[:4]
    with tempfile.TemporaryDirectory(prefix="bodycam-vectors-") as tmp:
        folder = Path(tmp) / "recordings" / recording_id
        sealer = RecordingSealer(
            folder,
            DEVICE_ID,
            recording_id,
            device,
            [v.public_bytes() for v in vaults],
            STARTED,
            CHUNK,
            rng=rng,
        )
        plaintexts = build(sealer)
        if after is not None:
            after(folder, device)
        files = _files(folder)
    vault = vaults[open_with]
    return {
        "name": name,
        "description": description,
        "format_version": 1,
        "device_id": DEVICE_ID,
        "recording_id": recording_id,
        "chunk_size": CHUNK,
        "device_private_seed": device.seed_bytes().hex(),
        "device_public": device.public_bytes().hex(),
        "vault_recipients": [v.public_bytes().hex() for v in vaults],
        "vault_private": vault.private_bytes().hex(),
        "vault_public": vault.public_bytes().hex(),
        "random_drawn_in_order": rng.drawn,
        "segment_plaintexts": [p.hex() for p in plaintexts],
        "recording_plaintext_sha256": hashlib.sha256(b"".join(plaintexts)).hexdigest(),
        "files": files,
    }


def _basic(sealer: RecordingSealer) -> list[bytes]:
    sizes = [0, 1, CHUNK, CHUNK + 1, 3 * CHUNK, 200]
    plaintexts = []
    for i, n in enumerate(sizes):
        data = _plaintext(f"segment-{i}", n)
        with sealer.begin_segment(i, "video/mp2t", 90_000 * 10 * i, STARTED + 10 * i) as seg:
            seg.write(data[:5])
            seg.write(data[5:])
        plaintexts.append(data)
    sealer.finish(STARTED + 10 * len(sizes))
    return plaintexts


def _two(sealer: RecordingSealer) -> list[bytes]:
    data = _plaintext("two", 150)
    with sealer.begin_segment(0, "video/mp2t", 0, STARTED) as seg:
        seg.write(data)
    sealer.finish(STARTED + 10)
    return [data]


def _recovered(sealer: RecordingSealer) -> list[bytes]:
    first = _plaintext("recovered-0", 100)
    with sealer.begin_segment(0, "video/mp2t", 0, STARTED) as seg:
        seg.write(first)
    second = _plaintext("recovered-1", 3 * CHUNK + 10)
    seg = sealer.begin_segment(1, "video/mp2t", 900_000, STARTED + 10)
    seg.write(second)
    # Power cut: the first 3 chunks are on disk, the 10 bytes that would start the
    # last chunk never were; a partial chunk write leaves 30 stray bytes behind.
    sealer.abandon()
    with open(seg.part_path, "ab") as f:
        f.write(b"\xa5" * 30)
    return [first, second[: 3 * CHUNK]]


def _recover(folder: Path, device: SigningKey) -> None:
    reports = recover_recordings(folder.parent, device)
    assert len(reports) == 1 and reports[0].recovered_segments == [("seg-000001.bcs", 3)]


def build_vectors() -> dict[str, Vector]:
    basic = _vector(
        "recording-basic",
        "one vault recipient; six segments of 0, 1, 64, 65, 192 and 200 bytes; finished",
        1,
        0,
        _basic,
    )
    files = basic["files"]
    basic["mutations"] = [
        {**_flip(files, "seg-000001.bcs", 20), "error": "Tampered"},
        {
            **_flip(files, "seg-000004.bcs", len(bytes.fromhex(files["seg-000004.bcs"])) - 1),
            "error": "Tampered",
        },
        {**_flip(files, "manifest.bcm", 16 + 165 + 40), "error": "Tampered"},
        {**_flip(files, "recording.hdr", 30), "error": "Tampered"},
        {
            "file": "seg-000004.bcs",
            "truncate_to": len(bytes.fromhex(files["seg-000004.bcs"])) - (CHUNK + 16),
            "error": "Truncated",
        },
        {"file": "seg-000002.bcs", "delete": True, "error": "Truncated"},
        {"swap": ["seg-000002.bcs", "seg-000003.bcs"], "error": "Tampered"},
        {"file": "manifest.bcm", "offset": 8, "set_u16": 2, "error": "UnknownVersion"},
        {
            "device_public": SigningKey.from_seed(_key("other")).public_bytes().hex(),
            "error": "NotSignedByDevice",
        },
        {"vault_private": _key("not-a-recipient").hex(), "error": "WrongKey"},
    ]
    two = _vector(
        "recording-two-recipients",
        "two vault recipients, opened with the second one",
        2,
        1,
        _two,
    )
    recovered = _vector(
        "recording-recovered",
        "power cut during segment 1 after 3 whole chunks and 30 bytes of a fourth; "
        "recovery sealed it as 'recovered, 3 chunks' and closed the manifest",
        1,
        0,
        _recovered,
        _recover,
    )
    return {v["name"]: v for v in (basic, two, recovered)}


def vector_json(vector: Vector) -> str:
    return json.dumps(vector, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=VECTORS_DIR)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, vector in build_vectors().items():
        (args.out / f"{name}.json").write_text(vector_json(vector))
        print(f"wrote {args.out / (name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
