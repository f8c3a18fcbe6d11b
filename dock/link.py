"""The dock's client for a camera's serial control channel (protocol: formats/PROTOCOL.md).

`CameraLink` opens any pyserial URL (a pty path such as /dev/pts/5, `socket://`,
`loop://`) and offers one typed method per command. Every request carries a
sequence number and, after AUTH, a session tag; resends and re-authentication are
the session's (dock/link_session.py), the replies' types and errors are
dock/link_replies.py. This module is the commands, one method each.

```
with CameraLink("/dev/pts/5") as link:
    info = link.hello()
    link.auth(dock_key, registered_device_public)
    link.set_time(clock.now())
    for rec in link.list_recordings(): ...
    link.read_file_to("recordings/<id>/<segment>", out, start_offset=out.tell())
    link.release(ReleaseReceipt.sign(dock_key, info.device_id, rec_id, segment, sha256))
```
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any, BinaryIO

from dock.link_replies import (
    AuthFailed,
    ClockRefused,
    HelloInfo,
    LinkClosed,
    LinkError,
    LinkTampered,
    LinkTimeout,
    ProfileInfo,
    ProfileRefused,
    ReceiptRejected,
    RecordingListing,
    RemoteFile,
    RemoteNotFound,
    SessionLost,
    profile_info,
    reply_size,
)
from dock.link_session import LinkSession
from dock.names import CameraListing, ListingBounds, ListingBuilder
from formats.protocol import (
    MAX_DATA,
    ErrorCode,
    MessageType,
    ReleaseReceipt,
)

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]  # (bytes done, bytes total)
DEFAULT_CHUNK = 1024  # profile chunks: small enough for a visible progress bar
MAX_LISTED_KEY = 256  # `after` of LIST_RECORDINGS (formats/PROTOCOL.md)


class CameraLink(LinkSession):
    """Client of one camera's control channel: one typed method per command.
    Not thread-safe: one caller at a time."""

    def status(self) -> dict[str, Any]:
        return dict(self.call(MessageType.STATUS).fields.data)

    def set_time(self, utc: float) -> float:
        """Set the camera clock; returns the drift the camera had (camera minus dock)."""
        return self.call(MessageType.SET_TIME, {"utc": float(utc)}).fields.number(
            "drift", -1e12, 1e12
        )

    def profile_flash(
        self,
        data: bytes,
        signature_file: bytes,
        progress: ProgressCallback | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> ProfileInfo:
        """Flash a signed profile (A/B) and check the read-back; returns what is now active."""
        sha256 = hashlib.sha256(data).hexdigest()
        total = len(data)
        begin = self.call(
            MessageType.PROFILE_BEGIN, {"size": total, "sha256": sha256}, signature_file
        ).fields
        chunk = max(1, min(chunk_size, begin.integer("chunk_max", 1, MAX_DATA)))
        if progress:
            progress(0, total)
        for offset in range(0, total, chunk):
            piece = data[offset : offset + chunk]
            self.call(MessageType.PROFILE_CHUNK, {"offset": offset}, piece)
            if progress:
                progress(offset + len(piece), total)
        committed = self.call(MessageType.PROFILE_COMMIT).fields
        slot = committed.text("slot", 1)
        back = self.profile_read()
        if back.data != data or back.signature_file != signature_file or back.slot != slot:
            raise LinkError(
                ErrorCode.BAD_STATE,
                "read-back after flashing does not match what was sent; flash again",
            )
        return back

    def profile_read(self) -> ProfileInfo:
        """The camera's active profile, exactly as flashed, with its signature file."""
        msg = self.call(MessageType.PROFILE_READ)
        info = profile_info(msg.fields)
        slot = msg.fields.optional("slot")
        sig = msg.fields.optional("signature_file")
        return ProfileInfo(
            name=info.name,
            version=info.version,
            sha256=info.sha256,
            signer=info.signer,
            slot=slot if isinstance(slot, str) else None,
            data=msg.blob,
            signature_file=sig.encode("utf-8") if isinstance(sig, str) else None,
        )

    def list_recordings(self) -> list[RecordingListing]:
        """Every file under recordings/ whose name the dock accepts, grouped, sorted.

        Names the dock refuses (dock/names.py) are logged and left out; `list_files`
        returns them with their reasons.
        """
        listing = self.list_files()
        for path, reason in listing.refused.items():
            log.warning("camera %s lists %s: %s", self.device_id, path, reason)
        return [
            RecordingListing(rid, tuple(RemoteFile(rid, n, s) for n, s in sorted(fs.items())))
            for rid, fs in sorted(listing.recordings.items())
        ]

    def list_files(self, bounds: ListingBounds | None = None) -> CameraListing:
        """LIST_RECORDINGS, every page, each name checked where it enters the dock.

        A camera chooses these names, so each one goes through dock/names.py: refused
        names are set aside with their reason and never become paths. At most
        `bounds.max_files` entries are read (ListingRefused beyond), so a camera cannot
        make the dock hold an unbounded listing.
        """
        builder = ListingBuilder(bounds)
        after = ""
        while True:  # bounded: every entry counts against the builder's bound
            f = self.call(MessageType.LIST_RECORDINGS, {"after": after}).fields
            files = f.optional("files")
            if not isinstance(files, list):
                raise LinkError(ErrorCode.BAD_MESSAGE, "LIST_RECORDINGS reply without files")
            moved = False
            for entry in files:
                e = entry if isinstance(entry, dict) else {}
                recording, name = e.get("recording"), e.get("name")
                if isinstance(recording, str) and isinstance(name, str):
                    key = f"{recording}/{name}"
                    if key <= after:
                        raise LinkError(ErrorCode.BAD_MESSAGE, "LIST_RECORDINGS went backwards")
                    if len(key) <= MAX_LISTED_KEY:
                        # `after` goes back to the camera, within the request's bound; a
                        # longer name is refused below and the next entry moves on.
                        after, moved = key, True
                builder.add(recording, name, e.get("size"))
            more = f.optional("more")
            if not isinstance(more, bool):
                raise LinkError(ErrorCode.BAD_MESSAGE, "LIST_RECORDINGS reply without 'more'")
            if not more or not files:
                break
            if not moved:
                raise LinkError(ErrorCode.BAD_MESSAGE, "LIST_RECORDINGS does not move forward")
        return builder.result()

    def read_chunk(self, path: str, offset: int, length: int) -> tuple[int, bytes]:
        """(file size, up to `length` bytes at `offset`) of a file on the camera's volume."""
        if not 0 < length <= MAX_DATA:
            raise ValueError(f"length must be 1..{MAX_DATA}")
        msg = self.call(MessageType.READ, {"path": path, "offset": offset, "length": length})
        size = reply_size(msg, "READ")
        if len(msg.blob) > length:
            raise LinkError(ErrorCode.BAD_MESSAGE, "READ returned more than asked")
        return size, msg.blob

    def read(self, path: str, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset` (in READs of at most 64 KiB); shorter means EOF."""
        if length < 0 or offset < 0:
            raise ValueError("offset and length must not be negative")
        parts: list[bytes] = []
        done = 0
        while done < length:
            want = min(MAX_DATA, length - done)
            size, data = self.read_chunk(path, offset + done, want)
            parts.append(data)
            done += len(data)
            if len(data) < want or offset + done >= size:
                break
        return b"".join(parts)

    def read_file_to(
        self,
        path: str,
        out: BinaryIO,
        start_offset: int = 0,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Copy a camera file from `start_offset` to its end into `out`; returns its size.

        To resume an interrupted copy, open the partial file for appending and pass its
        length as `start_offset`.
        """
        offset = start_offset
        while True:
            size, data = self.read_chunk(path, offset, MAX_DATA)
            if data:
                out.write(data)
                offset += len(data)
            if progress:
                progress(offset, size)
            if offset >= size or not data:
                if offset != size:
                    raise LinkError(
                        ErrorCode.BAD_STATE,
                        f"{path}: copied up to {offset} but the camera says it has {size} bytes",
                    )
                return size

    def event_log(self, offset: int = 0, limit: int | None = None) -> bytes:
        """The camera's signed event log (JSON lines) from byte `offset`: to its end, or at
        most `limit` bytes (never more is asked for, whatever size the camera claims)."""
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError("offset and limit must not be negative")
        parts: list[bytes] = []
        done = 0
        while limit is None or done < limit:
            want = MAX_DATA if limit is None else min(MAX_DATA, limit - done)
            msg = self.call(MessageType.EVENT_LOG, {"offset": offset, "length": want})
            size = reply_size(msg, "EVENT_LOG")
            if len(msg.blob) > want:
                raise LinkError(ErrorCode.BAD_MESSAGE, "EVENT_LOG returned more than asked")
            parts.append(msg.blob)
            offset += len(msg.blob)
            done += len(msg.blob)
            if not msg.blob or offset >= size:
                break
        return b"".join(parts)

    def release(self, receipt: ReleaseReceipt) -> bool:
        """Let the camera delete one segment; returns True if its recording folder went too."""
        f = self.call(MessageType.RELEASE, receipt.to_fields()).fields
        return f.flag("recording_removed", default=False)


# The replies' types are part of the client's interface: callers import them from here.
__all__ = [
    "CameraLink",
    "DEFAULT_CHUNK",
    "ProgressCallback",
    "AuthFailed",
    "ClockRefused",
    "HelloInfo",
    "LinkClosed",
    "LinkError",
    "LinkTampered",
    "LinkTimeout",
    "ProfileInfo",
    "ProfileRefused",
    "ReceiptRejected",
    "RecordingListing",
    "RemoteFile",
    "RemoteNotFound",
    "SessionLost",
]
