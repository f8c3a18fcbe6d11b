"""Sealing on the camera: encrypt segments chunk by chunk and sign the manifest.

`RecordingSealer` owns one recording folder. It draws the recording's data key,
wraps it for the vault recipients in `recording.hdr` (the camera keeps no way to
unwrap it), starts the signed manifest, and hands out one `SegmentWriter` at a
time. A writer encrypts in fixed-size chunks as data arrives (`crypto.stream`;
constant memory: one chunk of plaintext and one of ciphertext), so a power cut
loses at most the chunk being written. What a power cut leaves behind is sealed
at boot by `crypto.recovery`. Layout and rules: crypto/FORMAT.md.

Not thread-safe: one recording is sealed from one thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from types import TracebackType

from Crypto.Random import get_random_bytes

from crypto.files import fsync_dir, write_all
from crypto.format import (
    DEFAULT_CHUNK_SIZE,
    HEADER_NAME,
    KIND_END,
    KIND_SEGMENT,
    KIND_START,
    MANIFEST_NAME,
    MAX_SEGMENTS,
    NONCE_PREFIX_SIZE,
    PART_SUFFIX,
    RandomSource,
    SegmentHeader,
    build_recording_header,
    build_segment_header,
    check_chunk_size,
    check_text,
    segment_key,
    segment_name,
)
from crypto.keys import KEY_SIZE, SigningKey, check_x25519_public
from crypto.manifest import ManifestWriter, SealedSegmentInfo, SealerStateError
from crypto.recovery import RecoveryReport, recover_recording, recover_recordings, salvage_part
from crypto.sealed_files import write_atomic
from crypto.stream import ChunkWriter

__all__ = [
    # Recovery lives in crypto.recovery; these names stay importable from here for callers
    # that seal and recover side by side.
    "RecordingSealer",
    "RecoveryReport",
    "SealedSegmentInfo",
    "SealerStateError",
    "SegmentWriter",
    "recover_recording",
    "recover_recordings",
]

log = logging.getLogger(__name__)


class SegmentWriter:
    """Encrypts one segment chunk by chunk into `<name>.part`; `close()` seals it.

    Use as a context manager: a clean exit closes (seals) the segment, an
    exception aborts it, which seals the chunks already written as a recovered
    segment. Errors are sticky: after one failed write every call raises.
    """

    def __init__(self, sealer: RecordingSealer, header: SegmentHeader, key: bytearray) -> None:
        self._sealer = sealer
        self.header = header
        self.index = header.index
        self.name = segment_name(header.index)
        self.path = sealer.directory / self.name
        self.part_path = sealer.directory / (self.name + PART_SUFFIX)
        self._key = key  # the stream encrypts with this buffer and overwrites it on wipe
        self._stream = ChunkWriter(
            key, header.nonce_prefix, header.raw, header.chunk_size, self._write
        )
        self._size = 0
        self._hash = hashlib.sha256()
        self._error: BaseException | None = None
        self._done = False
        self._fd = os.open(
            self.part_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644
        )
        try:
            self._write(header.raw)
        except BaseException as exc:
            self._fail(exc)
            raise

    @property
    def plaintext_bytes(self) -> int:
        """Plaintext accepted so far (including what still waits for its chunk to fill)."""
        return self._stream.plaintext_bytes

    @property
    def sealed_bytes(self) -> int:
        """Bytes of the `.part` file written so far (header and whole chunks)."""
        return self._size

    def _check(self) -> None:
        if self._error is not None:
            raise SealerStateError(
                f"{self.name}: an earlier write failed ({self._error}); abort() the segment"
            ) from self._error
        if self._done:
            raise SealerStateError(f"{self.name} is already closed")

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._stream.fail(exc)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        write_all(self._fd, data)
        self._hash.update(data)
        self._size += len(data)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and append `data`; whole chunks go to the file before this returns.

        A chunk is written once more data follows it, so the final chunk can carry
        the last-chunk flag; at most `chunk_size` bytes wait in memory.
        """
        if self._error is not None or self._done:
            self._check()
        try:
            self._stream.write(data)
        except BaseException as exc:
            self._fail(exc)
            raise

    def close(self) -> SealedSegmentInfo:
        """Seal: last chunk, fsync, rename to the final name, fsync the folder, sign."""
        self._check()
        try:
            chunks = self._stream.close()
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            if self.path.exists():
                raise FileExistsError(f"{self.path} already exists; not replacing a sealed segment")
            os.rename(self.part_path, self.path)
            fsync_dir(self._sealer.directory)
        except BaseException as exc:
            self._fail(exc)
            raise
        self._done = True
        self._wipe()
        info = SealedSegmentInfo(self.name, self.path, self._hash.hexdigest(), self._size, chunks)
        self._sealer._segment_closed(self, info)
        return info

    def abort(self) -> SealedSegmentInfo | None:
        """Stop this segment; seal the whole chunks already on disk as a recovered segment.

        Returns the recovered segment, or None when no whole chunk was written (the
        `.part` file is then removed). Used after a write error or by the context
        manager on an exception.
        """
        if self._done:
            return None
        self._done = True
        self._wipe()
        if self._fd >= 0:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = -1
        return self._sealer._segment_aborted(self)

    def _abandon(self) -> None:
        """Drop the segment as a power cut would: the `.part` keeps what reached the file."""
        self._done = True
        self._wipe()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _wipe(self) -> None:
        self._stream.wipe()

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._done:
            return
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        return f"SegmentWriter({self.name}, {self._stream.chunks} chunks written)"


class RecordingSealer:
    """Seals one recording into `recording_dir` (see module docstring and FORMAT.md).

    The data key exists only inside this object and is overwritten by `finish()`
    (or `wipe()`); the camera never holds a vault private key.
    """

    def __init__(
        self,
        recording_dir: Path,
        device_id: str,
        recording_id: str,
        signer: SigningKey,
        vault_recipients: list[bytes],
        started_utc: float,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        *,
        rng: RandomSource | None = None,
    ) -> None:
        self.directory = Path(recording_dir)
        self.device_id = device_id
        self.recording_id = recording_id
        check_text(device_id, "device id")
        check_text(recording_id, "recording id")
        self.chunk_size = check_chunk_size(chunk_size)
        recipients = [check_x25519_public(bytes(r), "vault recipient") for r in vault_recipients]
        self._rng: RandomSource = rng or get_random_bytes
        self._signer = signer
        self._open: SegmentWriter | None = None
        self._state = "recording"
        self.next_index: int | None = None  # the first segment may take any index
        self.segments: list[SealedSegmentInfo] = []
        self._data_key = bytearray(self._rng(KEY_SIZE))
        try:
            header = build_recording_header(
                device_id, recording_id, started_utc, recipients, self._data_key, self._rng
            )
            self.directory.mkdir(parents=True, exist_ok=True)
            for name in (HEADER_NAME, MANIFEST_NAME):
                if (self.directory / name).exists():
                    raise FileExistsError(
                        f"{self.directory / name} exists: recording {recording_id} was "
                        "already started; use a new recording id"
                    )
            write_atomic(self.directory / HEADER_NAME, header)
            self._manifest = ManifestWriter(self.directory, signer, [], bytes(32))
            self._manifest.append(
                KIND_START,
                size=len(header),
                utc=started_utc,
                digest=hashlib.sha256(header).digest(),
            )
        except BaseException:
            self.wipe()
            raise
        log.info(
            "recording %s sealing into %s for %d vault recipient(s)",
            recording_id,
            self.directory,
            len(recipients),
        )

    @property
    def finished(self) -> bool:
        return self._state != "recording"

    def _check_recording(self) -> None:
        if self._state != "recording":
            raise SealerStateError(f"recording {self.recording_id} is {self._state}")

    def begin_segment(
        self, index: int, media_type: str, start_pts: int, start_utc: float
    ) -> SegmentWriter:
        """Start segment `index` (the next one after the last sealed; the first is free)."""
        self._check_recording()
        if self._open is not None:
            raise SealerStateError(f"{self._open.name} is still open: close() it first")
        if self.next_index is not None and index != self.next_index:
            raise ValueError(
                f"segment index {index} out of order: recording {self.recording_id} "
                f"expects {self.next_index}"
            )
        if not 0 <= index < MAX_SEGMENTS:
            raise ValueError(f"segment index {index} out of range 0..{MAX_SEGMENTS - 1}")
        header = build_segment_header(
            self.device_id,
            self.recording_id,
            index,
            media_type,
            start_pts,
            start_utc,
            self.chunk_size,
            self._rng(NONCE_PREFIX_SIZE),
        )
        key = bytearray(segment_key(self._data_key, header))
        if (self.directory / segment_name(index)).exists():
            raise FileExistsError(f"{self.directory / segment_name(index)} already exists")
        self._open = SegmentWriter(self, header, key)
        return self._open

    def _segment_closed(self, writer: SegmentWriter, info: SealedSegmentInfo) -> None:
        self._open = None
        h = writer.header
        self._manifest.append(
            KIND_SEGMENT,
            h.index,
            info.chunks,
            info.size,
            h.start_pts,
            h.start_utc,
            bytes.fromhex(info.sha256),
        )
        self.next_index = h.index + 1
        self.segments.append(info)
        log.debug("sealed %s: %d bytes, %d chunks", info.name, info.size, info.chunks)

    def _segment_aborted(self, writer: SegmentWriter) -> SealedSegmentInfo | None:
        self._open = None
        outcome = salvage_part(self.directory, writer.part_path, writer.header, self._manifest)
        if isinstance(outcome, SealedSegmentInfo):
            self.next_index = writer.index + 1
            self.segments.append(outcome)
            return outcome
        return None

    def finish(self, ended_utc: float) -> None:
        """Sign the END entry and overwrite the data key."""
        self._check_recording()
        if self._open is not None:
            raise SealerStateError(f"{self._open.name} is still open: close() it first")
        try:
            self._manifest.append(KIND_END, index=len(self.segments), utc=ended_utc)
        finally:
            self.wipe()
        self._state = "finished"
        log.info("recording %s finished: %d segments", self.recording_id, len(self.segments))

    def abandon(self) -> None:
        """Stop here as a power cut would, for fault paths and simulation.

        The open segment's `.part` keeps the whole chunks already written (what
        waited in memory is lost), no END is signed and the data key is wiped;
        `recover_recordings` seals the leftovers at the next boot.
        """
        if self._open is not None:
            self._open._abandon()
            self._open = None
        self.wipe()
        if self._state == "wiped":
            self._state = "abandoned"

    def wipe(self) -> None:
        """Overwrite the data key without an END entry (fault path; recovery closes it).

        Copies Python or pycryptodome made internally cannot be scrubbed; the
        buffers this object owns are.
        """
        self._data_key[:] = bytes(len(self._data_key))
        if self._open is not None:
            self._open._wipe()
        if self._state == "recording":
            self._state = "wiped"

    def __repr__(self) -> str:
        return f"RecordingSealer({self.recording_id}, {len(self.segments)} segments, {self._state})"
