"""Tamper matrix: every kind of change is detected, with the error that names it.

Each case is checked twice: by the dock's `verify_recording` (device public key
only) and by the back office's `decrypt_recording` (vault key). The pristine
recording verifies and decrypts before and after every case, so valid files
never fail.
"""

from __future__ import annotations

import io
import shutil
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from crypto_support import SMALL_CHUNK, CryptoKeys, Sealed, pattern, seal_recording

from crypto.errors import (
    FormatError,
    NotSignedByDevice,
    Tampered,
    Truncated,
    UnknownVersion,
    WrongKey,
)
from crypto.format import TAG_SIZE, unwrap_data_key
from crypto.keys import SigningKey, VaultKey
from crypto.open import OpenedRecording, SegmentReader, decrypt_recording
from crypto.verify import verify_manifest, verify_recording

FULL = SMALL_CHUNK + TAG_SIZE
# seg 0: 3 full chunks + a 10-byte last chunk; seg 1: 2 full chunks (the last one full);
# seg 2: one 5-byte chunk; seg 3: same size as seg 1 (for swaps).
SIZES = (3 * SMALL_CHUNK + 10, 2 * SMALL_CHUNK, 5, 2 * SMALL_CHUNK)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, ckeys: CryptoKeys) -> dict[str, Sealed]:
    root = tmp_path_factory.mktemp("tamper") / "recordings"
    vault = [ckeys.vault.public_bytes()]
    return {
        "rec": seal_recording(root / "20261122T181500Z-aaaa", ckeys.device, vault, SIZES),
        "other": seal_recording(root / "20261122T181500Z-bbbb", ckeys.device, vault, SIZES),
        "foreign": seal_recording(root / "20261122T181500Z-cccc", ckeys.other_device, vault, SIZES),
    }


@pytest.fixture
def rec(world: dict[str, Sealed], ckeys: CryptoKeys, tmp_path: Path) -> Iterator[Sealed]:
    """A private copy of the pristine recording, checked valid before and after the test."""
    src = world["rec"]
    folder = tmp_path / src.folder.name
    shutil.copytree(src.folder, folder)
    sealed = Sealed(folder, src.plaintexts, src.recording_id)
    _assert_valid(sealed, ckeys)
    yield sealed
    _assert_valid(world["rec"], ckeys)


def _assert_valid(sealed: Sealed, ckeys: CryptoKeys) -> None:
    vr = verify_recording(sealed.folder, ckeys.device.public_bytes())
    assert vr.complete and [e.index for e in vr.segments] == list(range(len(SIZES)))
    out = io.BytesIO()
    assert decrypt_recording(sealed.folder, ckeys.vault, ckeys.device.public_bytes(), out) == len(
        sealed.plaintext
    )
    assert out.getvalue() == sealed.plaintext


@contextmanager
def mutated(path: Path, data: bytes) -> Iterator[None]:
    original = path.read_bytes()
    path.write_bytes(data)
    try:
        yield
    finally:
        path.write_bytes(original)


def _both(
    sealed: Sealed, ckeys: CryptoKeys, device: bytes | None = None, vault: VaultKey | None = None
) -> tuple[BaseException, BaseException]:
    """The errors of verify_recording and decrypt_recording (both must raise)."""
    device = device or ckeys.device.public_bytes()
    with pytest.raises(FormatError) as v:
        verify_recording(sealed.folder, device)
    with pytest.raises(FormatError) as d:
        decrypt_recording(sealed.folder, vault or ckeys.vault, device, io.BytesIO())
    return v.value, d.value


def _flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


def _header_len(path: Path) -> int:
    return int(struct.unpack(">H", path.read_bytes()[10:12])[0])


def test_bit_flip_in_every_segment_header_byte(rec: Sealed, ckeys: CryptoKeys) -> None:
    path = rec.seg(0)
    data = path.read_bytes()
    for offset in range(_header_len(path)):
        with mutated(path, _flip(data, offset, offset % 8)):
            v, d = _both(rec, ckeys)
        for err in (v, d):
            assert isinstance(err, Tampered) and err.file == path.name, (offset, err)


def test_bit_flip_in_every_body_and_tag_byte(rec: Sealed, ckeys: CryptoKeys) -> None:
    for i in (0, 1, 2):
        path = rec.seg(i)
        data = path.read_bytes()
        hl = _header_len(path)
        for offset in range(hl, len(data)):
            with mutated(path, _flip(data, offset, offset % 8)):
                v, d = _both(rec, ckeys)
            assert isinstance(v, Tampered) and v.file == path.name and v.chunk is None
            # The dock has no key: the signed SHA-256 catches it. The vault names the chunk.
            assert isinstance(d, Tampered) and d.file == path.name, (i, offset, d)
            assert d.chunk == (offset - hl) // FULL, (i, offset, d)


def test_bit_flip_in_every_recording_header_byte(rec: Sealed, ckeys: CryptoKeys) -> None:
    path = rec.folder / "recording.hdr"
    data = path.read_bytes()
    for offset in range(len(data)):
        with mutated(path, _flip(data, offset, 7 - offset % 8)):
            v, d = _both(rec, ckeys)
        for err in (v, d):
            assert isinstance(err, Tampered) and err.file == "recording.hdr", (offset, err)


def test_bit_flip_in_every_manifest_byte(rec: Sealed, ckeys: CryptoKeys) -> None:
    path = rec.folder / "manifest.bcm"
    data = path.read_bytes()
    for offset in range(len(data)):
        with mutated(path, _flip(data, offset, offset % 8)):
            v, d = _both(rec, ckeys)
        for err in (v, d):
            if 8 <= offset < 10:
                assert isinstance(err, UnknownVersion), (offset, err)
            elif 12 <= offset < 16:
                # The entry count is not signed: a wrong count reads like a cut file.
                assert isinstance(err, Tampered | Truncated), (offset, err)
            else:
                assert isinstance(err, Tampered) and err.file == "manifest.bcm", (offset, err)


def _cuts(size: int, hl: int) -> list[int]:
    cuts = {0, 5, 11, hl - 1, hl, hl + 1, hl + TAG_SIZE - 1, size - 1}
    for k in range(0, (size - hl) // FULL + 1):
        boundary = hl + k * FULL
        cuts |= {boundary, boundary + 7, boundary + SMALL_CHUNK + 3}
    return sorted(c for c in cuts if 0 <= c < size)


def test_truncation_at_every_chunk_boundary_and_mid_chunk(rec: Sealed, ckeys: CryptoKeys) -> None:
    for i in range(len(SIZES)):
        path = rec.seg(i)
        data = path.read_bytes()
        for cut in _cuts(len(data), _header_len(path)):
            with mutated(path, data[:cut]):
                v, d = _both(rec, ckeys)
            assert isinstance(v, Truncated) and isinstance(d, Truncated), (i, cut, v, d)


def _data_key(sealed: Sealed, ckeys: CryptoKeys) -> bytearray:
    header = verify_manifest(sealed.folder, ckeys.device.public_bytes()).header
    return unwrap_data_key(header, ckeys.vault.exchange, ckeys.vault.public_bytes())


def test_standalone_segment_reader_sees_cuts_and_swaps(
    rec: Sealed, ckeys: CryptoKeys, tmp_path: Path
) -> None:
    key = _data_key(rec, ckeys)
    data = rec.seg(0).read_bytes()
    hl = _header_len(rec.seg(0))
    lone = tmp_path / "lone.bcs"

    def read(blob: bytes) -> bytes:
        lone.write_bytes(blob)
        with SegmentReader(lone, key) as reader:
            return b"".join(bytes(c) for c in reader.chunks())

    assert read(data) == rec.plaintexts[0]
    for k in (1, 2, 3):  # cut at a chunk boundary: the last chunk lacks the flag
        with pytest.raises(Truncated):
            read(data[: hl + k * FULL])
    for cut in (hl + FULL + 20, len(data) - 1):  # inside a chunk: looks changed or cut
        with pytest.raises((Tampered, Truncated)):
            read(data[:cut])
    swapped = (
        data[:hl] + data[hl + FULL : hl + 2 * FULL] + data[hl : hl + FULL] + data[hl + 2 * FULL :]
    )
    with pytest.raises(Tampered) as exc:
        read(swapped)
    assert exc.value.chunk == 0


def test_appended_bytes(rec: Sealed, ckeys: CryptoKeys) -> None:
    path = rec.seg(1)
    data = path.read_bytes()
    for extra in (b"\0", bytes(FULL), data[-FULL:]):
        with mutated(path, data + extra):
            v, d = _both(rec, ckeys)
        assert isinstance(v, Tampered) and isinstance(d, Tampered)


def test_chunk_swap_within_and_between_segments(rec: Sealed, ckeys: CryptoKeys) -> None:
    s0, s1 = rec.seg(0), rec.seg(1)
    d0, d1 = s0.read_bytes(), s1.read_bytes()
    h0, h1 = _header_len(s0), _header_len(s1)
    within = d0[:h0] + d0[h0 + FULL : h0 + 2 * FULL] + d0[h0 : h0 + FULL] + d0[h0 + 2 * FULL :]
    with mutated(s0, within):
        v, d = _both(rec, ckeys)
    assert isinstance(v, Tampered) and isinstance(d, Tampered) and d.chunk == 0
    # Chunk 1 of segment 0 replaced by chunk 0 of segment 1 (same size, same data key).
    between = d0[: h0 + FULL] + d1[h1 : h1 + FULL] + d0[h0 + 2 * FULL :]
    with mutated(s0, between):
        v, d = _both(rec, ckeys)
    assert isinstance(v, Tampered) and isinstance(d, Tampered) and d.chunk == 1


def test_segment_dropped(rec: Sealed, ckeys: CryptoKeys) -> None:
    for i in range(len(SIZES)):
        data = rec.seg(i).read_bytes()
        rec.seg(i).unlink()
        v, d = _both(rec, ckeys)
        rec.seg(i).write_bytes(data)
        assert isinstance(v, Truncated) and isinstance(d, Truncated)


def test_segments_reordered_duplicated_replaced_spliced(
    rec: Sealed, world: dict[str, Sealed], ckeys: CryptoKeys
) -> None:
    d1, d3 = rec.seg(1).read_bytes(), rec.seg(3).read_bytes()
    assert len(d1) == len(d3)
    with mutated(rec.seg(1), d3), mutated(rec.seg(3), d1):  # reordered
        v, d = _both(rec, ckeys)
    assert isinstance(v, Tampered) and isinstance(d, Tampered) and v.file == rec.seg(1).name
    with mutated(rec.seg(3), d1):  # duplicated
        v, d = _both(rec, ckeys)
    assert isinstance(v, Tampered) and isinstance(d, Tampered)
    # Same index from another recording of the same camera.
    with mutated(rec.seg(1), world["other"].seg(1).read_bytes()):
        v, d = _both(rec, ckeys)
    assert isinstance(v, Tampered) and isinstance(d, Tampered)
    # A segment that the signed manifest does not list.
    spliced = rec.folder / "seg-000004.bcs"
    shutil.copy(world["other"].seg(0), spliced)
    v, d = _both(rec, ckeys)
    spliced.unlink()
    assert isinstance(v, Tampered) and isinstance(d, Tampered) and v.file == spliced.name


def test_manifest_from_another_recording(
    rec: Sealed, world: dict[str, Sealed], ckeys: CryptoKeys
) -> None:
    other = world["other"].folder
    with mutated(rec.folder / "manifest.bcm", (other / "manifest.bcm").read_bytes()):
        v, d = _both(rec, ckeys)
    assert isinstance(v, Tampered) and isinstance(d, Tampered)
    # Header and manifest both taken from the other recording: the segments disagree.
    with (
        mutated(rec.folder / "manifest.bcm", (other / "manifest.bcm").read_bytes()),
        mutated(rec.folder / "recording.hdr", (other / "recording.hdr").read_bytes()),
    ):
        v, d = _both(rec, ckeys)
    assert isinstance(v, Tampered) and isinstance(d, Tampered)
    assert v.file.startswith("seg-")


def _entries(man: bytes) -> list[bytes]:
    return [man[16 + 165 * i : 16 + 165 * (i + 1)] for i in range((len(man) - 16) // 165)]


def _manifest(entries: list[bytes], template: bytes) -> bytes:
    return template[:12] + struct.pack(">I", len(entries)) + b"".join(entries)


def test_manifest_entries_reordered_dropped_duplicated(rec: Sealed, ckeys: CryptoKeys) -> None:
    path = rec.folder / "manifest.bcm"
    man = path.read_bytes()
    e = _entries(man)
    variants = [
        [e[0], e[2], e[1], *e[3:]],  # reordered
        [e[0], e[1], *e[3:]],  # a segment entry dropped from the middle
        [e[0], e[1], e[1], *e[2:]],  # duplicated
        [e[0], *e[1:-1], e[1]],  # END replaced by a copy of a segment entry
    ]
    for entries in variants:
        with mutated(path, _manifest(entries, man)):
            v, d = _both(rec, ckeys)
        assert isinstance(v, Tampered) and isinstance(d, Tampered)


def test_manifest_rolled_back_to_an_earlier_signed_state(rec: Sealed, ckeys: CryptoKeys) -> None:
    path = rec.folder / "manifest.bcm"
    man = path.read_bytes()
    e = _entries(man)
    with mutated(path, _manifest(e[:3], man)):  # START + 2 segments: validly signed, no END
        vr = verify_recording(rec.folder, ckeys.device.public_bytes())
        assert not vr.complete and len(vr.segments) == 2
        assert vr.extra_files == ["seg-000002.bcs", "seg-000003.bcs"]
        with pytest.raises(Truncated, match="no end entry"):
            decrypt_recording(rec.folder, ckeys.vault, ckeys.device.public_bytes(), io.BytesIO())


def test_wrong_or_forged_device(rec: Sealed, world: dict[str, Sealed], ckeys: CryptoKeys) -> None:
    v, d = _both(rec, ckeys, device=ckeys.other_device.public_bytes())
    assert isinstance(v, NotSignedByDevice) and isinstance(d, NotSignedByDevice)
    # Another camera's recording presented as this camera's.
    foreign = Sealed(world["foreign"].folder, [], "")
    v, d = _both(foreign, ckeys)
    assert isinstance(v, NotSignedByDevice) and isinstance(d, NotSignedByDevice)
    # A forger re-signs the manifest with its own key: still not this device.
    forger = SigningKey.generate()
    man = (rec.folder / "manifest.bcm").read_bytes()
    resigned = [x[:101] + forger.sign(b"bodycam-manifest-v1\0" + x[:101]) for x in _entries(man)]
    with mutated(rec.folder / "manifest.bcm", _manifest(resigned, man)):
        v, d = _both(rec, ckeys)
    assert isinstance(v, NotSignedByDevice) and isinstance(d, NotSignedByDevice)


def test_wrong_vault_key(rec: Sealed, ckeys: CryptoKeys) -> None:
    verify_recording(rec.folder, ckeys.device.public_bytes())  # the dock needs no key
    out = io.BytesIO()
    with pytest.raises(WrongKey, match="not a recipient"):
        decrypt_recording(rec.folder, ckeys.other_vault, ckeys.device.public_bytes(), out)
    assert out.getvalue() == b""


def test_errors_are_sticky(rec: Sealed, ckeys: CryptoKeys) -> None:
    path = rec.seg(0)
    data = path.read_bytes()
    hl = _header_len(path)
    key = _data_key(rec, ckeys)
    with mutated(path, _flip(data, hl + FULL + 3)):
        reader = SegmentReader(path, key)
        chunks = reader.chunks()
        assert bytes(next(chunks)) == rec.plaintexts[0][:SMALL_CHUNK]
        with pytest.raises(Tampered) as first:
            next(chunks)
        with pytest.raises(StopIteration):
            next(chunks)  # the generator is finished; the reader keeps the error
        with pytest.raises(Tampered) as again:
            reader.chunks().__next__()
        assert again.value is first.value
        with OpenedRecording(rec.folder, ckeys.vault, ckeys.device.public_bytes()) as opened:
            with pytest.raises(Tampered):
                opened.write_segment(opened.segments[0], io.BytesIO())
            # Even a good segment is refused once the recording saw a bad one.
            with pytest.raises(Tampered):
                opened.write_segment(opened.segments[1], io.BytesIO())


def test_decrypt_streams_each_segment_and_keeps_order(rec: Sealed, ckeys: CryptoKeys) -> None:
    with OpenedRecording(rec.folder, ckeys.vault, ckeys.device.public_bytes()) as opened:
        for entry, plain in zip(opened.segments, rec.plaintexts, strict=True):
            with opened.segment(entry) as reader:
                pieces = [bytes(c) for c in reader.chunks()]
            assert b"".join(pieces) == plain
            assert all(len(p) <= SMALL_CHUNK for p in pieces)
    assert pattern(f"{rec.recording_id}/0", SIZES[0]) == rec.plaintexts[0]
