"""Quarantine during an ingest: what fails verification goes to the store's quarantine
with its reason, as evidence bounded per file, per docking and per camera and day; it is
recorded and never released."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from crypto.files import sha256_file
from crypto.format import (
    HEADER_NAME,
    MANIFEST_MAX_SIZE,
    MANIFEST_NAME,
    PART_SUFFIX,
    REC_HEADER_MAX,
)
from crypto.verify import ManifestEntry
from dock.slots import SlotState
from store import (
    object_key,
    retain_until,
)

if TYPE_CHECKING:
    pass

from dock.ingest_base import IngestBase

log = logging.getLogger("dock.ingest")  # one logger for the whole ingest session


# A quarantined file without a manifest entry (nothing says how long it may be) is kept
# as evidence up to this many bytes: a camera cannot make the dock copy without end.
MAX_EVIDENCE = 16 << 20
MAX_EVIDENCE_PER_SESSION = 64 << 20  # and all of them together, per docking
# And per camera and UTC day, across dockings: in volume-only mode a camera is known by
# its DEVICE.json, which anyone can copy, so re-seating a forged volume must not be a
# way to fill the store's quarantine.
MAX_EVIDENCE_PER_CAMERA_DAY = 128 << 20
# Of a recording that fails as a whole (its manifest does not verify) only the evidence
# of the tampering is kept: header, manifest and this many segments (the first).
EVIDENCE_SEGMENTS = 1
_EVIDENCE_LIMITS = {HEADER_NAME: REC_HEADER_MAX, MANIFEST_NAME: MANIFEST_MAX_SIZE}


class QuarantineIngest(IngestBase):
    """The quarantine part of the session."""

    # --- quarantine --------------------------------------------------------------------------

    def _quarantine_file(
        self,
        rec_id: str,
        name: str,
        size: int,
        entry: ManifestEntry | None,
        reason: str,
        spooled: Path | None = None,
    ) -> None:
        """Put one failing file in the store's quarantine; it stays on the camera."""
        assert self._spool is not None and self.source is not None
        path = spooled
        if path is None or not path.exists():
            allowance = self._evidence_allowance()
            if allowance == 0:
                self._evidence_refused(rec_id, name, size, entry, reason)
                return
            path = self._spool / rec_id / f"{name}.quarantine"
            path.parent.mkdir(parents=True, exist_ok=True)
            # Evidence is bounded too: what the manifest signs, or what the format allows.
            limit = entry.size if entry is not None else _EVIDENCE_LIMITS.get(name, MAX_EVIDENCE)
            limit = min(limit, allowance)
            with open(path, "wb") as out:
                end, reported = self.source.copy(
                    f"recordings/{rec_id}/{name}", out, 0, lambda v: None, limit
                )
            reported = max(reported, size)  # the listed size, when nothing was read
            if reported > end:
                reason += f" (the first {end} of {reported} bytes kept as evidence)"
        else:
            end = path.stat().st_size  # a verified copy already made: counted, kept whole
        self._count_evidence(end)
        data_sha = sha256_file(path)
        qkey = object_key(self.ctx.site, self.device_id, rec_id, name, data_sha)
        now = self.ctx.clock.now()
        with self.ctx.uploads:
            stored = self.ctx.store.quarantine(
                qkey,
                path,
                reason,
                now=now,
                details={
                    "device_id": self.device_id,
                    "recording_id": rec_id,
                    "file": name,
                    "manifest_sha256": entry.sha256 if entry else None,
                    "slot": self.slot.name,
                },
                retain_until=retain_until(now, now, self.ctx.store.retention_days),
            )
        path.unlink(missing_ok=True)
        self.ctx.ledger.mark_quarantined(
            self.device_id,
            rec_id,
            name,
            entry.sha256 if entry else data_sha,
            size,
            reason,
            stored.key,
        )
        self.report.quarantined.append(f"{rec_id}/{name}: {reason}")
        self.progress.set(SlotState.QUARANTINED, message=f"{rec_id}/{name}: {reason}")
        log.error("camera %s: %s/%s quarantined: %s", self.device_id, rec_id, name, reason)

    def _evidence_day(self) -> str:
        return dt.datetime.fromtimestamp(self.ctx.clock.now(), dt.UTC).date().isoformat()

    def _evidence_allowance(self) -> int:
        """Bytes of evidence this docking may still copy: per docking and per camera-day."""
        today = self.ctx.ledger.evidence_bytes(self.device_id, self._evidence_day())
        return max(
            0,
            min(
                MAX_EVIDENCE_PER_SESSION - self._evidence_bytes,
                MAX_EVIDENCE_PER_CAMERA_DAY - today,
            ),
        )

    def _count_evidence(self, n: int) -> None:
        self._evidence_bytes += n
        self.ctx.ledger.add_evidence_bytes(self.device_id, self._evidence_day(), n)

    def _evidence_refused(
        self, rec_id: str, name: str, size: int, entry: ManifestEntry | None, reason: str
    ) -> None:
        """Quarantined in the ledger (never released), nothing copied: the allowance is spent."""
        reason += (
            f" (not copied as evidence: this camera's quarantine allowance of"
            f" {MAX_EVIDENCE_PER_CAMERA_DAY >> 20} MiB a day, {MAX_EVIDENCE_PER_SESSION >> 20}"
            " MiB a docking, is used up; the file stays on the camera)"
        )
        self.ctx.ledger.mark_quarantined(
            self.device_id, rec_id, name, entry.sha256 if entry else "", size, reason, None
        )
        self.report.quarantined.append(f"{rec_id}/{name}: {reason}")
        self.progress.set(SlotState.QUARANTINED, message=f"{rec_id}/{name}: {reason}")
        log.error("camera %s: %s/%s quarantined: %s", self.device_id, rec_id, name, reason)

    def _quarantine_recording(self, rec_id: str, files: dict[str, int], reason: str) -> None:
        """A recording that fails as a whole: keep the evidence of that, not all of it.

        Header, manifest and the first segment show what was wrong; the rest stays on the
        camera, counted in the reason, so a forged volume cannot fill the quarantine.
        """
        sealed = sorted(n for n in files if not n.endswith(PART_SUFFIX))
        small = [n for n in sealed if n in _EVIDENCE_LIMITS]
        rest = [n for n in sealed if n not in _EVIDENCE_LIMITS]
        taken = small + rest[:EVIDENCE_SEGMENTS]
        left = rest[EVIDENCE_SEGMENTS:]
        if self._evidence_allowance() == 0:
            taken, left = [], sealed
            self._note(
                f"{rec_id}: quarantined, nothing copied as evidence: camera"
                f" {self.device_id} used up its quarantine allowance"
                f" ({MAX_EVIDENCE_PER_CAMERA_DAY >> 20} MiB a day,"
                f" {MAX_EVIDENCE_PER_SESSION >> 20} MiB a docking); it stays on the camera"
            )
        file_reason = reason
        if left:
            file_reason += (
                f"; {len(left)} more file(s), {sum(files[n] for n in left)} bytes,"
                " left on the camera, not copied"
            )
        for name in taken:
            self.check_alive()
            before = len(self.report.quarantined)
            self._quarantine_file(rec_id, name, files[name], None, file_reason)
            del self.report.quarantined[before:]
        self.ctx.ledger.quarantine_recording(self.device_id, rec_id, file_reason)
        self.report.quarantined.append(f"{rec_id}: {reason}")
