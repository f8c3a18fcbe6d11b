"""The spec holds: an independent reader (the `cryptography` package) agrees with crypto/.

Checked against the committed vectors and against fresh output of the sealer.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from crypto_reference import ReferenceError_, read_recording
from crypto_support import CryptoKeys, MakeRecording

import crypto.errors as errors
from crypto.keys import SigningKey, VaultKey
from crypto.make_vectors import VECTORS_DIR, build_vectors, vector_json
from crypto.open import decrypt_recording
from crypto.verify import verify_recording

VECTOR_FILES = sorted(VECTORS_DIR.glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    assert isinstance(doc, dict)
    return doc


def _materialize(vector: dict[str, Any], where: Path) -> Path:
    folder: Path = where / vector["recording_id"]
    folder.mkdir(parents=True)
    for name, hexdata in vector["files"].items():
        (folder / name).write_bytes(bytes.fromhex(hexdata))
    return folder


def test_vector_files_exist() -> None:
    names = {p.stem for p in VECTOR_FILES}
    assert {"recording-basic", "recording-two-recipients", "recording-recovered"} <= names


def test_vectors_are_reproduced_by_the_script() -> None:
    built = build_vectors()
    assert sorted(built) == sorted(p.stem for p in VECTOR_FILES)
    for path in VECTOR_FILES:
        assert vector_json(built[path.stem]) == path.read_text(), path.name


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda p: p.stem)
def test_reference_reader_opens_vectors(path: Path, tmp_path: Path) -> None:
    v = _load(path)
    folder = _materialize(v, tmp_path)
    # Keys in the vector are consistent with the `cryptography` package's derivations.
    assert (
        SigningKey.from_seed(bytes.fromhex(v["device_private_seed"])).public_bytes().hex()
        == v["device_public"]
    )
    rec = read_recording(
        folder, bytes.fromhex(v["device_public"]), bytes.fromhex(v["vault_private"])
    )
    assert rec.complete
    assert rec.recording_id == v["recording_id"] and rec.device_id == v["device_id"]
    expected = [bytes.fromhex(p) for p in v["segment_plaintexts"]]
    assert [s.plaintext for s in rec.segments] == expected
    assert hashlib.sha256(b"".join(expected)).hexdigest() == v["recording_plaintext_sha256"]


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda p: p.stem)
def test_crypto_package_opens_vectors(path: Path, tmp_path: Path) -> None:
    v = _load(path)
    folder = _materialize(v, tmp_path)
    device_public = bytes.fromhex(v["device_public"])
    vr = verify_recording(folder, device_public)
    assert vr.complete and vr.recording_id == v["recording_id"]
    out = io.BytesIO()
    vault = VaultKey.from_private_bytes(bytes.fromhex(v["vault_private"]))
    decrypt_recording(folder, vault, device_public, out)
    assert out.getvalue() == b"".join(bytes.fromhex(p) for p in v["segment_plaintexts"])


def test_recovered_vector_says_so() -> None:
    v = _load(VECTORS_DIR / "recording-recovered.json")
    man = bytes.fromhex(v["files"]["manifest.bcm"])
    kinds = [man[16 + 165 * i] for i in range((len(man) - 16) // 165)]
    assert kinds == [1, 2, 3, 5]  # START, SEGMENT, RECOVERED_SEGMENT (3 chunks), RECOVERED_END
    assert struct.unpack(">I", man[16 + 2 * 165 + 9 : 16 + 2 * 165 + 13])[0] == 3


def _apply(mutation: dict[str, Any], folder: Path) -> None:
    if "swap" in mutation:
        a, b = (folder / n for n in mutation["swap"])
        tmp = folder / "swap.tmp"
        a.rename(tmp)
        b.rename(a)
        tmp.rename(b)
        return
    if "file" not in mutation:
        return
    target = folder / mutation["file"]
    if mutation.get("delete"):
        target.unlink()
        return
    data = bytearray(target.read_bytes())
    if "truncate_to" in mutation:
        data = data[: mutation["truncate_to"]]
    elif "set_u16" in mutation:
        data[mutation["offset"] : mutation["offset"] + 2] = struct.pack(">H", mutation["set_u16"])
    else:
        data[mutation["offset"]] ^= mutation["xor"]
    target.write_bytes(bytes(data))


def test_vector_mutations_fail_alike_in_both_readers(tmp_path: Path) -> None:
    v = _load(VECTORS_DIR / "recording-basic.json")
    assert len(v["mutations"]) >= 8
    for i, mutation in enumerate(v["mutations"]):
        folder = _materialize(v, tmp_path / str(i))
        _apply(mutation, folder)
        device_public = bytes.fromhex(mutation.get("device_public", v["device_public"]))
        vault_private = bytes.fromhex(mutation.get("vault_private", v["vault_private"]))
        with pytest.raises(ReferenceError_) as ref:
            read_recording(folder, device_public, vault_private)
        assert ref.value.kind == mutation["error"], (mutation, ref.value)
        with pytest.raises(getattr(errors, mutation["error"])):
            decrypt_recording(
                folder, VaultKey.from_private_bytes(vault_private), device_public, io.BytesIO()
            )


@pytest.mark.parametrize("chunk_size", [64, 1000, 65536])
def test_reference_reader_opens_fresh_output(
    make_recording: MakeRecording, ckeys: CryptoKeys, chunk_size: int
) -> None:
    sizes = (0, 1, chunk_size - 1, chunk_size, chunk_size + 1, 3 * chunk_size, 70_001)
    sealed = make_recording(sizes, chunk_size=chunk_size)
    rec = read_recording(sealed.folder, ckeys.device.public_bytes(), ckeys.vault.private_bytes())
    assert rec.complete
    assert [s.plaintext for s in rec.segments] == sealed.plaintexts
    with pytest.raises(ReferenceError_) as exc:
        read_recording(
            sealed.folder, ckeys.device.public_bytes(), ckeys.other_vault.private_bytes()
        )
    assert exc.value.kind == "WrongKey"


def test_reference_reader_opens_every_recipient(
    make_recording: MakeRecording, ckeys: CryptoKeys, tmp_path: Path
) -> None:
    extra = [VaultKey.generate() for _ in range(3)]
    sealed = make_recording(recipients=[k.public_bytes() for k in [ckeys.vault, *extra]])
    for key in [ckeys.vault, *extra]:
        rec = read_recording(sealed.folder, ckeys.device.public_bytes(), key.private_bytes())
        assert [s.plaintext for s in rec.segments] == sealed.plaintexts
    # And the copy opens elsewhere: nothing depends on the folder's path.
    moved = tmp_path / "elsewhere"
    shutil.copytree(sealed.folder, moved)
    rec = read_recording(moved, ckeys.device.public_bytes(), extra[2].private_bytes())
    assert rec.segments[0].plaintext == sealed.plaintexts[0]
