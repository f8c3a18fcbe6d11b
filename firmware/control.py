"""The camera's serial command server: framing, sessions and dispatch (formats/PROTOCOL.md).

`CameraControlServer` serves the control channel on the board's serial port
(firmware.hardware.SerialPort: the simulator's pty, sim/pty.py) or on any
pyserial URL (firmware.transport). It reaches the rest of the camera only
through the small `CameraServices` interface (firmware.services), so the
firmware's camera object (or a test fake) plugs in without this module knowing it.

Everything the dock may do is answered here: identify, authenticate both ways,
read status, set the clock, list and read the sealed files on the volume
(firmware.volume_files), read the signed event log; flashing a signed profile A/B
is firmware.flashing, releasing (deleting) a segment against a receipt signed by
a trusted dock is firmware.release. Nothing here can decrypt, play or delete
footage without such a receipt. A bad frame or request is answered with an error
and the server keeps serving.

A session (PROTOCOL.md section 8) lives only as long as the connection it was
opened on: the serial line reports every change of connection (the pty watches
every open and close of its slave device and the hangup EIO) and any of them
ends the session. Sessions also expire (idle, maximum age, on the camera's
monotonic clock), and every frame of a session must carry its HMAC tag, so a
frame written on the line by anyone but the authenticated dock is refused and
never executed.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.connection import Connection
from firmware.flashing import ProfileFlashing
from firmware.hardware import LineReset, LineStopped, SerialLine, SerialPort
from firmware.profile_store import ProfileStore, StoredProfile
from firmware.release import release_segment, remove_recording_if_released
from firmware.services import CameraServices, EventSink, record_event
from firmware.transport import SerialLike, serial_port_for
from firmware.volume_files import (
    EVENT_LOG_PATH,
    list_recordings,
    read_bytes,
    storage_summary,
    volume_file,
)
from formats.profile_sign import profile_identity, short_key
from formats.protocol import (
    CLOCK_JUMP_SECONDS,
    MAX_DATA,
    MAX_PATH,
    NONCE_SIZE,
    PATH_PATTERN,
    PROTOCOL_VERSION,
    PUBLIC_KEY_SIZE,
    SEQUENCE_WINDOW,
    SESSION_IDLE_SECONDS,
    SESSION_MAX_SECONDS,
    SIGNATURE_SIZE,
    ErrorCode,
    Fields,
    Frame,
    FrameDecoder,
    FrameError,
    FrameKey,
    MessageType,
    ProtocolError,
    auth_transcript,
    camera_auth_message,
    decode_payload,
    derive_session_keys,
    dock_auth_message,
    encode_frame,
    encode_payload,
    error_payload,
    response_type,
)

# CameraServices and the rest are defined beside their concern and named here too, so
# `from firmware.control import ...` keeps working for the server's users.
__all__ = [
    "NOT_AUTHENTICATED_MESSAGE",
    "CameraControlServer",
    "CameraServices",
    "EventSink",
    "SerialLike",
    "remove_recording_if_released",
]

log = logging.getLogger(__name__)

_MIN_UTC = 946_684_800.0  # 2000-01-01
_MAX_UTC = 7_258_118_400.0  # 2200-01-01
# Says what to do, not which number was expected: that is session state.
_SEQUENCE_MESSAGE = (
    "request out of order or replayed, not executed: send each new request with the next "
    "sequence number"
)
# One answer for every frame that is not part of a session, whether or not one is open:
# an error must not tell a stranger on the line what state the camera is in.
NOT_AUTHENTICATED_MESSAGE = (
    "not authenticated: send HELLO and AUTH; in a session every frame carries the session tag"
)


_Handler = Callable[[Fields, bytes], tuple[dict[str, Any], bytes]]


class CameraControlServer:
    """Serves the control protocol for one camera on its serial port, in a thread.

    ```
    server = CameraControlServer(services, board.serial_port())  # sim: a PtySerialPort
    path = server.start()                           # e.g. /dev/pts/5, for serial_for_url
    ...
    server.stop()                                   # joins the thread, closes the line
    ```
    `port` may instead be a pyserial URL or an open port object (not closed by stop()).
    Without a port the server can still `handle()` frames but not `start()`.
    """

    def __init__(
        self,
        services: CameraServices,
        port: SerialPort | str | SerialLike | None = None,
        *,
        store: ProfileStore | None = None,
    ) -> None:
        self.services = services
        self._port = serial_port_for(port) if port is not None else None
        self.profiles = ProfileFlashing(services, store)
        self._stop_r, self._stop_w = -1, -1
        self._line: SerialLine | None = None
        self._thread: threading.Thread | None = None
        self._conn = Connection()
        self.path: str | None = None
        self.frames_rejected = 0
        self.requests_served = 0
        self.connection_resets = 0  # port opened/closed or hung up, as the server saw it
        self.frames_refused = 0  # frames refused for a missing or wrong session tag
        self._handlers: dict[int, tuple[bool, _Handler]] = {
            MessageType.HELLO: (False, self._hello),
            MessageType.AUTH_BEGIN: (False, self._auth_begin),
            MessageType.AUTH_FINISH: (False, self._auth_finish),
            MessageType.STATUS: (True, self._status),
            MessageType.SET_TIME: (True, self._set_time),
            MessageType.PROFILE_BEGIN: (True, self._profile_begin),
            MessageType.PROFILE_CHUNK: (True, self._profile_chunk),
            MessageType.PROFILE_COMMIT: (True, self._profile_commit),
            MessageType.PROFILE_READ: (True, self._profile_read),
            MessageType.LIST_RECORDINGS: (True, self._list_recordings),
            MessageType.READ: (True, self._read),
            MessageType.EVENT_LOG: (True, self._event_log),
            MessageType.RELEASE: (True, self._release),
        }

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> str:
        """Open the port and serve it in a thread; returns the path/URL clients open."""
        if self._thread is not None:
            raise RuntimeError("the control server is already running")
        if self._port is None:
            raise RuntimeError(
                "the control server has no serial port: pass the board's serial_port() "
                "(sim.pty.PtySerialPort in the simulator) or a pyserial URL"
            )
        self.profiles.load()
        self._stop_r, self._stop_w = os.pipe()
        try:
            self._line = self._port.open_line(self._stop_r)
        except BaseException:
            self._close_stop_pipe()
            raise
        self.path = self._line.name
        self._conn = Connection()
        self._thread = threading.Thread(
            target=self._serve, name=f"camera-control-{self.services.device_id}", daemon=True
        )
        self._thread.start()
        log.info("camera %s serving its control channel on %s", self.services.device_id, self.path)
        return self.path

    @property
    def store(self) -> ProfileStore:
        """The camera's profile store (A/B slots)."""
        return self.profiles.store

    def stop(self) -> None:
        """Stop serving, join the thread, close the port. Safe to call twice."""
        thread = self._thread
        if thread is None:
            return
        os.write(self._stop_w, b"x")
        thread.join()
        self._thread = None
        self._end_session("stopped")
        if self._line is not None:
            self._line.close()
            self._line = None
        self._close_stop_pipe()
        log.info("camera %s control channel closed", self.services.device_id)

    def _close_stop_pipe(self) -> None:
        os.close(self._stop_r)
        os.close(self._stop_w)
        self._stop_r = self._stop_w = -1

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> CameraControlServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        assert self._line is not None
        line = self._line
        decoder = FrameDecoder()
        try:
            while True:
                try:
                    data = line.read()
                except LineReset:
                    self._connection_reset()
                    decoder.reset()  # half a frame of the previous client is not the next's
                    continue
                if not data:
                    continue
                for item in decoder.feed(data):
                    reply = self.handle(item)
                    if reply:
                        line.write(reply)
        except LineStopped:
            return
        except Exception:  # the port itself failed: nothing left to answer on
            log.exception("camera %s control channel failed", self.services.device_id)

    # --- request handling ----------------------------------------------------------------

    def handle(self, item: Frame | FrameError) -> bytes:
        """Answer one decoded frame (or a frame error) with the bytes to send back."""
        if isinstance(item, FrameError):
            self.frames_rejected += 1
            log.debug("rejected frame: %s", item.message)
            return encode_frame(MessageType.ERROR, 0, error_payload(item.code, item.message))
        if item.type == MessageType.ERROR:
            # Never answer an error: two confused peers (or a loopback) must not ping-pong.
            self.frames_rejected += 1
            return b""
        conn = self._conn
        if (
            conn.last_body is not None
            and conn.last_response is not None
            and item.seq == conn.last_seq
            and hmac.compare_digest(item.body, conn.last_body)
        ):
            return conn.last_response  # a retry: answer again, do not execute again
        if item.seq == 0:
            return self._error(item.seq, ErrorCode.SEQUENCE, "sequence number 0 is reserved")
        self._expire_session()
        keys = conn.keys
        if item.type == MessageType.HELLO:
            self._end_session("hello")
            self.profiles.forget_boot_profile()
        elif keys is not None:
            # In a session only the authenticated dock speaks: the tag is checked before
            # anything else about the frame is believed, its sequence number included.
            if not keys.dock_to_camera.verify(item):
                conn.frames_refused += 1
                self.frames_refused += 1
                if conn.frames_refused in (1, 10, 100) or conn.frames_refused % 1000 == 0:
                    # Bounded: whoever floods the line must not flood the log as well.
                    log.warning(
                        "camera %s refused %d frame(s) without a valid session tag",
                        self.services.device_id,
                        conn.frames_refused,
                    )
                return self._error(item.seq, ErrorCode.NOT_AUTHENTICATED, NOT_AUTHENTICATED_MESSAGE)
            if not self._in_window(item.seq):
                return self._error(
                    item.seq, ErrorCode.SEQUENCE, _SEQUENCE_MESSAGE, keys.camera_to_dock
                )
            conn.last_used = self._monotonic()
        else:
            if item.tagged:  # a frame of a session that is gone
                return self._error(item.seq, ErrorCode.NOT_AUTHENTICATED, NOT_AUTHENTICATED_MESSAGE)
            if not self._in_window(item.seq):
                return self._error(item.seq, ErrorCode.SEQUENCE, _SEQUENCE_MESSAGE)
        reply = self._execute(item)
        conn.last_seq, conn.last_body, conn.last_response = item.seq, item.body, reply
        self.requests_served += 1
        return reply

    def _in_window(self, seq: int) -> bool:
        last = self._conn.last_seq
        if last is None:
            return True
        ahead = (seq - last) & 0xFFFFFFFF
        return 0 < ahead <= SEQUENCE_WINDOW

    def _monotonic(self) -> float:
        return float(self.services.clock.monotonic())

    def _expire_session(self) -> None:
        conn = self._conn
        if conn.keys is None:
            return
        now = self._monotonic()
        if now - conn.opened_at > SESSION_MAX_SECONDS:
            self._end_session("lifetime")
        elif now - conn.last_used > SESSION_IDLE_SECONDS:
            self._end_session("idle")

    def _end_session(self, reason: str) -> None:
        """End the session (if one is open), log why; the connection's sequence stays."""
        conn = self._conn
        if conn.keys is not None:
            self._log_event(
                "session_ended",
                reason=reason,
                dock=(conn.dock_public or b"").hex(),
                frames_refused=conn.frames_refused,
            )
            log.info("camera %s: session ended (%s)", self.services.device_id, reason)
        conn.end_session()

    def _connection_reset(self) -> None:
        """A client opened or closed the port: nothing of the previous connection survives."""
        self.connection_resets += 1
        self._end_session("connection")
        self._conn = Connection()

    def _error(
        self,
        seq: int,
        code: ErrorCode,
        message: str,
        key: FrameKey | None = None,
        **extra: Any,
    ) -> bytes:
        return encode_frame(MessageType.ERROR, seq, error_payload(code, message, **extra), key)

    def _reply_key(self) -> FrameKey | None:
        # Looked up after the command ran: AUTH_FINISH's answer carries the new session's
        # tag, AUTH_BEGIN's (which ended the session) none.
        keys = self._conn.keys
        return keys.camera_to_dock if keys is not None else None

    def _execute(self, frame: Frame) -> bytes:
        entry = self._handlers.get(frame.type)
        try:
            if entry is None:
                raise ProtocolError(
                    ErrorCode.UNKNOWN_COMMAND, f"message type 0x{frame.type:02x} is not a command"
                )
            needs_session, handler = entry
            if needs_session and not self._conn.authenticated:
                raise ProtocolError(ErrorCode.NOT_AUTHENTICATED, NOT_AUTHENTICATED_MESSAGE)
            fields, blob = decode_payload(frame.payload)
            out, out_blob = handler(fields, blob)
            return encode_frame(
                response_type(frame.type),
                frame.seq,
                encode_payload(out, out_blob),
                self._reply_key(),
            )
        except ProtocolError as exc:
            return self._error(frame.seq, exc.code, exc.message, self._reply_key(), **exc.extra)
        except Exception as exc:
            log.exception("command 0x%02x failed", frame.type)
            return self._error(
                frame.seq, ErrorCode.INTERNAL, f"camera error: {exc}", self._reply_key()
            )

    # --- helpers -------------------------------------------------------------------------

    def _log_event(self, kind: str, **fields: Any) -> None:
        record_event(self.services, kind, **fields)

    def _current(self) -> StoredProfile:
        return self.profiles.current()

    def _storage(self) -> dict[str, Any]:
        capacity = int(self._current().profile.device.storage_capacity_mb) * 1024 * 1024
        return storage_summary(Path(self.services.volume), capacity)

    # --- commands ------------------------------------------------------------------------

    def _hello(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        client = fields.text("client", 64, default="")
        s = self.services
        current = self._current()
        log.info("HELLO from %r", client)
        return {
            "protocol": PROTOCOL_VERSION,
            "device_id": s.device_id,
            "model": s.model,
            "firmware": s.firmware_version,
            "device_public": s.device_key.public_bytes().hex(),
            "profile": self.profiles.info(current),
            "transfer_mode": str(current.profile.transfer.mode),
            "storage": self._storage(),
        }, b""

    def _auth_begin(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        from crypto.keys import x25519_exchange, x25519_public_from_private

        conn = self._conn
        self._end_session("auth")
        dock_public = fields.hexbytes("dock_public", PUBLIC_KEY_SIZE)
        dock_nonce = fields.hexbytes("dock_nonce", NONCE_SIZE)
        dock_share = fields.hexbytes("dock_share", PUBLIC_KEY_SIZE)
        if dock_public not in self.profiles.trusted_docks():
            name, version = profile_identity(self._current().profile)
            self._log_event("auth_failed", dock=dock_public.hex(), reason="dock key not trusted")
            raise ProtocolError(
                ErrorCode.AUTH_FAILED,
                f"dock key {short_key(dock_public)} is not in the trusted_docks of profile "
                f"{name!r} version {version}",
            )
        # A fresh ephemeral key per AUTH: its private half lives only in this call, the
        # agreement only until AUTH_FINISH.
        ephemeral = secrets.token_bytes(PUBLIC_KEY_SIZE)
        camera_share = x25519_public_from_private(ephemeral)
        try:
            shared = x25519_exchange(ephemeral, dock_share)
        except ValueError:
            shared = b""
        del ephemeral
        if len(shared) != PUBLIC_KEY_SIZE or not any(shared):
            self._log_event("auth_failed", dock=dock_public.hex(), reason="unusable key share")
            raise ProtocolError(
                ErrorCode.AUTH_FAILED, "dock_share is not a usable X25519 public key"
            )
        camera_nonce = secrets.token_bytes(NONCE_SIZE)
        device_id = self.services.device_id
        transcript = auth_transcript(
            device_id, dock_public, dock_nonce, camera_nonce, dock_share, camera_share
        )
        signature = self.services.device_key.sign(camera_auth_message(transcript))
        conn.challenge = (dock_public, transcript, shared)
        return {
            "camera_nonce": camera_nonce.hex(),
            "camera_share": camera_share.hex(),
            "device_signature": signature.hex(),
        }, b""

    def _auth_finish(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        from crypto.keys import verify_signature

        conn = self._conn
        challenge, conn.challenge = conn.challenge, None  # single use, right or wrong
        signature = fields.hexbytes("dock_signature", SIGNATURE_SIZE)
        if challenge is None:
            raise ProtocolError(ErrorCode.AUTH_FAILED, "no challenge pending: send AUTH_BEGIN")
        dock_public, transcript, shared = challenge
        message = dock_auth_message(transcript)
        if not verify_signature(dock_public, message, signature):
            self._log_event("auth_failed", dock=dock_public.hex(), reason="bad dock signature")
            raise ProtocolError(
                ErrorCode.AUTH_FAILED,
                f"dock signature does not verify for key {short_key(dock_public)}",
            )
        conn.keys = derive_session_keys(shared, message)
        conn.dock_public = dock_public
        conn.opened_at = conn.last_used = self._monotonic()
        conn.frames_refused = 0
        self._log_event("dock_authenticated", dock=dock_public.hex())
        return {"session": True}, b""

    def _status(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        # Round-trip through JSON with str() for anything exotic, so a status field of an
        # unexpected type shows up as text instead of failing the command.
        camera = json.loads(json.dumps(self.services.status(), default=str))
        return {
            "utc": self.services.clock.now(),
            "camera": camera,
            "profile": self.profiles.info(self._current()),
        }, b""

    def _set_time(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        utc = fields.number("utc", _MIN_UTC, _MAX_UTC)
        profile = self._current().profile
        limit = int(profile.device.max_clock_correction_seconds)
        planned = float(self.services.clock.now()) - utc
        if abs(planned) > limit:
            # Even a trusted dock does not move the time of evidence further than the
            # profile allows: a reset RTC or a wrong dock clock needs a person to look.
            self._log_event(
                "clock_sync_refused", dock_utc=utc, drift_seconds=planned, limit_seconds=limit
            )
            log.warning(
                "camera %s refused a clock correction of %+.1f s (limit %d s)",
                self.services.device_id,
                -planned,
                limit,
            )
            name, version = profile_identity(profile)
            raise ProtocolError(
                ErrorCode.CLOCK_REFUSED,
                f"the camera clock is {planned:+.1f} s off the dock's; profile {name!r} "
                f"version {version} allows corrections of at most {limit} s "
                "(device.max_clock_correction_seconds): clock not changed",
                drift=planned,
                limit=limit,
            )
        drift = float(self.services.clock.set_time(utc))
        self._log_event("clock_sync", dock_utc=utc, drift_seconds=drift)
        if abs(drift) > CLOCK_JUMP_SECONDS:
            self._log_event("clock_jump", dock_utc=utc, drift_seconds=drift)
            log.warning("camera %s clock corrected by %+.1f s", self.services.device_id, -drift)
        else:
            log.info("clock set by the dock, drift %.3f s", drift)
        return {"drift": drift}, b""

    def _profile_begin(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        conn = self._conn
        if conn.flash is not None:
            conn.flash.abort()
            conn.flash = None
        conn.flash, answer = self.profiles.begin(fields, blob)
        return answer, b""

    def _profile_chunk(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        return self.profiles.chunk(self._conn.flash, fields, blob), b""

    def _profile_commit(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        flash, self._conn.flash = self._conn.flash, None
        return self.profiles.commit(flash), b""

    def _profile_read(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        return self.profiles.read()

    def _list_recordings(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        after = fields.text("after", 2 * 128 + 1, default="")
        return list_recordings(Path(self.services.volume), after), b""

    def _read(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        relative = fields.text("path", MAX_PATH, pattern=PATH_PATTERN)
        offset = fields.integer("offset", 0, 2**53)
        length = fields.integer("length", 1, MAX_DATA)
        size, data = read_bytes(volume_file(Path(self.services.volume), relative), offset, length)
        return {"size": size, "offset": offset}, data

    def _event_log(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        offset = fields.integer("offset", 0, 2**53)
        length = fields.integer("length", 1, MAX_DATA)
        path = Path(self.services.volume) / EVENT_LOG_PATH
        if not path.exists():
            return {"size": 0}, b""
        size, data = read_bytes(
            volume_file(Path(self.services.volume), str(EVENT_LOG_PATH)), offset, length
        )
        return {"size": size}, data

    def _release(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        return release_segment(self.services, fields, self.profiles.trusted_docks()), b""
