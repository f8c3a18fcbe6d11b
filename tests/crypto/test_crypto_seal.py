"""Sealing API: streaming writes, atomic files, manifest after every segment, key hygiene."""

from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path

import pytest
from crypto_support import DEVICE_ID, SMALL_CHUNK, STARTED, CryptoKeys, MakeRecording, pattern
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.format import TAG_SIZE
from crypto.open import decrypt_recording
from crypto.seal import RecordingSealer, SealerStateError
from crypto.verify import verify_manifest, verify_recording

RID = "20261122T181500Z-5ea1"


def _sealer(tmp_path: Path, ckeys: CryptoKeys, **kw: object) -> RecordingSealer:
    return RecordingSealer(
        tmp_path / RID,
        DEVICE_ID,
        RID,
        ckeys.device,
        [ckeys.vault.public_bytes()],
        STARTED,
        SMALL_CHUNK,
        **kw,  # type: ignore[arg-type]
    )


@given(st.lists(st.binary(max_size=300), max_size=12))
@settings(max_examples=60, deadline=None)
def test_any_write_pattern_round_trips(
    tmp_path_factory: pytest.TempPathFactory, ckeys: CryptoKeys, pieces: list[bytes]
) -> None:
    root = tmp_path_factory.mktemp("rt")
    sealer = _sealer(root, ckeys)
    seg = sealer.begin_segment(0, "video/mp2t", 0, STARTED)
    for p in pieces:
        seg.write(p)
    info = seg.close()
    sealer.finish(STARTED + 1)
    data = b"".join(pieces)
    assert info.chunks == max(1, -(-len(data) // SMALL_CHUNK))
    assert info.sha256 == hashlib.sha256(info.path.read_bytes()).hexdigest()
    assert info.size == info.path.stat().st_size
    out = io.BytesIO()
    assert decrypt_recording(root / RID, ckeys.vault, ckeys.device.public_bytes(), out) == len(data)
    assert out.getvalue() == data


def test_chunks_reach_the_part_file_while_recording(tmp_path: Path, ckeys: CryptoKeys) -> None:
    sealer = _sealer(tmp_path, ckeys)
    seg = sealer.begin_segment(0, "video/mp2t", 0, STARTED)
    part = tmp_path / RID / "seg-000000.bcs.part"
    assert part.exists() and not (tmp_path / RID / "seg-000000.bcs").exists()
    header_len = part.stat().st_size
    seg.write(pattern("a", SMALL_CHUNK))  # one chunk, but it may be the last: held
    assert part.stat().st_size == header_len
    seg.write(b"x")  # now chunk 0 is known not to be last
    assert part.stat().st_size == header_len + SMALL_CHUNK + TAG_SIZE
    seg.write(pattern("b", 10 * SMALL_CHUNK))
    assert part.stat().st_size == header_len + 11 * (SMALL_CHUNK + TAG_SIZE)  # 1 byte held
    assert seg.plaintext_bytes == 11 * SMALL_CHUNK + 1
    info = seg.close()
    assert not part.exists() and info.path.exists() and info.chunks == 12
    sealer.finish(STARTED + 1)


def test_manifest_is_signed_after_every_segment(tmp_path: Path, ckeys: CryptoKeys) -> None:
    sealer = _sealer(tmp_path, ckeys)
    folder = tmp_path / RID
    vr = verify_manifest(folder, ckeys.device.public_bytes())
    assert vr.segments == [] and not vr.complete and vr.started_utc == STARTED
    for i in range(3):
        with sealer.begin_segment(i, "video/mp2t", i * 900_000, STARTED + 10 * i) as seg:
            seg.write(pattern(str(i), 100))
        # The dock could verify a copy at this very moment.
        vr = verify_recording(folder, ckeys.device.public_bytes())
        assert [e.index for e in vr.segments] == list(range(i + 1)) and not vr.complete
        assert vr.segments[-1].start_pts == i * 900_000
        assert vr.segments[-1].start_utc == STARTED + 10 * i
    sealer.finish(STARTED + 30)
    vr = verify_recording(folder, ckeys.device.public_bytes())
    assert vr.complete and vr.ended_utc == STARTED + 30 and not vr.recovered
    assert vr.device_id == DEVICE_ID and vr.recording_id == RID
    assert vr.recipients == [ckeys.vault.public_bytes()]
    assert sorted(os.listdir(folder)) == [
        "manifest.bcm",
        "recording.hdr",
        "seg-000000.bcs",
        "seg-000001.bcs",
        "seg-000002.bcs",
    ]


def test_data_key_is_wiped_and_order_is_enforced(tmp_path: Path, ckeys: CryptoKeys) -> None:
    sealer = _sealer(tmp_path, ckeys)
    key_buffer = sealer._data_key
    assert any(key_buffer)
    seg = sealer.begin_segment(0, "video/mp2t", 0, STARTED)
    with pytest.raises(SealerStateError, match="still open"):
        sealer.begin_segment(1, "video/mp2t", 0, STARTED)
    with pytest.raises(SealerStateError, match="still open"):
        sealer.finish(STARTED)
    seg_key = seg._key
    seg.write(b"abc")
    seg.close()
    assert not any(seg_key)  # the segment key is overwritten at close
    with pytest.raises(SealerStateError):
        seg.write(b"more")
    with pytest.raises(ValueError, match="expects 1"):
        sealer.begin_segment(5, "video/mp2t", 0, STARTED)
    sealer.finish(STARTED + 1)
    assert len(key_buffer) == 32 and not any(key_buffer)
    with pytest.raises(SealerStateError, match="finished"):
        sealer.begin_segment(1, "video/mp2t", 0, STARTED)
    with pytest.raises(SealerStateError):
        sealer.finish(STARTED + 2)


def test_bad_arguments_fail_clearly(tmp_path: Path, ckeys: CryptoKeys) -> None:
    good = [ckeys.vault.public_bytes()]
    cases: list[tuple[dict[str, object], str]] = [
        ({"vault_recipients": []}, "1-16 vault recipients"),
        ({"vault_recipients": [bytes(32)]}, "not a usable X25519"),
        ({"chunk_size": 10}, "chunk_size"),
        ({"chunk_size": 2 * 1024 * 1024}, "chunk_size"),
        ({"device_id": "BC 1"}, "device id"),
        ({"recording_id": ""}, "recording id"),
        ({"started_utc": float("nan")}, "finite"),
    ]
    for i, (override, match) in enumerate(cases):
        kw: dict[str, object] = {
            "recording_dir": tmp_path / str(i),
            "device_id": DEVICE_ID,
            "recording_id": RID,
            "signer": ckeys.device,
            "vault_recipients": good,
            "started_utc": STARTED,
        }
        kw.update(override)
        with pytest.raises(ValueError, match=match):
            RecordingSealer(**kw)  # type: ignore[arg-type]
    _sealer(tmp_path, ckeys)
    with pytest.raises(FileExistsError, match="already started"):
        _sealer(tmp_path, ckeys)


def test_camera_cannot_open_its_own_footage(
    make_recording: MakeRecording, ckeys: CryptoKeys
) -> None:
    sealed = make_recording()
    files = b"".join(p.read_bytes() for p in sorted(sealed.folder.iterdir()))
    # Nothing on the volume holds the plaintext or the device key; the device key is
    # not a vault key (wrong algorithm) so it cannot unwrap the data key either.
    assert sealed.plaintexts[0][:32] not in files
    assert ckeys.device.seed_bytes() not in files


def test_no_key_material_in_logs(
    tmp_path: Path, ckeys: CryptoKeys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    drawn: list[bytes] = []

    def rng(n: int) -> bytes:
        drawn.append(os.urandom(n))
        return drawn[-1]

    sealer = _sealer(tmp_path, ckeys, rng=rng)
    with sealer.begin_segment(0, "video/mp2t", 0, STARTED) as seg:
        seg.write(b"x" * 500)
    sealer.finish(STARTED + 1)
    out = io.BytesIO()
    decrypt_recording(tmp_path / RID, ckeys.vault, ckeys.device.public_bytes(), out)
    data_key = drawn[0]
    text = caplog.text + repr(sealer) + repr(seg)
    assert caplog.records  # something was logged, and none of it is a key
    for secret in (data_key, ckeys.vault.private_bytes(), ckeys.device.seed_bytes()):
        assert secret.hex()[:16] not in text
