"""Power-cut recovery of sealed recordings, run on the camera at boot.

A power cut can leave a recording folder with a `.part` segment (the whole chunks that
reached the file plus a partial one), a complete segment whose manifest entry was never
signed, stale `.part` copies of the header or manifest, and a manifest without an END.
`recover_recordings` seals what can be sealed (signed "recovered, n chunks"), signs what
was missed, and closes the manifest; whatever fails verification is reported and left
alone. A recording that holds no footage (cut before its first whole chunk, or finished
without a segment) is removed: the camera otherwise removes a recording's folder only
with the release of its last segment. `salvage_part` is also how a sealer closes a
segment after a write error. Rules: crypto/FORMAT.md, "Recovery".
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from crypto.errors import FormatError, Truncated
from crypto.files import fsync_dir, sha256_fd
from crypto.format import (
    HEADER_NAME,
    KIND_RECOVERED_END,
    KIND_RECOVERED_SEGMENT,
    KIND_SEGMENT,
    MANIFEST_NAME,
    PART_SUFFIX,
    TAG_SIZE,
    SegmentHeader,
    normal_chunk_count,
    part_index_of,
    read_segment_header,
    segment_index_of,
)
from crypto.keys import SigningKey
from crypto.manifest import ManifestWriter, SealedSegmentInfo
from crypto.verify import check_manifest, load_header_bytes, load_manifest_records

log = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    """What recovery did to one recording folder (and what it left alone)."""

    recording_id: str
    path: Path
    recovered_segments: list[tuple[str, int]] = field(default_factory=list)  # (name, chunks)
    restored_segments: list[str] = field(default_factory=list)  # complete, entry was missing
    discarded: list[str] = field(default_factory=list)  # removed: no whole chunk in them
    closed: bool = False  # a RECOVERED_END entry was signed
    removed_recording: bool = False  # its folder held no footage and was removed
    problems: list[str] = field(default_factory=list)  # found and left alone
    actions: list[str] = field(default_factory=list)  # one line per step, for logs and UI

    def note(self, line: str) -> None:
        self.actions.append(line)
        log.info("recovery %s: %s", self.recording_id, line)

    def problem(self, line: str) -> None:
        self.problems.append(line)
        log.error("recovery %s: %s (left alone)", self.recording_id, line)


def salvage_part(
    directory: Path,
    part: Path,
    expected: SegmentHeader | None,
    manifest: ManifestWriter,
    report: RecoveryReport | None = None,
) -> SealedSegmentInfo | str:
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
        sha = sha256_fd(fd, new_size, part.name)
    finally:
        if fd >= 0:
            os.close(fd)
    final = directory / name
    if final.exists():
        raise FormatError(f"{final} exists next to {part.name}; not replacing it")
    os.rename(part, final)
    fsync_dir(directory)
    manifest.append(
        KIND_RECOVERED_SEGMENT,
        header.index,
        chunks,
        new_size,
        header.start_pts,
        header.start_utc,
        bytes.fromhex(sha),
    )
    line = f"{name}: recovered, {chunks} chunks ({size - new_size} bytes of a partial chunk cut)"
    if report is not None:
        report.recovered_segments.append((name, chunks))
        report.note(line)
    else:
        log.info("%s", line)
    return SealedSegmentInfo(name, final, sha, new_size, chunks)


def _restore_final(
    directory: Path, name: str, rec_device: str, rec_id: str, index: int, manifest: ManifestWriter
) -> None:
    """Sign the entry of a complete segment whose manifest update the power cut prevented."""
    fd = os.open(directory / name, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        header = read_segment_header(fd, name)
        if (header.device_id, header.recording_id, header.index) != (rec_device, rec_id, index):
            raise FormatError(
                f"{name}: header names {header.device_id}/{header.recording_id} "
                f"segment {header.index}"
            )
        chunks = normal_chunk_count(size, header.header_len, header.chunk_size)
        if chunks is None:
            raise FormatError(f"{name}: {size} bytes do not fit the chunk layout")
        sha = sha256_fd(fd, size, name)
    finally:
        os.close(fd)
    manifest.append(
        KIND_SEGMENT, index, chunks, size, header.start_pts, header.start_utc, bytes.fromhex(sha)
    )


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
        if not vr.segments and _only_header_and_manifest(recording_dir):
            # Finished without a segment (or closed by a recovery before this rule).
            _remove_recording_without_footage(recording_dir)
            report.removed_recording = True
            report.note("removed: the finished recording holds no footage (no segment)")
        return report if (report.actions or report.problems) else None
    manifest = ManifestWriter.resume(recording_dir, signer, records)
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
                _restore_final(
                    recording_dir, finals[index], vr.device_id, vr.recording_id, index, manifest
                )
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
                outcome = salvage_part(
                    recording_dir, recording_dir / parts[index], None, manifest, report
                )
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
    if segments == 0 and not report.problems and _only_header_and_manifest(recording_dir):
        # Cut between the recording's first writes (header, manifest) and its first whole
        # chunk: nothing was recorded. Closed, it would stay on the camera for good.
        _remove_recording_without_footage(recording_dir)
        report.removed_recording = True
        report.note("removed: cut before its first segment was sealed (no footage)")
        return report
    manifest.append(KIND_RECOVERED_END, index=segments)
    report.closed = True
    report.note(f"closed the manifest (recovered end after {segments} segments)")
    return report


def _only_header_and_manifest(recording_dir: Path) -> bool:
    with os.scandir(recording_dir) as it:
        return {e.name for e in it} == {HEADER_NAME, MANIFEST_NAME}


def _remove_recording_without_footage(recording_dir: Path) -> None:
    """Remove a recording folder that holds only its header and a manifest of no segment.

    The manifest goes first: a cut after it leaves a folder without a manifest and without
    segments, which the next recovery removes as a recording that never started.
    """
    (recording_dir / MANIFEST_NAME).unlink()
    fsync_dir(recording_dir)
    (recording_dir / HEADER_NAME).unlink()
    recording_dir.rmdir()
    fsync_dir(recording_dir.parent)


def recover_recordings(recordings_root: Path, signer: SigningKey) -> list[RecoveryReport]:
    """On boot: recover every recording folder under `recordings_root` (FORMAT.md).

    Seals the whole chunks of interrupted segments (signed "recovered, n chunks"),
    signs entries of complete segments the manifest missed, discards `.part` files
    without a whole chunk, closes unfinished manifests, and removes recordings that hold
    no footage. Returns one report per folder that needed anything; nothing that fails
    verification is deleted.
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
