"""Verify a sealed recording with the camera's public key alone (no data key).

The dock runs `verify_recording` on its copy before it asks the camera to
release anything: the signed manifest proves which segments exist, in which
order, with which SHA-256, and whether the recording was finished (or closed
by power-cut recovery). `verify_manifest` checks the header and manifest only,
for a folder whose segments were already released.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from crypto.errors import FormatError, NotSignedByDevice, Tampered, Truncated
from crypto.files import sha256_fd
from crypto.format import (
    END_KINDS,
    HEADER_NAME,
    KIND_END,
    KIND_NAMES,
    KIND_RECOVERED_SEGMENT,
    KIND_START,
    MANIFEST_MAX_SIZE,
    MANIFEST_NAME,
    REC_HEADER_MAX,
    SEGMENT_KINDS,
    ManifestRecord,
    RecordingHeader,
    SegmentHeader,
    entry_message,
    normal_chunk_count,
    parse_manifest,
    parse_recording_header,
    read_segment_header,
    recovered_chunk_count,
    segment_index_of,
    segment_name,
)
from crypto.keys import fingerprint, verify_signature
from crypto.sealed_files import read_bounded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ManifestEntry:
    """A segment as the signed manifest lists it."""

    index: int
    name: str
    sha256: str  # lowercase hex of the sealed file's SHA-256
    size: int
    chunks: int
    recovered: bool  # sealed by power-cut recovery ("recovered, n chunks")
    start_pts: int = 0
    start_utc: float = 0.0


@dataclass(frozen=True)
class VerifiedRecording:
    """What the manifest (and, from `verify_recording`, every segment file) proved."""

    recording_id: str
    device_id: str
    complete: bool  # an END or RECOVERED_END entry closes the manifest
    segments: list[ManifestEntry]
    started_utc: float
    ended_utc: float | None  # None while running or when recovery closed it
    recovered: bool  # closed by recovery, or holds a recovered segment
    recipients: list[bytes]  # vault public keys the data key is wrapped for
    header: RecordingHeader = field(repr=False)
    extra_files: list[str] = field(default_factory=list)  # not part of the recording


def _fail(reason: str, entry: int | None = None) -> Tampered:
    where = reason if entry is None else f"entry {entry}: {reason}"
    return Tampered(MANIFEST_NAME, None, where)


def check_manifest(
    records: list[ManifestRecord], header_raw: bytes, device_public: bytes
) -> VerifiedRecording:
    """Signatures, chain and entry rules of parsed manifest records (FORMAT.md rules 2-6).

    `header_raw` is the content of `recording.hdr`; it is parsed only after the
    signed START entry vouched for it, so a changed header is Tampered whatever
    field was changed.
    """
    device_public = bytes(device_public)
    good = [verify_signature(device_public, entry_message(r.body), r.signature) for r in records]
    if not any(good):
        raise NotSignedByDevice(
            f"manifest is not signed by device key {fingerprint(device_public)}... "
            "(another camera's recording, or a forged manifest)"
        )
    if not all(good):
        raise _fail("signature does not verify with the device key", good.index(False))
    start = records[0]
    if start.kind != KIND_START:
        raise _fail("the first entry is not START", 0)
    if start.size != len(header_raw) or not hmac.compare_digest(
        start.digest, hashlib.sha256(header_raw).digest()
    ):
        raise Tampered(
            HEADER_NAME,
            None,
            "does not match the signed manifest (changed header, or a manifest from "
            "another recording)",
        )
    header = parse_recording_header(header_raw)
    prev = bytes(32)
    segments: list[ManifestEntry] = []
    ended_utc: float | None = None
    complete = False
    recovered = False
    for pos, r in enumerate(records):
        if r.seq != pos:
            raise _fail(f"sequence number {r.seq} at position {pos}", pos)
        if not hmac.compare_digest(r.prev, prev):
            raise _fail("hash chain broken (entry does not follow the one before)", pos)
        prev = r.link
        if complete:
            raise _fail(f"{KIND_NAMES[r.kind]} after the end of the recording", pos)
        if pos == 0:
            if r.utc != header.started_utc:
                raise _fail("START time differs from the recording header", pos)
            continue
        if r.kind == KIND_START:
            raise _fail("a second START", pos)
        if r.kind in SEGMENT_KINDS:
            if segments and r.index != segments[-1].index + 1:
                raise _fail(
                    f"segment {r.index} follows segment {segments[-1].index} "
                    "(dropped, reordered or duplicated)",
                    pos,
                )
            if segment_index_of(segment_name(r.index)) != r.index or r.chunks < 1:
                raise _fail(f"segment entry with index {r.index} and {r.chunks} chunks", pos)
            is_recovered = r.kind == KIND_RECOVERED_SEGMENT
            recovered = recovered or is_recovered
            segments.append(
                ManifestEntry(
                    r.index,
                    segment_name(r.index),
                    r.digest.hex(),
                    r.size,
                    r.chunks,
                    is_recovered,
                    r.start_pts,
                    r.utc,
                )
            )
            continue
        assert r.kind in END_KINDS
        if r.index != len(segments):
            raise _fail(
                f"end entry counts {r.index} segments, the manifest lists {len(segments)}", pos
            )
        complete = True
        if r.kind == KIND_END:
            ended_utc = r.utc
        else:
            recovered = True
    return VerifiedRecording(
        recording_id=header.recording_id,
        device_id=header.device_id,
        complete=complete,
        segments=segments,
        started_utc=header.started_utc,
        ended_utc=ended_utc,
        recovered=recovered,
        recipients=header.recipients(),
        header=header,
    )


def load_header_bytes(recording_dir: Path) -> bytes:
    return read_bounded(Path(recording_dir) / HEADER_NAME, REC_HEADER_MAX, HEADER_NAME)


def load_manifest_records(recording_dir: Path) -> list[ManifestRecord]:
    return parse_manifest(
        read_bounded(Path(recording_dir) / MANIFEST_NAME, MANIFEST_MAX_SIZE, MANIFEST_NAME)
    )


def verify_manifest(recording_dir: Path | str, device_public: bytes) -> VerifiedRecording:
    """Check `recording.hdr` and the signed manifest; segment files are not read.

    Use it on a camera's folder whose segments were (partly) released, or to list
    a recording before copying it. Raises the format's errors on any problem.
    """
    recording_dir = Path(recording_dir)
    header_raw = load_header_bytes(recording_dir)
    records = load_manifest_records(recording_dir)
    return check_manifest(records, header_raw, device_public)


def check_segment_identity(
    seg: SegmentHeader, entry: ManifestEntry, rec: VerifiedRecording | RecordingHeader
) -> None:
    """The segment header names this recording, device and manifest entry."""
    name = entry.name
    if seg.device_id != rec.device_id or seg.recording_id != rec.recording_id:
        raise Tampered(
            name,
            None,
            f"header names {seg.device_id}/{seg.recording_id}, not "
            f"{rec.device_id}/{rec.recording_id}",
        )
    if seg.index != entry.index:
        raise Tampered(
            name,
            None,
            f"holds segment {seg.index}, the manifest lists "
            f"{entry.index} here (reordered or duplicated)",
        )
    if seg.start_pts != entry.start_pts or seg.start_utc != entry.start_utc:
        raise Tampered(name, None, "start time differs from the signed manifest")


def check_segment_layout(seg: SegmentHeader, entry: ManifestEntry) -> None:
    """The signed size holds exactly the signed number of chunks (FORMAT.md rule 5)."""
    if entry.recovered:
        chunks = recovered_chunk_count(entry.size, seg.header_len, seg.chunk_size)
    else:
        chunks = normal_chunk_count(entry.size, seg.header_len, seg.chunk_size)
    if chunks != entry.chunks:
        raise Tampered(
            entry.name,
            None,
            f"{entry.size} bytes do not hold the {entry.chunks} chunks the manifest lists",
        )


def open_listed_segment(
    path: Path, entry: ManifestEntry, rec: VerifiedRecording | RecordingHeader
) -> tuple[int, SegmentHeader]:
    """Open a segment the manifest lists; check identity, size and layout (not the hash).

    The error says what happened to the file: missing or shorter than signed is
    Truncated; another segment in its place (reordered, duplicated, from another
    recording), longer, or a header that no longer parses is Tampered.
    """
    name = entry.name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise Truncated(
            f"{name} (segment {entry.index}) is listed in the signed manifest but missing"
        ) from None
    except OSError as exc:
        raise Tampered(name, None, f"cannot be opened as a file ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Tampered(name, None, "not a regular file")
        size = st.st_size
        try:
            header = read_segment_header(fd, name)
        except Truncated:
            if size < entry.size:
                raise Truncated(
                    f"{name}: {size} bytes, the signed manifest lists {entry.size}"
                ) from None
            raise
        except FormatError as exc:
            # The camera signed a header it could write: one that no longer parses
            # (bad magic, version or field) was changed after signing.
            if size != entry.size or sha256_fd(fd, size, name) != entry.sha256:
                raise Tampered(name, None, f"differs from the signed manifest ({exc})") from None
            raise
        check_segment_identity(header, entry, rec)
        if size < entry.size:
            raise Truncated(f"{name}: {size} bytes, the signed manifest lists {entry.size}")
        if size > entry.size:
            raise Tampered(name, None, f"{size} bytes, the signed manifest lists {entry.size}")
        check_segment_layout(header, entry)
    except BaseException:
        os.close(fd)
        raise
    return fd, header


def verify_segment_file(
    path: Path | str, entry: ManifestEntry, rec: VerifiedRecording | RecordingHeader
) -> None:
    """One segment file against its signed manifest entry: header, size, SHA-256."""
    fd, _ = open_listed_segment(Path(path), entry, rec)
    try:
        actual = sha256_fd(fd, entry.size, entry.name)
    finally:
        os.close(fd)
    if not hmac.compare_digest(actual, entry.sha256):
        raise Tampered(entry.name, None, "SHA-256 differs from the signed manifest")


def _extra_files(recording_dir: Path, listed: set[str]) -> list[str]:
    known = listed | {HEADER_NAME, MANIFEST_NAME}
    with os.scandir(recording_dir) as it:
        return sorted(e.name for e in it if e.name not in known)


def verify_recording(recording_dir: Path | str, device_public: bytes) -> VerifiedRecording:
    """Verify header, manifest and every listed segment file; raise on any problem.

    Needs only the camera's Ed25519 public key. A recording without an end entry
    verifies with `complete=False`. Files that are not part of the recording are
    listed in `extra_files`; in a complete recording an unlisted segment file is
    Tampered (a spliced segment).
    """
    recording_dir = Path(recording_dir)
    vr = verify_manifest(recording_dir, device_public)
    for entry in vr.segments:
        verify_segment_file(recording_dir / entry.name, entry, vr)
    extra = _extra_files(recording_dir, {e.name for e in vr.segments})
    if vr.complete:
        spliced = [n for n in extra if segment_index_of(n) is not None]
        if spliced:
            raise Tampered(spliced[0], None, "segment file is not in the signed manifest")
    log.info(
        "recording %s of %s verified: %d segments, %s",
        vr.recording_id,
        vr.device_id,
        len(vr.segments),
        "complete" if vr.complete else "not finished",
    )
    return VerifiedRecording(
        recording_id=vr.recording_id,
        device_id=vr.device_id,
        complete=vr.complete,
        segments=vr.segments,
        started_utc=vr.started_utc,
        ended_utc=vr.ended_utc,
        recovered=vr.recovered,
        recipients=vr.recipients,
        header=vr.header,
        extra_files=extra,
    )
