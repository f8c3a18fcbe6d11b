"""The camera's signed event log offloaded at a docking, from where the last docking
stopped, checked line by line, stored in pieces; releases the camera reports there
settle what the dock had left open."""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING

from dock import faults
from dock.ledger import STORED
from store import (
    events_key,
    events_prefix,
    events_range,
    retain_until,
    split_name,
)

if TYPE_CHECKING:
    pass

from dock.ingest_base import IngestBase, _sha_of

log = logging.getLogger("dock.ingest")  # one logger for the whole ingest session


class EventLogOffload(IngestBase):
    """The event-log part of the session."""

    # --- event log -----------------------------------------------------------------------------

    def _offload_events(self) -> None:
        """Store the event log from where the last docking stopped, in whole lines.

        Idempotent: a piece stored before a kill, whose end the ledger never recorded,
        is found in the store and adopted instead of stored again overlapping. The
        camera's signed `segment_released` lines settle segments the ledger still
        holds as stored (a kill between RELEASE and its ledger write).
        """
        assert self.source is not None
        ledger = self.ctx.ledger
        offset = ledger.events_offset(self.device_id)
        limit = self.ctx.event_log_piece
        data = self.source.event_log(offset, limit)  # at most `limit` bytes are read
        cut = data.rfind(b"\n") + 1  # whole lines only; the rest comes next time
        if cut <= 0:
            if len(data) >= limit:
                self._note(
                    f"event log: no whole line in {limit} bytes from byte {offset}; "
                    "not offloaded (check the camera's event log)"
                )
            return
        if len(data) >= limit:
            self._note(
                f"event log: {cut} bytes offloaded from byte {offset}; more remains for "
                "the next docking"
            )
        lines = data[:cut]
        self._settle_releases(lines)
        piece, start = lines, offset
        for end, key in self._stored_pieces(offset):
            n = end - start
            if n > len(piece) or not hmac.compare_digest(_sha_of(piece[:n]), split_name(key)[1]):
                break
            log.info(
                "camera %s: event log %d..%d was stored before, adopted", self.device_id, start, end
            )
            ledger.set_events_offset(self.device_id, end, key)
            piece, start = piece[n:], end
        if not piece:
            return
        key = events_key(self.ctx.site, self.device_id, start, start + len(piece), _sha_of(piece))
        now = self.ctx.clock.now()
        with self.ctx.uploads:
            self.ctx.store.put_bytes(
                key, piece, retain_until=retain_until(now, now, self.ctx.store.retention_days)
            )
        faults.fault_point("events-stored")
        ledger.set_events_offset(self.device_id, start + len(piece), key)

    def _stored_pieces(self, offset: int) -> list[tuple[int, str]]:
        """(end, key) of stored event log pieces chained from `offset`, in order."""
        by_start: dict[int, tuple[int, str]] = {}
        for key in self.ctx.store.list(events_prefix(self.ctx.site, self.device_id)):
            piece = events_range(key)
            if piece is not None and piece[0] >= offset:
                by_start.setdefault(piece[0], (piece[1], key))
        chain: list[tuple[int, str]] = []
        while offset in by_start:
            end, key = by_start[offset]
            chain.append((end, key))
            offset = end
        return chain

    def _settle_releases(self, lines: bytes) -> None:
        """Mark released what the camera's signed log says it deleted against a receipt."""
        from formats.eventlog import EventLogError, signed_by_device, verify_event_piece

        try:
            # Hashes and links of every line; the signature (~0.4 ms) only of lines used.
            events = verify_event_piece(
                lines, self.device_public, signatures=False, origin=f"event log of {self.device_id}"
            )
        except EventLogError as exc:
            self.report.notes.append(
                f"event log does not verify, releases not settled from it: {exc}"
            )
            log.error("camera %s: %s", self.device_id, exc)
            return
        ledger = self.ctx.ledger
        for event in events:
            if event.kind != "segment_released":
                continue
            rec_id, name, sha = (event.fields.get(k) for k in ("recording_id", "segment", "sha256"))
            if not all(isinstance(v, str) for v in (rec_id, name, sha)):
                continue
            seg = ledger.segment(self.device_id, str(rec_id), str(name))
            if seg is None or seg.state != STORED or not hmac.compare_digest(seg.sha256, str(sha)):
                continue
            if not signed_by_device(event, self.device_public):
                self.report.notes.append(
                    f"event log line {event.seq} is not signed by the "
                    "camera; release not settled from it"
                )
                continue
            ledger.mark_released(
                self.device_id, seg.recording_id, seg.name, seg.sha256, how="camera event log"
            )
            log.info(
                "camera %s: %s/%s released (camera's signed event log)",
                self.device_id,
                seg.recording_id,
                seg.name,
            )
