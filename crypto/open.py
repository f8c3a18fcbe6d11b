"""Opening sealed recordings in the back office (needs a vault private key).

`decrypt_recording` verifies the signed manifest, unwraps the data key with the
vault key and streams every listed segment's plaintext to `out`, chunk by chunk
in constant memory. `OpenedRecording` and `SegmentReader` give the same per
segment (for viewing one segment). Readers are sticky: after the first error
every later read raises it again. On an error, what was already written to
`out` must be discarded (the CLI writes to a temporary file and renames it only
on success).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from crypto.errors import FormatError, Tampered, Truncated
from crypto.format import (
    TAG_SIZE,
    RecordingHeader,
    normal_chunk_count,
    read_segment_header,
    recovered_chunk_count,
    segment_index_of,
    segment_key,
    unwrap_data_key,
)
from crypto.keys import VaultKey
from crypto.stream import ChunkReader
from crypto.verify import (
    ManifestEntry,
    VerifiedRecording,
    open_listed_segment,
    verify_manifest,
)

log = logging.getLogger(__name__)


class SegmentReader:
    """Decrypts one sealed segment chunk by chunk.

    With `entry` (and `recording`) the file is checked against its signed
    manifest entry: size, header fields, SHA-256, and a recovered segment is
    accepted without the last-chunk flag. Without them the file is read on its
    own terms (a file cut at a chunk boundary is then Truncated; one cut inside a
    chunk cannot be told from a changed chunk and is Tampered).
    """

    def __init__(
        self,
        path: Path | str,
        data_key: bytes | bytearray,
        entry: ManifestEntry | None = None,
        recording: VerifiedRecording | RecordingHeader | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = entry.name if entry is not None else self.path.name
        self._entry = entry
        self._error: FormatError | None = None
        self._fd = -1
        self._stream: ChunkReader | None = None
        self._started = False
        try:
            if entry is not None:
                if recording is None:
                    raise ValueError("checking a manifest entry needs the recording")
                self._fd, self.header = open_listed_segment(self.path, entry, recording)
            else:
                self._fd = self._open_plain(self.path)
                self.header = read_segment_header(self._fd, self.name)
            self.size = os.fstat(self._fd).st_size
            self.recovered = bool(entry is not None and entry.recovered)
            self.chunk_count = self._layout()
            h = self.header
            self._stream = ChunkReader(
                segment_key(data_key, h), h.nonce_prefix, h.raw, h.chunk_size, self.name
            )
        except FormatError as exc:
            self._error = exc
            self._close_fd()
            raise
        except BaseException:
            self._close_fd()
            raise

    def _open_plain(self, path: Path) -> int:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise Truncated(f"{self.name} is missing") from None
        except OSError as exc:
            raise Tampered(self.name, None, f"cannot be opened ({exc.strerror})") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise Tampered(self.name, None, "not a regular file")
        return fd

    def _layout(self) -> int:
        h = self.header
        if self.recovered:
            n = recovered_chunk_count(self.size, h.header_len, h.chunk_size)
        else:
            n = normal_chunk_count(self.size, h.header_len, h.chunk_size)
        if n is not None:
            return n
        body = self.size - h.header_len
        full = h.chunk_size + TAG_SIZE
        if body % full < TAG_SIZE:
            raise Truncated(f"{self.name}: {self.size} bytes end inside a chunk's tag")
        raise Tampered(self.name, body // full, "empty chunk after the first")

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def close(self) -> None:
        self._close_fd()
        if self._stream is not None:
            self._stream.wipe()

    def __enter__(self) -> SegmentReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SegmentReader({self.name}, {getattr(self, 'chunk_count', '?')} chunks)"

    def chunks(self) -> Iterator[memoryview]:
        """Plaintext chunk by chunk; each view is valid until the next one is produced."""
        if self._error is not None:
            raise self._error
        if self._started:
            raise ValueError(f"{self.name} is already being read")
        self._started = True
        try:
            yield from self._chunks()
        except FormatError as exc:
            self._error = exc
            raise
        finally:
            self.close()

    def _chunks(self) -> Iterator[memoryview]:
        h = self.header
        full = h.chunk_size + TAG_SIZE
        body_size = self.size - h.header_len
        ct_buf = bytearray(min(full, body_size))
        pt_buf = bytearray(len(ct_buf) - TAG_SIZE)
        ct_all, pt_all = memoryview(ct_buf), memoryview(pt_buf)
        digest = hashlib.sha256(h.raw)
        offset = h.header_len
        n = self.chunk_count
        stream = self._stream
        assert stream is not None  # set by __init__, which raised otherwise
        for i in range(n):
            length = full if i < n - 1 else self.size - offset
            ct = ct_all[:length]
            got = 0
            while got < length:
                r = os.preadv(self._fd, [ct[got:]], offset + got)
                if r <= 0:
                    raise Truncated(f"{self.name} shrank while being read")
                got += r
            offset += length
            digest.update(ct)
            pt = stream.open(ct, pt_all, last=i == n - 1, recovered=self.recovered)
            if (
                i == n - 1
                and self._entry is not None
                and not hmac.compare_digest(digest.hexdigest(), self._entry.sha256)
            ):
                raise Tampered(self.name, None, "SHA-256 differs from the signed manifest")
            yield pt

    def read_all_into(self, out: BinaryIO) -> int:
        """Write the whole plaintext to `out`; returns the byte count."""
        total = 0
        for chunk in self.chunks():
            out.write(chunk)
            total += len(chunk)
        return total


class OpenedRecording:
    """A verified recording with its data key unwrapped; read segments, then close()."""

    def __init__(
        self,
        recording_dir: Path | str,
        vault_key: VaultKey,
        device_public: bytes,
        *,
        require_complete: bool = True,
    ) -> None:
        self.directory = Path(recording_dir)
        self.verified = verify_manifest(self.directory, device_public)
        vr = self.verified
        if require_complete and not vr.complete:
            raise Truncated(
                f"recording {vr.recording_id} has no end entry: it is still being recorded or "
                "was cut by a power cut and not yet recovered on the camera"
            )
        if vr.complete:
            listed = {e.name for e in vr.segments}
            for name in sorted(os.listdir(self.directory)):
                if segment_index_of(name) is not None and name not in listed:
                    raise Tampered(name, None, "segment file is not in the signed manifest")
        self._error: FormatError | None = None
        self._closed = False
        self._data_key = unwrap_data_key(vr.header, vault_key.exchange, vault_key.public_bytes())

    @property
    def segments(self) -> list[ManifestEntry]:
        return self.verified.segments

    def segment(self, entry: ManifestEntry) -> SegmentReader:
        """A reader for one listed segment, checked against its manifest entry."""
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ValueError(f"recording {self.verified.recording_id} is closed")
        try:
            return SegmentReader(self.directory / entry.name, self._data_key, entry, self.verified)
        except FormatError as exc:
            self._error = exc
            raise

    def write_segment(self, entry: ManifestEntry, out: BinaryIO) -> int:
        with self.segment(entry) as reader:
            try:
                return reader.read_all_into(out)
            except FormatError as exc:
                self._error = exc
                raise

    def write_all(self, out: BinaryIO) -> int:
        """Every listed segment's plaintext to `out`, in order."""
        return sum(self.write_segment(entry, out) for entry in self.segments)

    def close(self) -> None:
        self._closed = True
        self._data_key[:] = bytes(len(self._data_key))

    def __enter__(self) -> OpenedRecording:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenedRecording({self.verified.recording_id}, {len(self.segments)} segments)"


def decrypt_recording(
    recording_dir: Path | str,
    vault_key: VaultKey,
    device_public: bytes,
    out: BinaryIO,
    *,
    require_complete: bool = True,
) -> int:
    """Verify and decrypt a whole recording into `out`; returns plaintext bytes written.

    Raises WrongKey, Tampered, Truncated, UnknownVersion or NotSignedByDevice. A
    recording without an end entry is refused unless `require_complete=False`.
    """
    with OpenedRecording(
        recording_dir, vault_key, device_public, require_complete=require_complete
    ) as rec:
        total = rec.write_all(out)
        log.info(
            "decrypted recording %s: %d segments, %d bytes",
            rec.verified.recording_id,
            len(rec.segments),
            total,
        )
        return total
