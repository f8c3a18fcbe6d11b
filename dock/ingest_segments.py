"""One segment through the dock: copied and hashed in one pass, checked against the
signed manifest, stored, recorded in batches (one sync of each folder and one ledger
transaction per batch), and only then released to the camera."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from crypto.errors import FormatError
from crypto.files import sha256_digest
from crypto.format import (
    PART_SUFFIX,
)
from crypto.verify import ManifestEntry, VerifiedRecording, open_listed_segment
from dock import faults
from dock.ledger import QUARANTINED, STORED, StoredSegment, TransitionRefused
from dock.slots import SlotState
from dock.sources import (
    VerificationFailed,
)
from dock.spool import drop_if_shared
from store import (
    DurableBatch,
    StoredObject,
    StoreIntegrityError,
    object_key,
)

if TYPE_CHECKING:
    pass

from dock.ingest_quarantine import QuarantineIngest

log = logging.getLogger("dock.ingest")  # one logger for the whole ingest session

# Segments stored before their folders and the ledger are synced for all of them at once.
SETTLE_SEGMENTS = 8
SETTLE_BYTES = 64 << 20


class _Stored:
    """Segments of one recording in the store, not yet durable, recorded or released."""

    def __init__(self) -> None:
        self.durable = DurableBatch()
        self.segments: list[StoredSegment] = []
        self.entries: list[ManifestEntry] = []
        self.bytes = 0

    def add(self, segment: StoredSegment, entry: ManifestEntry) -> None:
        self.segments.append(segment)
        self.entries.append(entry)
        self.bytes += segment.size

    def full(self) -> bool:
        return len(self.segments) >= SETTLE_SEGMENTS or self.bytes >= SETTLE_BYTES

    def take(self) -> tuple[list[StoredSegment], list[ManifestEntry]]:
        out = self.segments, self.entries
        self.segments, self.entries, self.bytes = [], [], 0
        return out


class SegmentIngest(QuarantineIngest):
    """The per-segment part of the session."""

    def _ingest_segment(
        self,
        vr: VerifiedRecording,
        entry: ManifestEntry,
        camera_size: int | None,
        spool: Path,
        until: float,
        batch: _Stored,
    ) -> bool:
        """Copy, verify and store one segment. True when it is durable, or will be once
        `batch` is settled (which records and releases it)."""
        ledger, store = self.ctx.ledger, self.ctx.store
        rec_id, name = vr.recording_id, entry.name
        key = object_key(self.ctx.site, self.device_id, rec_id, name, entry.sha256)
        seg = ledger.segment(self.device_id, rec_id, name)
        if seg is not None and seg.sha256 != entry.sha256 and seg.state != QUARANTINED:
            self._quarantine_file(
                rec_id,
                name,
                camera_size or 0,
                entry,
                f"the signed manifest now lists sha256 {entry.sha256}, the "
                f"ledger recorded {seg.sha256} for this segment",
            )
            return False
        if seg is not None and seg.state == QUARANTINED:
            self.report.quarantined.append(f"{rec_id}/{name}: {seg.reason}")
            return False
        if seg is not None and seg.durable:
            if camera_size is None:
                if seg.state == STORED:
                    ledger.mark_released(
                        self.device_id,
                        rec_id,
                        name,
                        entry.sha256,
                        how="gone from the camera after a receipt",
                    )
                return True
            if self._intact(key):
                self._release(rec_id, entry, key)
                return True
            # Recorded as stored, but the store does not hold it intact: the camera still
            # has it, so store it again (a damaged object is set aside) before releasing.
        if camera_size is None:
            stored = self._verified_or_none(key)
            if stored is not None:
                # Stored before the dock could record it, then released: catch up.
                ledger.mark_stored(
                    self.device_id, rec_id, name, entry.sha256, entry.size, key, stored.to_json()
                )
                ledger.mark_released(
                    self.device_id,
                    rec_id,
                    name,
                    entry.sha256,
                    how="gone from the camera after a receipt",
                )
                return True
            self.report.errors.append(
                f"{rec_id}/{name} is listed in the signed manifest but is neither on the camera "
                "nor in the store"
            )
            return False
        if camera_size != entry.size:
            # Refused before a byte is copied: a camera listing 2 GiB for a segment the
            # manifest signs at 2 MiB must not make the dock copy 2 GiB first.
            self._quarantine_file(
                rec_id,
                name,
                camera_size,
                entry,
                f"the camera lists {camera_size} bytes, the signed manifest {entry.size}",
            )
            return False
        self.progress.set(SlotState.UPLOADING, recording=rec_id)
        part = spool / f"{name}{PART_SUFFIX}"
        try:
            sha, size = self._copy_verified(vr, entry, part)
        except VerificationFailed as exc:
            self._quarantine_file(rec_id, name, camera_size, entry, str(exc), spooled=part)
            return False
        ledger.mark_copied(self.device_id, rec_id, name, sha, size)
        try:
            with self.ctx.uploads:
                self.check_alive()
                stored = store.put_file(
                    key,
                    part,
                    sha256=sha,
                    size=size,
                    retain_until=until,
                    consume=True,
                    batch=batch.durable,
                )
        except StoreIntegrityError as exc:
            # The store holds other bytes under this content's name and cannot replace them
            # (S3 under Object Lock): keep our verified copy in quarantine, never release.
            self._quarantine_file(
                rec_id, name, size, entry, f"store integrity: {exc}", spooled=part
            )
            return False
        faults.fault_point("after-store")
        batch.add(
            StoredSegment(self.device_id, rec_id, name, sha, size, key, stored.to_json()), entry
        )
        return True

    def _settle(self, batch: _Stored, *, release: bool = True) -> None:
        """Make the batch's objects durable, record them stored, then release them.

        In that order, for all of them at once: the folders they were named in are
        fsynced (one fsync each, not two per object), one ledger transaction records
        every copy (one fsync), and only then is any of them released.
        """
        if not batch.segments:
            return
        batch.durable.commit()
        segments, entries = batch.take()
        self.ctx.ledger.mark_stored_many(segments)
        for seg, entry in zip(segments, entries, strict=True):
            self.report.stored += 1
            faults.fault_point("after-ledger")
            if release:
                self._release(seg.recording_id, entry, seg.store_key)

    def _intact(self, key: str) -> bool:
        """Whether the store holds `key` with the content its name promises (hash checked)."""
        return self._verified_or_none(key) is not None

    def _verified_or_none(self, key: str) -> StoredObject | None:
        try:
            return self.ctx.store.verified(key)
        except StoreIntegrityError as exc:
            log.error("camera %s: %s", self.device_id, exc)
            self.report.notes.append(
                f"{key}: the store held other bytes under this name; not trusted"
            )
            return None

    def _copy_verified(
        self, vr: VerifiedRecording, entry: ManifestEntry, part: Path
    ) -> tuple[str, int]:
        """Copy into the spool, hashing while copying, and check against the manifest."""
        assert self.source is not None
        relative = f"recordings/{vr.recording_id}/{entry.name}"
        resume = self.source.kind == "serial"
        drop_if_shared(part)
        for attempt in (1, 2):
            start = part.stat().st_size if resume and part.exists() else 0
            if start > entry.size:
                start = 0
            # What the spool holds already is `start` bytes: the whole spooled file.
            digest = sha256_digest(part) if start else hashlib.sha256()
            if part.exists():
                os.chmod(part, 0o644)
            else:
                part.touch(mode=0o644)
            with open(part, "r+b") as out:
                out.seek(start)
                out.truncate(start)

                def on_chunk(view: memoryview, digest: hashlib._Hash = digest) -> None:
                    digest.update(view)
                    self.progress.add_bytes(len(view))

                # Never more than the manifest signs, whatever size the camera claims.
                end, reported = self.source.copy(relative, out, start, on_chunk, entry.size)
            sha = digest.hexdigest()
            try:
                if reported != entry.size:
                    raise VerificationFailed(
                        f"the camera reports {reported} bytes, the signed "
                        f"manifest lists {entry.size}"
                    )
                self._check_segment(part, entry, vr, sha, end)
                return sha, end
            except VerificationFailed:
                if start == 0 or attempt == 2:
                    raise
                # The resumed prefix in the spool may be what is wrong: copy it all again.
                log.info("%s: resumed copy does not verify; copying it again", relative)
                part.unlink()
        raise AssertionError("unreachable")

    @staticmethod
    def _check_segment(
        part: Path, entry: ManifestEntry, vr: VerifiedRecording, sha: str, size: int
    ) -> None:
        if size != entry.size:
            raise VerificationFailed(
                f"{size} bytes, the signed manifest lists {entry.size} (sha256 {sha})"
            )
        if not hmac.compare_digest(sha, entry.sha256):
            raise VerificationFailed(f"SHA-256 {sha} differs from the signed manifest")
        try:
            fd, _ = open_listed_segment(part, entry, vr)
            os.close(fd)
        except FormatError as exc:
            raise VerificationFailed(str(exc)) from None

    def _release(self, rec_id: str, entry: ManifestEntry, key: str) -> None:
        if self._releaser is not None:
            self._releaser.submit(rec_id, entry, key)
        else:
            self._release_now(rec_id, entry, key)

    def _release_now(self, rec_id: str, entry: ManifestEntry, key: str) -> None:
        from dock.link import ReceiptRejected, RemoteNotFound
        from formats.protocol import ReleaseReceipt

        ledger = self.ctx.ledger
        seg = ledger.segment(self.device_id, rec_id, entry.name)
        if seg is None or not seg.durable or seg.sha256 != entry.sha256:
            raise TransitionRefused(f"{rec_id}/{entry.name} is not recorded as stored")
        if self.link is None:
            return
        if (rec_id, entry.name) in self._hold:
            self.report.notes.append(
                f"{rec_id}/{entry.name}: stored, held on the camera with the quarantined file"
            )
            return
        if self.ctx.store.stat(key) is None:
            self.report.errors.append(
                f"{rec_id}/{entry.name}: recorded as stored but missing from the store; "
                "not released (check the store)"
            )
            return
        self.check_alive()
        if self._releaser is None:
            self.progress.set(SlotState.RELEASING, recording=rec_id)
        receipt = ReleaseReceipt.sign(
            self._dock_key(), self.device_id, rec_id, entry.name, entry.sha256
        )
        try:
            self.link.release(receipt)
            how = "receipt"
        except RemoteNotFound:
            how = "gone from the camera after a receipt"
        except ReceiptRejected as exc:
            self.report.errors.append(
                f"{rec_id}/{entry.name}: camera refused the release: {exc.message}"
            )
            return
        faults.fault_point("after-release")
        ledger.mark_released(self.device_id, rec_id, entry.name, entry.sha256, how=how)
        self.report.released += 1
