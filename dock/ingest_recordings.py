"""A camera's recordings in an ingest: the listing checked, each recording's header and
signed manifest verified with the registered key and stored, its segments handed to
dock/ingest_segments.py, files the camera should not hold quarantined, the spool tidied."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from crypto.errors import FormatError
from crypto.format import (
    HEADER_NAME,
    MANIFEST_MAX_SIZE,
    MANIFEST_NAME,
    PART_SUFFIX,
    REC_HEADER_MAX,
    segment_index_of,
)
from crypto.verify import VerifiedRecording, verify_manifest
from dock.ingest_record import write_for_recording
from dock.ledger import QUARANTINED, RELEASED, STORED
from dock.names import display_path
from dock.release import ReleaseWorker
from dock.slots import SlotState
from dock.sources import (
    VerificationFailed,
    VolumeSource,
)
from dock.spool import remove_spool_folder
from store import (
    DurableBatch,
    object_key,
    retain_until,
)

if TYPE_CHECKING:
    pass

from dock.ingest_base import _sha_of
from dock.ingest_segments import SegmentIngest, _Stored

log = logging.getLogger("dock.ingest")  # one logger for the whole ingest session


class RecordingIngest(SegmentIngest):
    """The per-recording part of the session."""

    # --- recordings --------------------------------------------------------------------------

    def _ingest_all(self) -> None:
        assert self.source is not None
        # Before touching anything: a store that cannot take objects means nothing moves.
        self.ctx.store.check()
        listing = self.source.list_files()
        # Refused names never become paths or keys: reported, left on the camera.
        for path, reason in listing.refused.items():
            self._left_file(path, reason)
        files = listing.recordings
        self._spool = self.ctx.spool_dir() / self.ctx.site / self.device_id
        self._tidy_spool(set(files))
        pending = 0
        for rec_id, names in files.items():
            for name, size in names.items():
                if segment_index_of(name) is None:
                    continue
                seg = self.ctx.ledger.segment(self.device_id, rec_id, name)
                if seg is None or seg.state not in (STORED, RELEASED, QUARANTINED):
                    pending += size
        self.progress.set(bytes_total=pending, bytes_done=0)
        if self.link is not None and self.source.kind == "volume":
            self._releaser = ReleaseWorker(self._release_now)
        for rec_id in sorted(files):
            self.check_alive()
            self.report.recordings += 1
            self.progress.set(SlotState.VERIFYING, recording=rec_id)
            try:
                done = self._ingest_recording(rec_id, files[rec_id])
                if done and rec_id in self._empty:
                    self.report.empty += 1  # no footage to store: not counted as stored
                elif done:
                    self.report.recordings_done += 1
            finally:
                self._clean_spool(rec_id)
        if self._releaser is not None:
            releaser, self._releaser = self._releaser, None
            self.progress.set(SlotState.RELEASING)
            releaser.finish()
        self._audit_camera()

    def _audit_camera(self) -> None:
        """Name every file left on the camera, as the camera itself now shows it.

        The camera counts as released only when it holds nothing but what a camera keeps
        (DEVICE.json, its event log): kept segments are counted (their reasons are in the
        report already), every other file is reported with why it stayed.
        """
        assert self.source is not None
        left = self.source.list_files()
        for path, reason in left.refused.items():
            self._left_file(path, reason)
        kept = 0
        for rec_id, names in sorted(left.recordings.items()):
            segments = sum(1 for n in names if segment_index_of(n) is not None)
            kept += segments
            if rec_id in self._empty and set(names) <= {HEADER_NAME, MANIFEST_NAME}:
                self._left_file(
                    display_path(rec_id),
                    "a finished recording without footage (its signed manifest lists no "
                    "segment): its header and manifest are stored, but with no segment to "
                    "release nothing removes it from the camera until the camera's boot "
                    "recovery does (at its next power-on)",
                )
                continue
            for name in sorted(names):
                path = display_path(rec_id, name)
                if name.endswith(PART_SUFFIX):
                    self._left_file(
                        path,
                        "unsealed leftover (.part): the camera's recovery "
                        "seals or removes it, the next docking takes it",
                    )
                elif (
                    segment_index_of(name) is None
                    and not segments
                    and rec_id not in self._unfinished
                ):
                    # An unfinished recording keeps its header and manifest by design; a
                    # finished one goes with its last segment unless something else is there.
                    self._left_file(
                        path,
                        "the camera kept this finished recording's folder "
                        "(it holds files the camera does not remove)",
                    )
        if isinstance(self.source, VolumeSource):
            for path, reason in self.source.others().items():
                self._left_file(path, reason)
        self.report.kept = kept
        self.report.released_camera = self.link is not None and kept == 0 and not self.report.left

    def _ingest_recording(self, rec_id: str, files: dict[str, int]) -> bool:
        """Ingest one recording folder; True when every segment it lists is durable."""
        assert self.source is not None and self._spool is not None
        ledger = self.ctx.ledger
        base = f"recordings/{rec_id}"
        known = ledger.recording(self.device_id, rec_id)
        if known is not None and known.get("quarantine_reason"):
            self.report.quarantined.append(f"{rec_id}: {known['quarantine_reason']}")
            return False
        if HEADER_NAME not in files or MANIFEST_NAME not in files:
            if all(n.endswith(PART_SUFFIX) for n in files):
                self._note(f"{rec_id}: still being sealed, left on the camera")
                return False
            self._quarantine_recording(
                rec_id,
                files,
                "recording.hdr or manifest.bcm missing: the recording cannot be verified",
            )
            return False
        # Header and manifest are read whole: a listed size (or the bytes themselves)
        # beyond the format's bound refuses this recording, never the session.
        for name, bound in ((HEADER_NAME, REC_HEADER_MAX), (MANIFEST_NAME, MANIFEST_MAX_SIZE)):
            if files[name] > bound:
                self._left_file(
                    f"{base}/{name}",
                    f"{files[name]} bytes, more than the format "
                    f"allows ({bound}); recording not taken",
                )
                return False
        try:
            header = self.source.read_small(f"{base}/{HEADER_NAME}", REC_HEADER_MAX)
            manifest = self.source.read_small(f"{base}/{MANIFEST_NAME}", MANIFEST_MAX_SIZE)
        except VerificationFailed as exc:
            self._left_file(base, f"{exc}; recording not taken")
            return False
        spool = self._spool / rec_id
        spool.mkdir(parents=True, exist_ok=True)
        (spool / HEADER_NAME).write_bytes(header)
        (spool / MANIFEST_NAME).write_bytes(manifest)
        try:
            vr = verify_manifest(spool, self.device_public)
        except FormatError as exc:
            self._quarantine_recording(rec_id, files, f"manifest does not verify: {exc}")
            return False
        if vr.device_id != self.device_id or vr.recording_id != rec_id:
            self._quarantine_recording(
                rec_id,
                files,
                f"folder {rec_id} holds recording {vr.recording_id} of {vr.device_id}",
            )
            return False
        if not vr.complete:
            self._unfinished.add(rec_id)
        elif not vr.segments:
            self._empty.add(rec_id)
        now = self.ctx.clock.now()
        until = retain_until(vr.started_utc, now, self.ctx.store.retention_days)
        header_key = object_key(self.ctx.site, self.device_id, rec_id, HEADER_NAME, _sha_of(header))
        manifest_key = object_key(
            self.ctx.site, self.device_id, rec_id, MANIFEST_NAME, _sha_of(manifest)
        )
        # Header and manifest first: without them no stored segment could be opened.
        with self.ctx.uploads:
            both = DurableBatch()  # two objects in one folder: its entries synced once
            self.ctx.store.put_bytes(header_key, header, retain_until=until, batch=both)
            self.ctx.store.put_bytes(manifest_key, manifest, retain_until=until, batch=both)
        both.commit()
        ledger.note_recording(
            self.device_id,
            rec_id,
            started_utc=vr.started_utc,
            complete=vr.complete,
            segments=len(vr.segments),
            header_key=header_key,
            manifest_key=manifest_key,
        )
        listed = {e.name for e in vr.segments} | {HEADER_NAME, MANIFEST_NAME}
        unlisted = sorted(set(files) - listed)
        # Unlisted files first: quarantined before any release can change the folder.
        for name in unlisted:
            self._unlisted_file(vr, name, files[name])
        if vr.complete and any(segment_index_of(n) is not None for n in unlisted):
            # The camera removes a finished recording's folder, every file in it, with its
            # last released segment: keep one listed segment back so the quarantined file
            # stays on the camera as evidence.
            present = [e.name for e in vr.segments if e.name in files]
            if present:
                self._hold.add((rec_id, present[-1]))
        all_durable = True
        batch = _Stored()
        try:
            for entry in vr.segments:
                self.check_alive()
                if not self._ingest_segment(vr, entry, files.get(entry.name), spool, until, batch):
                    all_durable = False
                if batch.full():
                    self._settle(batch)
        except BaseException:
            # Undocked, stopping, a failing link: what is already in the store is still
            # made durable and recorded (the next docking releases it without copying it
            # again); nothing is released now.
            try:
                self._settle(batch, release=False)
            except Exception as exc:  # the first error is the one to report
                log.error(
                    "camera %s: recording the stored segments failed: %s", self.device_id, exc
                )
            raise
        self._settle(batch)
        if all_durable:  # the chain of custody, signed by this dock, next to the footage
            with self.ctx.uploads:
                write_for_recording(self.ctx, vr, header, manifest, until)
        return all_durable

    def _tidy_spool(self, listed: set[str]) -> None:
        """Drop spooled copies of recordings the camera no longer has (released, or gone).

        What a killed session left: partial copies, headers and manifests. The camera's
        listing is the only authority on what may still be needed for resuming.
        """
        assert self._spool is not None
        try:
            entries = list(os.scandir(self._spool))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name in listed or not entry.is_dir(follow_symlinks=False):
                continue
            removed = remove_spool_folder(Path(entry.path))
            log.info(
                "camera %s: dropped the spool of %s (%d file(s)), no longer on the camera",
                self.device_id,
                entry.name,
                removed,
            )

    def _clean_spool(self, rec_id: str) -> None:
        """Drop the spooled header and manifest; partial serial copies stay for resuming."""
        assert self._spool is not None
        spool = self._spool / rec_id
        for name in (HEADER_NAME, MANIFEST_NAME):
            (spool / name).unlink(missing_ok=True)
        try:
            spool.rmdir()
        except OSError:
            pass  # missing, or holds a partial copy

    def _unlisted_file(self, vr: VerifiedRecording, name: str, size: int) -> None:
        rec_id = vr.recording_id
        if name.endswith(PART_SUFFIX):
            self._left_file(
                display_path(rec_id, name),
                "unsealed leftover (.part): the "
                "camera's recovery seals or removes it, the next docking takes it",
            )
            return
        if segment_index_of(name) is None:
            self._left_file(display_path(rec_id, name), "not part of the recording")
            return
        if not vr.complete:
            # sealed but not yet in the manifest (power cut between the two): the camera's
            # boot recovery adds it; the next docking takes it.
            self._note(f"{rec_id}/{name}: not yet in the manifest, left on camera")
            return
        reason = "segment file is not in the signed manifest of a finished recording (spliced)"
        self._quarantine_file(rec_id, name, size, None, reason)
