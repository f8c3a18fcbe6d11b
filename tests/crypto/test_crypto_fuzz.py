"""Fuzzing: mutations of valid files only ever raise the format's own errors, every change
to any file is detected, a reader releases only genuine plaintext before its (sticky)
error, and parsers allocate within the declared bounds."""

from __future__ import annotations

import io
import os
import shutil
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from crypto_support import SMALL_CHUNK, CryptoKeys, Sealed, seal_recording
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from crypto.errors import FormatError, Tampered
from crypto.format import (
    MANIFEST_MAX_SIZE,
    MANIFEST_PREFIX_SIZE,
    MAX_CHUNK_SIZE,
    MAX_RECIPIENTS,
    MIN_CHUNK_SIZE,
    NONCE_PREFIX_SIZE,
    REC_HEADER_MAX,
    STANZA_SIZE,
    TAG_SIZE,
    build_segment_header,
    parse_manifest,
    parse_recording_header,
    parse_segment_header,
    unwrap_data_key,
)
from crypto.open import SegmentReader, decrypt_recording
from crypto.verify import verify_recording

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
FILES = ("recording.hdr", "manifest.bcm", "seg-000000.bcs", "seg-000001.bcs")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, ckeys: CryptoKeys) -> Sealed:
    root = tmp_path_factory.mktemp("fuzz") / "recordings"
    return seal_recording(
        root / "20261122T181500Z-f022",
        ckeys.device,
        [ckeys.vault.public_bytes()],
        (2 * SMALL_CHUNK + 7, 30),
    )


Mutation = Callable[[bytes], bytes]


def _one_mutation() -> st.SearchStrategy[Mutation]:
    def flip(i: int, bit: int) -> Mutation:
        return lambda d: (
            d[: i % max(len(d), 1)] + bytes([d[i % len(d)] ^ (1 << bit)]) + d[i % len(d) + 1 :]
            if d
            else d
        )

    def setbyte(i: int, v: int) -> Mutation:
        return lambda d: d[: i % max(len(d), 1)] + bytes([v]) + d[i % len(d) + 1 :] if d else d

    def cut(i: int) -> Mutation:
        return lambda d: d[: i % (len(d) + 1)]

    def insert(i: int, blob: bytes) -> Mutation:
        return lambda d: d[: i % (len(d) + 1)] + blob + d[i % (len(d) + 1) :]

    def splat(i: int, blob: bytes) -> Mutation:
        return lambda d: d[: i % (len(d) + 1)] + blob + d[i % (len(d) + 1) + len(blob) :]

    i = st.integers(0, 10_000)
    return st.one_of(
        st.builds(flip, i, st.integers(0, 7)),
        st.builds(setbyte, i, st.integers(0, 255)),
        st.builds(cut, i),
        st.builds(insert, i, st.binary(min_size=1, max_size=40)),
        st.builds(splat, i, st.binary(min_size=1, max_size=40)),
    )


def _mutations() -> st.SearchStrategy[tuple[str, Mutation]]:
    return st.tuples(st.sampled_from(FILES), _one_mutation())


def _mutate(data: bytes, changes: list[Mutation]) -> bytes:
    for mutate in changes:
        data = mutate(data)
    return data


@given(
    kind=st.sampled_from(["recording.hdr", "manifest.bcm", "segment header"]),
    changes=st.lists(_one_mutation(), min_size=1, max_size=3),
)
@FUZZ
def test_parsers_on_mutated_valid_files(
    pristine: Sealed, kind: str, changes: list[Mutation]
) -> None:
    # Mutations of real files get past the magic and the version into the fields, which
    # random bytes practically never do.
    if kind == "segment header":
        segment = pristine.seg(0).read_bytes()
        original = segment[: parse_segment_header(segment, "seg-000000.bcs").header_len]
    else:
        original = (pristine.folder / kind).read_bytes()
    data = _mutate(original, changes)
    try:
        if kind == "recording.hdr":
            rec = parse_recording_header(data)
            # Every byte is accounted for: the fields, then whole recipient stanzas.
            assert 1 <= len(rec.stanzas) <= MAX_RECIPIENTS
            assert data.startswith(rec.prefix)
            assert len(rec.prefix) + len(rec.stanzas) * STANZA_SIZE == len(data)
        elif kind == "manifest.bcm":
            records = parse_manifest(data)
            assert b"".join(r.to_bytes() for r in records) == data[MANIFEST_PREFIX_SIZE:]
        else:
            seg = parse_segment_header(data, "seg-000000.bcs")
            assert seg.raw == data[: seg.header_len]
            assert MIN_CHUNK_SIZE <= seg.chunk_size <= MAX_CHUNK_SIZE
            assert len(seg.nonce_prefix) == NONCE_PREFIX_SIZE
    except FormatError:
        event(f"{kind}: refused")
        assert data != original, "a valid file was refused"
    else:
        event(f"{kind}: parsed")


@given(st.lists(_mutations(), min_size=1, max_size=3))
@FUZZ
def test_random_mutations_are_detected_with_format_errors(
    pristine: Sealed, ckeys: CryptoKeys, tmp_path: Path, changes: list[tuple[str, Mutation]]
) -> None:
    folder = tmp_path / f"case-{os.urandom(4).hex()}"
    shutil.copytree(pristine.folder, folder)
    for name, mutate in changes:
        path = folder / name
        path.write_bytes(mutate(path.read_bytes()))
    changed = any((folder / n).read_bytes() != (pristine.folder / n).read_bytes() for n in FILES)
    device = ckeys.device.public_bytes()
    try:
        verify_recording(folder, device)
        out = io.BytesIO()
        decrypt_recording(folder, ckeys.vault, device, out)
    except FormatError:
        assert changed, "a valid recording failed"
    else:
        assert not changed, "a changed recording passed"
        assert out.getvalue() == pristine.plaintext
    finally:
        shutil.rmtree(folder)


def _data_key(sealed: Sealed, ckeys: CryptoKeys) -> bytearray:
    header = parse_recording_header((sealed.folder / "recording.hdr").read_bytes())
    return unwrap_data_key(header, ckeys.vault.exchange, ckeys.vault.public_bytes())


def _read_segment(path: Path, key: bytearray) -> tuple[bytes, FormatError | None]:
    """The plaintext released before the first error, and that error (None: read fully)."""
    released = b""
    reader = SegmentReader(path, key)
    try:
        for chunk in reader.chunks():
            released += bytes(chunk)
    except FormatError as exc:
        # Sticky: the reader refuses every later read with the same error.
        with pytest.raises(FormatError) as again:
            next(iter(reader.chunks()))
        assert again.value is exc
        return released, exc
    return released, None


@given(changes=st.lists(_one_mutation(), min_size=1, max_size=3))
@FUZZ
def test_segment_reader_on_mutated_segments(
    pristine: Sealed, ckeys: CryptoKeys, tmp_path: Path, changes: list[Mutation]
) -> None:
    original = pristine.seg(0).read_bytes()
    data = _mutate(original, changes)
    path = tmp_path / f"case-{os.urandom(4).hex()}" / "seg-000000.bcs"
    path.parent.mkdir()
    path.write_bytes(data)
    try:
        released, error = _read_segment(path, _data_key(pristine, ckeys))
    except FormatError as exc:  # refused when opened: header or layout
        released, error = b"", exc
        event("refused when opened")
    if data == original:
        assert error is None and released == pristine.plaintexts[0]
        return
    assert error is not None, "a changed segment was read without an error"
    # Nothing but genuine plaintext is released before the error, whole chunks only.
    assert pristine.plaintexts[0].startswith(released)
    assert len(released) % SMALL_CHUNK == 0
    if isinstance(error, Tampered) and error.chunk is not None:
        event(f"failed in the chunk loop at chunk {error.chunk}")


@given(chunk=st.integers(0, 2), at=st.integers(0, 10_000), bit=st.integers(0, 7))
@FUZZ
def test_a_changed_chunk_fails_exactly_there(
    pristine: Sealed, ckeys: CryptoKeys, tmp_path: Path, chunk: int, at: int, bit: int
) -> None:
    original = pristine.seg(0).read_bytes()
    header_len = parse_segment_header(original, "seg-000000.bcs").header_len
    full = SMALL_CHUNK + TAG_SIZE
    start = header_len + chunk * full
    length = min(full, len(original) - start)  # the last chunk is shorter
    position = start + at % length
    data = bytearray(original)
    data[position] ^= 1 << bit
    path = tmp_path / f"case-{os.urandom(4).hex()}" / "seg-000000.bcs"
    path.parent.mkdir()
    path.write_bytes(data)
    released, error = _read_segment(path, _data_key(pristine, ckeys))
    assert isinstance(error, Tampered) and error.chunk == chunk
    assert released == pristine.plaintexts[0][: chunk * SMALL_CHUNK]


@given(
    chunk_size=st.sampled_from([64, 4096, 1 << 20]),
    body=st.binary(max_size=200),
    key=st.binary(min_size=32, max_size=32),
)
@FUZZ
def test_segment_reader_allocates_no_more_than_the_file_holds(
    tmp_path: Path, chunk_size: int, body: bytes, key: bytes
) -> None:
    # A well-formed header declaring chunks of up to 1 MiB in front of a few bytes.
    header = build_segment_header(
        "BC-1A2B3C4D", "r", 0, "video/mp2t", 0, 0.0, chunk_size, bytes(7)
    ).raw
    path = tmp_path / "seg-000000.bcs"
    path.write_bytes(header + body)
    tracemalloc.start()
    try:
        with SegmentReader(path, key) as reader:
            for _ in reader.chunks():
                pass
    except FormatError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 64 * 1024 + 4 * len(body), peak


def test_oversized_files_are_refused_without_reading_them(
    pristine: Sealed, ckeys: CryptoKeys, tmp_path: Path
) -> None:
    folder = tmp_path / "big"
    shutil.copytree(pristine.folder, folder)
    for name, limit in (("recording.hdr", REC_HEADER_MAX), ("manifest.bcm", MANIFEST_MAX_SIZE)):
        original = (folder / name).read_bytes()
        with open(folder / name, "ab") as f:
            f.truncate(limit + 10 * 1024 * 1024)  # sparse: cheap to make, huge to read
        tracemalloc.start()
        try:
            with pytest.raises(FormatError, match="larger than the format allows"):
                verify_recording(folder, ckeys.device.public_bytes())
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert peak < 1024 * 1024, (name, peak)
        (folder / name).write_bytes(original)
    # A manifest that declares the maximum entry count but holds one entry.
    man = (folder / "manifest.bcm").read_bytes()
    forged = man[:12] + struct.pack(">I", 100_003) + man[16 : 16 + 165]
    (folder / "manifest.bcm").write_bytes(forged)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError):
            verify_recording(folder, ckeys.device.public_bytes())
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 256 * 1024, peak
