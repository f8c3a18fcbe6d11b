"""The chunk stream inside a sealed segment: STREAM over AES-256-GCM, like age's `stream`.

A `ChunkWriter` cuts a byte stream into chunks of `chunk_size` bytes and seals each one;
a `ChunkReader` opens them again in order. Chunk ``i`` is sealed under

    nonce = nonce_prefix (7 bytes) || u32(i) || flag (0x01 for the last chunk, else 0x00)

with the segment header as associated data, so a chunk that is changed, reordered,
dropped, moved to another segment, or a stream cut at a chunk boundary fails to open.

Both are sticky: once a chunk fails (or the sink fails), every later call raises the same
error, so a caller cannot read past a bad chunk or keep writing after a lost one.

This module sees only bytes. Files, hashes, layout checks, the manifest and recovery belong
to `crypto.seal`, `crypto.open` and `crypto.recovery`. Spec: crypto/FORMAT.md, "Body: chunks".
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from crypto.errors import FormatError, Tampered, Truncated
from crypto.format import MAX_CHUNKS, NONCE_PREFIX_SIZE, TAG_SIZE, chunk_nonce
from crypto.gcm import ChunkGcm

log = logging.getLogger(__name__)

Buffer = bytes | bytearray | memoryview


class StreamStateError(RuntimeError):
    """A chunk writer was used after it failed or after `close()`."""


def _check_prefix(nonce_prefix: bytes) -> bytes:
    if len(nonce_prefix) != NONCE_PREFIX_SIZE:
        raise ValueError(f"nonce prefix must be {NONCE_PREFIX_SIZE} bytes, got {len(nonce_prefix)}")
    return bytes(nonce_prefix)


class ChunkWriter:
    """Encrypts a byte stream chunk by chunk and hands each sealed chunk to `sink`.

    A chunk goes to the sink once more data follows it, so the final one can carry the
    last-chunk flag; at most `chunk_size` bytes wait in memory. `close()` seals the final
    chunk (empty when nothing was written).
    """

    def __init__(
        self,
        key: bytearray,
        nonce_prefix: bytes,
        associated_data: bytes,
        chunk_size: int,
        sink: Callable[[memoryview], None],
    ) -> None:
        self._key = key  # the caller's buffer: wipe() overwrites it
        self._prefix = _check_prefix(nonce_prefix)
        self._aad = bytes(associated_data)
        self._chunk_size = chunk_size
        self._sink = sink
        self._pending = bytearray(chunk_size)
        self._pending_len = 0
        self._out = bytearray(chunk_size + TAG_SIZE)
        # One GCM cipher per chunk, public API only (crypto/gcm.py).
        self._gcm = ChunkGcm(key, self._aad, chunk_size)
        self._error: BaseException | None = None
        self._closed = False
        self.chunks = 0  # sealed chunks handed to the sink
        self.plaintext_bytes = 0  # accepted, including what waits for its chunk to fill

    def _check(self) -> None:
        if self._error is not None:
            raise StreamStateError(
                f"an earlier chunk failed ({self._error}); the stream cannot continue"
            ) from self._error
        if self._closed:
            raise StreamStateError("the chunk stream is already closed")

    def _seal(self, plaintext: memoryview | bytearray, last: bool) -> None:
        if self.chunks >= MAX_CHUNKS:
            raise ValueError(f"more than {MAX_CHUNKS} chunks; start a new segment")
        n = len(plaintext)
        out = memoryview(self._out)
        out[n : n + TAG_SIZE] = self._gcm.encrypt(
            chunk_nonce(self._prefix, self.chunks, last), plaintext, out
        )
        self._sink(out[: n + TAG_SIZE])
        self.chunks += 1

    def write(self, data: Buffer) -> None:
        """Encrypt `data`; every chunk that more data follows reaches the sink now."""
        # The muxer's writes are a few hundred bytes: most only join the chunk being
        # filled, so that case is one copy and no more (no view, no loop).
        kind = type(data)
        if (
            self._error is None
            and not self._closed
            and (
                kind is bytes
                or kind is bytearray
                or (kind is memoryview and data.ndim == 1 and data.itemsize == 1)  # type: ignore[union-attr]
            )
            and self._pending_len + len(data) < self._chunk_size
        ):
            pending = self._pending_len
            self._pending[pending : pending + len(data)] = data
            self._pending_len = pending + len(data)
            self.plaintext_bytes += len(data)
            return
        self._check()
        view = memoryview(data).cast("B")
        size = len(view)
        cs = self._chunk_size
        pos = 0
        try:
            while pos < size:
                if self._pending_len == cs:
                    self._seal(self._pending, last=False)
                    self._pending_len = 0
                if self._pending_len == 0 and size - pos > cs:
                    # Straight from the caller's buffer: more data follows this chunk.
                    self._seal(view[pos : pos + cs], last=False)
                    pos += cs
                    continue
                take = min(cs - self._pending_len, size - pos)
                self._pending[self._pending_len : self._pending_len + take] = view[pos : pos + take]
                self._pending_len += take
                pos += take
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self.plaintext_bytes += pos

    def close(self) -> int:
        """Seal the final chunk with the last-chunk flag; returns the number of chunks."""
        self._check()
        try:
            self._seal(memoryview(self._pending)[: self._pending_len], last=True)
        except BaseException as exc:
            self._error = exc
            raise
        self._closed = True
        return self.chunks

    def fail(self, exc: BaseException) -> None:
        """Mark the stream failed by an error outside it (the file under the sink)."""
        if self._error is None:
            self._error = exc

    def wipe(self) -> None:
        """Overwrite the key and the plaintext and ciphertext buffers."""
        for buf in (self._key, self._pending, self._out):
            buf[:] = bytes(len(buf))
        self._gcm.wipe()


class ChunkReader:
    """Opens the chunks of one stream in order (chunk 0 first), into the caller's buffer.

    `name` is the file the chunks come from, for the errors: Tampered(name, chunk) for a
    chunk that does not authenticate, Truncated for a stream cut at a chunk boundary.
    """

    def __init__(
        self,
        key: bytes | bytearray,
        nonce_prefix: bytes,
        associated_data: bytes,
        chunk_size: int,
        name: str,
    ) -> None:
        self._key = bytearray(key)
        self._prefix = _check_prefix(nonce_prefix)
        self._aad = bytes(associated_data)
        self._chunk_size = chunk_size
        self._gcm = ChunkGcm(self._key, self._aad, chunk_size)
        self.name = name
        self._error: FormatError | None = None
        self.chunks = 0  # chunks opened so far

    def _opens(self, ciphertext: memoryview, out: memoryview, last: bool) -> bool:
        body, tag = ciphertext[:-TAG_SIZE], ciphertext[-TAG_SIZE:]
        return self._gcm.decrypt(chunk_nonce(self._prefix, self.chunks, last), body, tag, out)

    def open(
        self, ciphertext: memoryview, out: memoryview, *, last: bool, recovered: bool = False
    ) -> memoryview:
        """Authenticate and decrypt the next chunk into `out`; returns its plaintext.

        `last`: no chunk follows this one. In a recovered stream (whole chunks kept after
        a power cut) chunks carry no last-chunk flag, except that the final one may.
        """
        if self._error is not None:
            raise self._error
        i = self.chunks
        try:
            if i >= MAX_CHUNKS:
                raise Tampered(self.name, i, f"more than {MAX_CHUNKS} chunks")
            if not TAG_SIZE <= len(ciphertext) <= self._chunk_size + TAG_SIZE:
                raise Tampered(self.name, i, f"a chunk of {len(ciphertext)} bytes")
            if len(out) < len(ciphertext) - TAG_SIZE:
                raise ValueError(f"output buffer of {len(out)} bytes is too small")
            if recovered:
                ok = self._opens(ciphertext, out, False) or (
                    last and self._opens(ciphertext, out, True)
                )
            else:
                ok = self._opens(ciphertext, out, last)
                full = len(ciphertext) == self._chunk_size + TAG_SIZE
                if not ok and last and full and self._opens(ciphertext, out, False):
                    raise Truncated(
                        f"{self.name}: ends after chunk {i} without the last-chunk flag "
                        "(cut at a chunk boundary)"
                    )
            if not ok:
                raise Tampered(self.name, i, "chunk does not authenticate")
        except FormatError as exc:
            self.fail(exc)
            raise
        self.chunks += 1
        return out[: len(ciphertext) - TAG_SIZE]

    def fail(self, exc: FormatError) -> None:
        """Make `exc` the stream's error: this and every later `open()` raise it."""
        if self._error is None:
            self._error = exc
            self.wipe()

    def wipe(self) -> None:
        """Overwrite the key; the reader cannot open anything afterwards."""
        self._key[:] = bytes(len(self._key))
        self._gcm.wipe()
