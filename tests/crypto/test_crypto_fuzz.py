"""Fuzzing: random bytes and random mutations only ever raise the format's own errors,
every change to any file is detected, and parsers allocate within the declared bounds."""

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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.errors import FormatError
from crypto.format import (
    MANIFEST_MAX_SIZE,
    REC_HEADER_MAX,
    build_segment_header,
    parse_manifest,
    parse_recording_header,
    parse_segment_header,
)
from crypto.open import SegmentReader, decrypt_recording
from crypto.verify import verify_recording

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
FILES = ("recording.hdr", "manifest.bcm", "seg-000000.bcs", "seg-000001.bcs")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, ckeys: CryptoKeys) -> Sealed:
    root = tmp_path_factory.mktemp("fuzz") / "recordings"
    return seal_recording(root / "20261122T181500Z-f022", ckeys.device,
                          [ckeys.vault.public_bytes()], (2 * SMALL_CHUNK + 7, 30))


@given(st.binary(max_size=600))
@FUZZ
def test_parsers_on_random_bytes(data: bytes) -> None:
    for parse in (parse_recording_header, parse_manifest,
                  lambda b: parse_segment_header(b, "seg-000000.bcs")):
        try:
            parse(data)
        except FormatError:
            pass


@given(prefix=st.sampled_from([b"BCAMREC\n\x00\x01", b"BCAMSEG\n\x00\x01", b"BCAMMAN\n\x00\x01"]),
       rest=st.binary(max_size=400))
@FUZZ
def test_parsers_on_random_bytes_after_a_valid_magic(prefix: bytes, rest: bytes) -> None:
    test_parsers_on_random_bytes.hypothesis.inner_test(prefix + rest)  # type: ignore[attr-defined]


Mutation = Callable[[bytes], bytes]


def _mutations() -> st.SearchStrategy[tuple[str, Mutation]]:
    def flip(i: int, bit: int) -> Mutation:
        return lambda d: d[: i % max(len(d), 1)] + bytes([d[i % len(d)] ^ (1 << bit)]) \
            + d[i % len(d) + 1 :] if d else d

    def setbyte(i: int, v: int) -> Mutation:
        return lambda d: d[: i % max(len(d), 1)] + bytes([v]) + d[i % len(d) + 1 :] if d else d

    def cut(i: int) -> Mutation:
        return lambda d: d[: i % (len(d) + 1)]

    def insert(i: int, blob: bytes) -> Mutation:
        return lambda d: d[: i % (len(d) + 1)] + blob + d[i % (len(d) + 1) :]

    def splat(i: int, blob: bytes) -> Mutation:
        return lambda d: d[: i % (len(d) + 1)] + blob + d[i % (len(d) + 1) + len(blob) :]

    i = st.integers(0, 10_000)
    one = st.one_of(
        st.builds(flip, i, st.integers(0, 7)),
        st.builds(setbyte, i, st.integers(0, 255)),
        st.builds(cut, i),
        st.builds(insert, i, st.binary(min_size=1, max_size=40)),
        st.builds(splat, i, st.binary(min_size=1, max_size=40)),
    )
    return st.tuples(st.sampled_from(FILES), one)


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


@given(st.binary(max_size=3000), st.binary(min_size=32, max_size=32))
@FUZZ
def test_segment_reader_on_random_files(tmp_path: Path, data: bytes, key: bytes) -> None:
    path = tmp_path / "seg-000000.bcs"
    path.write_bytes(data)
    try:
        with SegmentReader(path, key) as reader:
            for _ in reader.chunks():
                pass
    except FormatError:
        pass


@given(chunk_size=st.sampled_from([64, 4096, 1 << 20]), body=st.binary(max_size=200),
       key=st.binary(min_size=32, max_size=32))
@FUZZ
def test_segment_reader_allocates_no_more_than_the_file_holds(
    tmp_path: Path, chunk_size: int, body: bytes, key: bytes
) -> None:
    # A well-formed header declaring chunks of up to 1 MiB in front of a few bytes.
    header = build_segment_header("BC-1A2B3C4D", "r", 0, "video/mp2t", 0, 0.0, chunk_size,
                                  bytes(7)).raw
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
