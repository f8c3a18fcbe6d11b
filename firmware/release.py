"""RELEASE: delete a sealed segment from the camera against a trusted dock's receipt.

The camera deletes footage only here, and only when the receipt (PROTOCOL.md,
RELEASE) is signed by a dock its profile trusts, names this camera, and carries
the SHA-256 of the segment as it is on the volume now: the dock's proof that it
holds a verified, durable copy. A finished recording's folder goes with its last
segment (`remove_recording_if_released`). Every refusal is in the event log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
from collections.abc import Set
from pathlib import Path
from typing import Any

from crypto.files import fsync_dir
from crypto.format import HEADER_NAME, MANIFEST_NAME, segment_index_of
from firmware.services import CameraServices, record_event
from firmware.volume_files import RECORDINGS_DIR, safe_listdir
from formats.profile_sign import short_key
from formats.protocol import ErrorCode, Fields, ProtocolError, ReleaseReceipt

log = logging.getLogger(__name__)

_RECORDING_METADATA = frozenset({HEADER_NAME, MANIFEST_NAME})


def release_segment(
    services: CameraServices, fields: Fields, trusted_docks: Set[bytes]
) -> dict[str, Any]:
    """Check the receipt in `fields` and delete the segment it names; the RELEASE answer.

    Raises ProtocolError (FORBIDDEN, RECEIPT_REJECTED, NOT_FOUND) and deletes nothing
    when any check fails.
    """
    from crypto.keys import verify_signature

    receipt = ReleaseReceipt.from_fields(fields)
    where = f"{receipt.recording_id}/{receipt.segment}"

    def refuse(code: ErrorCode, reason: str) -> ProtocolError:
        record_event(services, "release_refused", file=where, reason=reason)
        return ProtocolError(code, f"release of {where} refused: {reason}")

    if segment_index_of(receipt.segment) is None:
        # Only sealed segments are released; the header and the signed manifest stay
        # until the whole recording has gone (they prove what the dock must hold).
        raise refuse(ErrorCode.FORBIDDEN, "only sealed segments (seg-NNNNNN.bcs) are released")

    if receipt.dock_public not in trusted_docks:
        raise refuse(
            ErrorCode.RECEIPT_REJECTED,
            f"receipt signed by {short_key(receipt.dock_public)}, not a trusted dock",
        )
    device_id = services.device_id
    if not verify_signature(receipt.dock_public, receipt.message(device_id), receipt.signature):
        raise refuse(
            ErrorCode.RECEIPT_REJECTED,
            f"receipt signature does not verify for camera {device_id}",
        )
    rec_dir = Path(services.volume) / RECORDINGS_DIR / receipt.recording_id
    path = rec_dir / receipt.segment
    if rec_dir.is_symlink() or (rec_dir.parent.is_symlink()):
        raise refuse(ErrorCode.FORBIDDEN, "recording folder is a link")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise refuse(ErrorCode.NOT_FOUND, "no such segment on the camera") from None
    except OSError as exc:
        raise refuse(ErrorCode.FORBIDDEN, exc.strerror or "cannot open") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise refuse(ErrorCode.FORBIDDEN, "not a regular file")
        digest = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
    finally:
        os.close(fd)
    actual = digest.hexdigest()
    if not hmac.compare_digest(actual.encode(), receipt.sha256.encode()):
        raise refuse(
            ErrorCode.RECEIPT_REJECTED,
            f"sha256 on the camera is {actual[:16]}..., the receipt is for "
            f"{receipt.sha256[:16]}...",
        )
    path.unlink()
    fsync_dir(rec_dir)
    removed = remove_recording_if_released(rec_dir, services.device_key.public_bytes())
    record_event(
        services,
        "segment_released",
        recording_id=receipt.recording_id,
        segment=receipt.segment,
        sha256=receipt.sha256,
        dock=receipt.dock_public.hex(),
        recording_removed=removed,
    )
    log.info("released %s (recording folder removed: %s)", where, removed)
    return {"deleted": True, "recording_removed": removed}


def remove_recording_if_released(rec_dir: Path, device_public: bytes) -> bool:
    """Remove a recording folder when it is finished and none of its segments is left.

    "Finished" is what the camera's own signed manifest says (an END or RECOVERED_END
    entry, crypto/FORMAT.md); a recording still being written, or one whose manifest
    does not verify, is kept whatever is released from it.
    """
    from crypto.errors import FormatError
    from crypto.verify import verify_manifest

    # Cheap first: while two or more files besides the header and manifest are left, the
    # folder stays whatever the manifest says, so its signature chain (an Ed25519 check
    # per segment) is verified only near the end, not on every RELEASE of a docking.
    if sum(e.name not in _RECORDING_METADATA for e in safe_listdir(rec_dir)) >= 2:
        return False
    try:
        recording = verify_manifest(rec_dir, device_public)
    except (FormatError, OSError, ValueError) as exc:
        log.warning("keeping %s: its manifest does not verify (%s)", rec_dir.name, exc)
        return False
    if not recording.complete:
        return False
    if any((rec_dir / entry.name).exists() for entry in recording.segments):
        return False
    # Only the recording's own header and manifest go with it. Anything else in the
    # folder (a segment the manifest does not list, a file someone put there) is not the
    # camera's to judge: the folder is kept and the dock reports what it found.
    entries = safe_listdir(rec_dir)
    for entry in entries:
        if entry.name not in _RECORDING_METADATA:
            log.warning(
                "keeping %s: it holds %s, which its manifest does not list",
                rec_dir.name,
                entry.name,
            )
            return False
    for entry in entries:
        os.unlink(entry.path)
    rec_dir.rmdir()
    fsync_dir(rec_dir.parent)
    return True
