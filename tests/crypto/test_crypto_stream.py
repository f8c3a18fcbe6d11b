"""The chunk stream (crypto.stream): STREAM nonces checked with the independent
`cryptography` package, round trips at the chunk boundaries, and sticky errors."""

from __future__ import annotations

import struct

import pytest
from crypto_support import pattern
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crypto.errors import Tampered, Truncated
from crypto.format import TAG_SIZE
from crypto.stream import ChunkReader, ChunkWriter, StreamStateError

KEY = bytes(range(32))
PREFIX = b"\x07" * 7
AAD = b"segment header bytes"
CS = 64


def seal(data: bytes, pieces: int = 3) -> list[bytes]:
    chunks: list[bytes] = []
    writer = ChunkWriter(bytearray(KEY), PREFIX, AAD, CS, lambda c: chunks.append(bytes(c)))
    step = max(1, len(data) // pieces)
    for at in range(0, len(data), step):  # in pieces that do not follow the chunk size
        writer.write(data[at : at + step])
    assert writer.close() == len(chunks)
    assert writer.plaintext_bytes == len(data)
    return chunks


def open_all(chunks: list[bytes], reader: ChunkReader | None = None) -> bytes:
    reader = reader or ChunkReader(KEY, PREFIX, AAD, CS, "seg-000000.bcs")
    out = memoryview(bytearray(CS))
    plain = b""
    for i, chunk in enumerate(chunks):
        plain += bytes(reader.open(memoryview(chunk), out, last=i == len(chunks) - 1))
    return plain


@pytest.mark.parametrize("size", [0, 1, CS - 1, CS, CS + 1, 3 * CS, 3 * CS + 5])
def test_round_trip_and_the_nonces_are_prefix_counter_flag(size: int) -> None:
    data = pattern("stream", size)
    chunks = seal(data)
    assert len(chunks) == max(1, -(-size // CS))  # an empty stream is one empty chunk
    assert all(len(c) == CS + TAG_SIZE for c in chunks[:-1])
    assert open_all(chunks) == data
    # The same chunks opened by another AES-GCM implementation with the spec's nonces.
    aead = AESGCM(KEY)
    independent = b""
    for i, chunk in enumerate(chunks):
        flag = b"\x01" if i == len(chunks) - 1 else b"\x00"
        independent += aead.decrypt(PREFIX + struct.pack(">I", i) + flag, chunk, AAD)
    assert independent == data


def test_reordered_dropped_and_cut_streams_fail() -> None:
    chunks = seal(pattern("order", 3 * CS + 9))
    with pytest.raises(Tampered) as swapped:
        open_all([chunks[1], chunks[0], *chunks[2:]])
    assert swapped.value.chunk == 0
    with pytest.raises(Tampered) as dropped:
        open_all([chunks[0], *chunks[2:]])
    assert dropped.value.chunk == 1
    with pytest.raises(Truncated, match="cut at a chunk boundary"):
        open_all(chunks[:2])  # full chunks only: the last one has no last-chunk flag
    with pytest.raises(Tampered, match="bytes"):
        open_all([chunks[0][: TAG_SIZE - 1]])


def test_a_recovered_stream_opens_without_the_last_flag() -> None:
    chunks = seal(pattern("recovered", 3 * CS + 9))
    reader = ChunkReader(KEY, PREFIX, AAD, CS, "seg-000000.bcs")
    out = memoryview(bytearray(CS))
    got = [
        bytes(reader.open(memoryview(c), out, last=i == 1, recovered=True))
        for i, c in enumerate(chunks[:2])
    ]
    assert b"".join(got) == pattern("recovered", 2 * CS)


def test_reader_errors_are_sticky() -> None:
    chunks = seal(pattern("sticky", 3 * CS + 1))
    bad = bytearray(chunks[1])
    bad[5] ^= 1
    reader = ChunkReader(KEY, PREFIX, AAD, CS, "seg-000000.bcs")
    out = memoryview(bytearray(CS))
    reader.open(memoryview(chunks[0]), out, last=False)
    with pytest.raises(Tampered) as first:
        reader.open(memoryview(bytes(bad)), out, last=False)
    # The genuine chunk 1, then chunk 2: both refused with the same error.
    for chunk in (chunks[1], chunks[2]):
        with pytest.raises(Tampered) as again:
            reader.open(memoryview(chunk), out, last=False)
        assert again.value is first.value
    assert reader.chunks == 1


def test_writer_errors_are_sticky_and_the_key_is_wiped() -> None:
    written: list[bytes] = []

    def sink(chunk: memoryview) -> None:
        if len(written) == 1:
            raise OSError(28, "No space left on device")
        written.append(bytes(chunk))

    key = bytearray(KEY)
    writer = ChunkWriter(key, PREFIX, AAD, CS, sink)
    with pytest.raises(OSError, match="No space"):
        writer.write(pattern("full", 4 * CS))
    for call in (lambda: writer.write(b"more"), writer.close):
        with pytest.raises(StreamStateError, match="No space"):
            call()
    assert len(written) == 1 and writer.chunks == 1
    writer.wipe()
    assert not any(key)


def test_a_closed_writer_refuses_more() -> None:
    writer = ChunkWriter(bytearray(KEY), PREFIX, AAD, CS, lambda c: None)
    writer.write(b"abc")
    assert writer.close() == 1
    with pytest.raises(StreamStateError, match="closed"):
        writer.write(b"d")


def test_a_tampered_chunk_puts_none_of_its_plaintext_in_the_callers_buffer() -> None:
    chunks = seal(pattern("forged", 3 * CS))
    forged = bytearray(chunks[1])
    forged[5] ^= 0x40  # the plaintext byte it decrypts to changes; the tag no longer fits
    reader = ChunkReader(KEY, PREFIX, AAD, CS, "seg-000000.bcs")
    out = memoryview(bytearray(CS))
    reader.open(memoryview(chunks[0]), out, last=False)
    out[:] = b"\xee" * CS
    with pytest.raises(Tampered):
        reader.open(memoryview(bytes(forged)), out, last=False)
    assert bytes(out) == b"\xee" * CS
