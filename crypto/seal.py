"""Sealing on the camera: encrypt segments chunk by chunk and sign the manifest.

`RecordingSealer` owns one recording folder. It draws the recording's data key,
wraps it for the vault recipients in `recording.hdr` (the camera keeps no way to
unwrap it), starts the signed manifest, and hands out one `SegmentWriter` at a
time. A writer encrypts in fixed-size chunks as data arrives (constant memory:
one chunk of plaintext and one of ciphertext), so a power cut loses at most the
chunk being written. `recover_recordings` runs on boot and seals what a power
cut left behind. Layout and rules: crypto/FORMAT.md.

Not thread-safe: one recording is sealed from one thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from Crypto.Cipher import AES
from Crypto.Random import get_random_bytes

from crypto.errors import FormatError, Truncated
from crypto.files import fsync_dir, write_all
from crypto.format import (
    DEFAULT_CHUNK_SIZE,
    HEADER_NAME,
    KEY_SIZE,
    KIND_END,
    KIND_RECOVERED_END,
    KIND_RECOVERED_SEGMENT,
    KIND_SEGMENT,
    KIND_START,
    MANIFEST_NAME,
    MAX_CHUNKS,
    MAX_ENTRIES,
    MAX_SEGMENTS,
    NONCE_PREFIX_SIZE,
    PART_SUFFIX,
    TAG_SIZE,
    ManifestRecord,
    RandomSource,
    SegmentHeader,
    build_recording_header,
    build_segment_header,
    check_chunk_size,
    check_text,
    chunk_nonce,
    entry_body,
    entry_message,
    manifest_bytes,
    normal_chunk_count,
    part_index_of,
    read_segment_header,
    segment_index_of,
    segment_key,
    segment_name,
    write_atomic,
)
from crypto.keys import SigningKey, check_x25519_public
from crypto.verify import check_manifest, load_header_bytes, load_manifest_records

log = logging.getLogger(__name__)


class SealedSegmentInfo(NamedTuple):
    """A segment that is sealed, renamed to its final name and signed into the manifest."""

    name: str
    path: Path
    sha256: str  # lowercase hex of the whole sealed file
    size: int
    chunks: int


class SealerStateError(RuntimeError):
    """The sealer was used out of order (segment still open, recording already finished)."""


class _ManifestWriter:
    """Appends signed entries and rewrites `manifest.bcm` atomically after each one."""

    def __init__(self, directory: Path, signer: SigningKey, entries: list[bytes],
                 prev: bytes) -> None:
        self.directory = directory
        self.signer = signer
        self.entries = entries
        self.prev = prev

    @classmethod
    def resume(cls, directory: Path, signer: SigningKey,
               records: list[ManifestRecord]) -> _ManifestWriter:
        return cls(directory, signer, [r.to_bytes() for r in records], records[-1].link)

    def append(self, kind: int, index: int = 0, chunks: int = 0, size: int = 0,
               start_pts: int = 0, utc: float = 0.0, digest: bytes = bytes(32)) -> None:
        if len(self.entries) >= MAX_ENTRIES:
            raise SealerStateError(f"manifest is full ({MAX_ENTRIES} entries)")
        body = entry_body(kind, len(self.entries), index, chunks, size, start_pts, utc,
                          digest, self.prev)
        signature = self.signer.sign(entry_message(body))
        write_atomic(self.directory / MANIFEST_NAME,
                     manifest_bytes([*self.entries, body + signature]))
        # Only a manifest that reached the disk advances the chain.
        self.entries.append(body + signature)
        self.prev = hashlib.sha256(body).digest()


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
        self._key = key
        cs = header.chunk_size
        self._chunk_size = cs
        self._pending = bytearray(cs)
        self._pending_len = 0
        self._out = bytearray(cs + TAG_SIZE)
        self._counter = 0
        self._size = 0
        self._plain = 0
        self._hash = hashlib.sha256()
        self._error: BaseException | None = None
        self._done = False
        self._fd = os.open(self.part_path,
                           os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            self._write(header.raw)
        except BaseException as exc:
            self._fail(exc)
            raise

    @property
    def plaintext_bytes(self) -> int:
        """Plaintext accepted so far (including what still waits for its chunk to fill)."""
        return self._plain

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
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        write_all(self._fd, data)
        self._hash.update(data)
        self._size += len(data)

    def _emit(self, plaintext: memoryview | bytearray, last: bool) -> None:
        if self._counter >= MAX_CHUNKS:
            raise ValueError(f"{self.name}: more than 2^32 chunks; start a new segment")
        cipher = AES.new(self._key, AES.MODE_GCM,
                         nonce=chunk_nonce(self.header.nonce_prefix, self._counter, last),
                         mac_len=TAG_SIZE)
        cipher.update(self.header.raw)
        n = len(plaintext)
        out = memoryview(self._out)
        cipher.encrypt(plaintext, output=out[:n])
        out[n : n + TAG_SIZE] = cipher.digest()
        self._write(out[: n + TAG_SIZE])
        self._counter += 1

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and append `data`; whole chunks go to the file before this returns.

        A chunk is written once more data follows it, so the final chunk can carry
        the last-chunk flag; at most `chunk_size` bytes wait in memory.
        """
        self._check()
        view = memoryview(data).cast("B")
        n = len(view)
        pos = 0
        cs = self._chunk_size
        try:
            while pos < n:
                if self._pending_len == cs:
                    self._emit(self._pending, last=False)
                    self._pending_len = 0
                if self._pending_len == 0 and n - pos > cs:
                    # Straight from the caller's buffer: more data follows this chunk.
                    self._emit(view[pos : pos + cs], last=False)
                    pos += cs
                    continue
                take = min(cs - self._pending_len, n - pos)
                self._pending[self._pending_len : self._pending_len + take] = view[pos : pos + take]
                self._pending_len += take
                pos += take
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            self._plain += pos

    def close(self) -> SealedSegmentInfo:
        """Seal: last chunk, fsync, rename to the final name, fsync the folder, sign."""
        self._check()
        try:
            self._emit(memoryview(self._pending)[: self._pending_len], last=True)
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            if self.path.exists():
                raise FileExistsError(f"{self.path} already exists; not replacing a sealed "
                                      "segment")
            os.rename(self.part_path, self.path)
            fsync_dir(self._sealer.directory)
        except BaseException as exc:
            self._fail(exc)
            raise
        self._done = True
        self._wipe()
        info = SealedSegmentInfo(self.name, self.path, self._hash.hexdigest(), self._size,
                                 self._counter)
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
        for buf in (self._key, self._pending, self._out):
            buf[:] = bytes(len(buf))

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._done:
            return
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        return f"SegmentWriter({self.name}, {self._counter} chunks written)"


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
            header = build_recording_header(device_id, recording_id, started_utc, recipients,
                                             self._data_key, self._rng)
            self.directory.mkdir(parents=True, exist_ok=True)
            for name in (HEADER_NAME, MANIFEST_NAME):
                if (self.directory / name).exists():
                    raise FileExistsError(
                        f"{self.directory / name} exists: recording {recording_id} was "
                        "already started; use a new recording id"
                    )
            write_atomic(self.directory / HEADER_NAME, header)
            self._manifest = _ManifestWriter(self.directory, signer, [], bytes(32))
            self._manifest.append(KIND_START, size=len(header), utc=started_utc,
                                  digest=hashlib.sha256(header).digest())
        except BaseException:
            self.wipe()
            raise
        log.info("recording %s sealing into %s for %d vault recipient(s)", recording_id,
                 self.directory, len(recipients))

    @property
    def finished(self) -> bool:
        return self._state != "recording"

    def _check_recording(self) -> None:
        if self._state != "recording":
            raise SealerStateError(f"recording {self.recording_id} is {self._state}")

    def begin_segment(self, index: int, media_type: str, start_pts: int,
                      start_utc: float) -> SegmentWriter:
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
            self.device_id, self.recording_id, index, media_type, start_pts, start_utc,
            self.chunk_size, self._rng(NONCE_PREFIX_SIZE),
        )
        key = bytearray(segment_key(self._data_key, header))
        if (self.directory / segment_name(index)).exists():
            raise FileExistsError(f"{self.directory / segment_name(index)} already exists")
        self._open = SegmentWriter(self, header, key)
        return self._open

    def _segment_closed(self, writer: SegmentWriter, info: SealedSegmentInfo) -> None:
        self._open = None
        h = writer.header
        self._manifest.append(KIND_SEGMENT, h.index, info.chunks, info.size, h.start_pts,
                              h.start_utc, bytes.fromhex(info.sha256))
        self.next_index = h.index + 1
        self.segments.append(info)
        log.debug("sealed %s: %d bytes, %d chunks", info.name, info.size, info.chunks)

    def _segment_aborted(self, writer: SegmentWriter) -> SealedSegmentInfo | None:
        self._open = None
        outcome = _salvage_part(self.directory, writer.part_path, writer.header, self._manifest)
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
        return f"RecordingSealer({self.recording_id}, {len(self.segments)} segments, " \
               f"{self._state})"


# --- power-cut recovery -----------------------------------------------------------------


@dataclass
class RecoveryReport:
    """What recovery did to one recording folder (and what it left alone)."""

    recording_id: str
    path: Path
    recovered_segments: list[tuple[str, int]] = field(default_factory=list)  # (name, chunks)
    restored_segments: list[str] = field(default_factory=list)  # complete, entry was missing
    discarded: list[str] = field(default_factory=list)  # removed: no whole chunk in them
    closed: bool = False  # a RECOVERED_END entry was signed
    removed_recording: bool = False  # folder of a recording that never started
    problems: list[str] = field(default_factory=list)  # found and left alone
    actions: list[str] = field(default_factory=list)  # one line per step, for logs and UI

    def note(self, line: str) -> None:
        self.actions.append(line)
        log.info("recovery %s: %s", self.recording_id, line)

    def problem(self, line: str) -> None:
        self.problems.append(line)
        log.error("recovery %s: %s (left alone)", self.recording_id, line)


def _sha256_file(fd: int, size: int) -> str:
    digest = hashlib.sha256()
    offset = 0
    while offset < size:
        block = os.pread(fd, min(1 << 20, size - offset), offset)
        if not block:
            raise Truncated("file shrank while being hashed")
        digest.update(block)
        offset += len(block)
    return digest.hexdigest()


def _salvage_part(directory: Path, part: Path, expected: SegmentHeader | None,
                  manifest: _ManifestWriter,
                  report: RecoveryReport | None = None) -> SealedSegmentInfo | str:
    """Seal the whole chunks of a `.part` as RECOVERED_SEGMENT, or delete it if it has none.

    Returns the sealed segment, or "discarded". Raises FormatError if the file
    is not a cut-short segment of this recording (it is then left alone).
    """
    name = part.name[: -len(PART_SUFFIX)]
    fd = os.open(part, os.O_RDWR | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        try:
            header = read_segment_header(fd, part.name)
        except Truncated:
            header = None  # cut inside the header: no footage in it
        if header is not None and expected is not None and header.raw != expected.raw:
            raise FormatError(f"{part.name}: header differs from the segment being written")
        full = (header.chunk_size + TAG_SIZE) if header else 1
        chunks = (size - header.header_len) // full if header else 0
        if chunks == 0:
            os.close(fd)
            fd = -1
            part.unlink()
            fsync_dir(directory)
            line = f"discarded {part.name}: no complete chunk was written ({size} bytes)"
            if report is not None:
                report.discarded.append(part.name)
                report.note(line)
            else:
                log.info("%s", line)
            return "discarded"
        assert header is not None
        new_size = header.header_len + chunks * full
        os.ftruncate(fd, new_size)
        os.fsync(fd)
        sha = _sha256_file(fd, new_size)
    finally:
        if fd >= 0:
            os.close(fd)
    final = directory / name
    if final.exists():
        raise FormatError(f"{final} exists next to {part.name}; not replacing it")
    os.rename(part, final)
    fsync_dir(directory)
    manifest.append(KIND_RECOVERED_SEGMENT, header.index, chunks, new_size, header.start_pts,
                    header.start_utc, bytes.fromhex(sha))
    line = f"{name}: recovered, {chunks} chunks ({size - new_size} bytes of a partial chunk cut)"
    if report is not None:
        report.recovered_segments.append((name, chunks))
        report.note(line)
    else:
        log.info("%s", line)
    return SealedSegmentInfo(name, final, sha, new_size, chunks)


def _restore_final(directory: Path, name: str, rec_device: str, rec_id: str, index: int,
                   manifest: _ManifestWriter) -> None:
    """Sign the entry of a complete segment whose manifest update the power cut prevented."""
    fd = os.open(directory / name, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        header = read_segment_header(fd, name)
        if (header.device_id, header.recording_id, header.index) != (rec_device, rec_id, index):
            raise FormatError(f"{name}: header names {header.device_id}/{header.recording_id} "
                              f"segment {header.index}")
        chunks = normal_chunk_count(size, header.header_len, header.chunk_size)
        if chunks is None:
            raise FormatError(f"{name}: {size} bytes do not fit the chunk layout")
        sha = _sha256_file(fd, size)
    finally:
        os.close(fd)
    manifest.append(KIND_SEGMENT, index, chunks, size, header.start_pts, header.start_utc,
                    bytes.fromhex(sha))


def recover_recording(recording_dir: Path, signer: SigningKey) -> RecoveryReport | None:
    """Recover one folder after a power cut; None if it needed nothing.

    Must not run while a `RecordingSealer` writes into the folder (it is meant
    for boot, before recording starts).
    """
    recording_dir = Path(recording_dir)
    report = RecoveryReport(recording_dir.name, recording_dir)
    for stale in (HEADER_NAME + PART_SUFFIX, MANIFEST_NAME + PART_SUFFIX):
        if (recording_dir / stale).is_file():
            (recording_dir / stale).unlink()
            report.note(f"removed {stale} left by an interrupted update")
    with os.scandir(recording_dir) as it:
        names = sorted(e.name for e in it)
    finals = {i: n for n in names if (i := segment_index_of(n)) is not None}
    parts = {i: n for n in names if (i := part_index_of(n)) is not None}
    if MANIFEST_NAME not in names:
        if finals or parts:
            report.problem("segment files but no manifest")
            return report
        if HEADER_NAME in names:
            (recording_dir / HEADER_NAME).unlink()
        if not any(recording_dir.iterdir()):
            recording_dir.rmdir()
            fsync_dir(recording_dir.parent)
            report.removed_recording = True
            report.note("removed: the recording never started (no manifest)")
        else:
            report.problem("no manifest, unknown files present")
        return report
    try:
        header_raw = load_header_bytes(recording_dir)
        records = load_manifest_records(recording_dir)
        vr = check_manifest(records, header_raw, signer.public_bytes())
    except FormatError as exc:
        report.recording_id = recording_dir.name
        report.problem(f"manifest does not verify: {exc}")
        return report
    report.recording_id = vr.recording_id
    listed = {e.index for e in vr.segments}
    if vr.complete:
        leftovers = [n for i, n in sorted(finals.items()) if i not in listed]
        leftovers += list(parts.values())
        for n in leftovers:
            report.problem(f"{n} is not part of the finished recording")
        return report if (report.actions or report.problems) else None
    manifest = _ManifestWriter.resume(recording_dir, signer, records)
    next_index = vr.segments[-1].index + 1 if vr.segments else None
    pending = {i for i in finals if i not in listed} | set(parts)
    while pending:
        index = next_index if next_index is not None else min(pending)
        if index in finals and index not in listed:
            if index in parts:
                # Cut between the rename and the removal of a stale .part: keep the final file.
                report.problem(f"{parts[index]} next to {finals[index]}")
                pending.discard(index)
            try:
                _restore_final(recording_dir, finals[index], vr.device_id, vr.recording_id,
                               index, manifest)
            except (FormatError, OSError) as exc:
                report.problem(str(exc))
                break
            report.restored_segments.append(finals[index])
            report.note(f"{finals[index]}: complete segment signed into the manifest")
            pending.discard(index)
            next_index = index + 1
            continue
        if index in parts:
            try:
                outcome = _salvage_part(recording_dir, recording_dir / parts[index], None,
                                        manifest, report)
            except (FormatError, OSError) as exc:
                report.problem(str(exc))
                break
            pending.discard(index)
            if outcome != "discarded":
                next_index = index + 1
            continue
        break
    for i in sorted(pending):
        report.problem(f"{finals.get(i) or parts[i]} does not follow the manifest's last segment")
    segments = sum(1 for r in manifest.entries if r[0] in (KIND_SEGMENT, KIND_RECOVERED_SEGMENT))
    manifest.append(KIND_RECOVERED_END, index=segments)
    report.closed = True
    report.note(f"closed the manifest (recovered end after {segments} segments)")
    return report


def recover_recordings(recordings_root: Path, signer: SigningKey) -> list[RecoveryReport]:
    """On boot: recover every recording folder under `recordings_root` (FORMAT.md).

    Seals the whole chunks of interrupted segments (signed "recovered, n chunks"),
    signs entries of complete segments the manifest missed, discards `.part` files
    without a whole chunk, and closes unfinished manifests. Returns one report per
    folder that needed anything; nothing that fails verification is deleted.
    """
    root = Path(recordings_root)
    if not root.is_dir():
        return []
    reports = []
    with os.scandir(root) as it:
        dirs = sorted(e.path for e in it if e.is_dir(follow_symlinks=False))
    for d in dirs:
        report = recover_recording(Path(d), signer)
        if report is not None:
            reports.append(report)
    return reports

