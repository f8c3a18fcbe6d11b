"""The camera's serial command server (protocol: firmware/PROTOCOL.md).

`CameraControlServer` serves the control channel on a pty it creates (the
simulator's stand-in for the camera's USB serial port) or on any pyserial URL.
It reaches the rest of the camera only through the small `CameraServices`
interface below, so the firmware's camera object (or a test fake) plugs in
without this module knowing it.

Everything the dock may do is here: identify, authenticate both ways, read
status, set the clock, flash a signed profile A/B, list and read the sealed
files on the volume, read the signed event log, and release (delete) a
segment against a receipt signed by a trusted dock. Nothing here can decrypt,
play or delete footage without such a receipt. A bad frame or request is
answered with an error and the server keeps serving.

A session (PROTOCOL.md section 8) lives only as long as the connection it was
opened on: the pty transport watches every open and close of its slave device
(inotify) and the hangup EIO, and any of them ends the session. Sessions also
expire (idle, maximum age, on the camera's monotonic clock), and every frame of
a session must carry its HMAC tag, so a frame written on the line by anyone but
the authenticated dock is refused and never executed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import select
import stat
import struct
import threading
import tty
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from crypto.files import fsync_dir
from crypto.format import HEADER_NAME, MANIFEST_NAME, segment_index_of
from firmware.eventlog import events_path
from firmware.profile_sign import (
    ProfileSignatureError,
    profile_identity,
    short_key,
    verify_signature_file,
)
from firmware.profile_store import (
    FlashSession,
    FlashStateError,
    ProfileRejected,
    ProfileStore,
    StoredProfile,
)
from firmware.protocol import (
    CLOCK_JUMP_SECONDS,
    LIST_PAGE_ENTRIES,
    MAX_DATA,
    MAX_JSON,
    MAX_PATH,
    MAX_PROFILE,
    MAX_SIGNATURE_FILE,
    NAME_PATTERN,
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
    ReleaseReceipt,
    SessionKeys,
    Signer,
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

if TYPE_CHECKING:
    from firmware.profile import Profile

log = logging.getLogger(__name__)

EVENT_LOG_PATH = events_path(Path("."))  # relative to the volume root
RECORDINGS_DIR = "recordings"
PROFILE_CHUNK_MAX = 16 * 1024
_MIN_UTC = 946_684_800.0  # 2000-01-01
_MAX_UTC = 7_258_118_400.0  # 2200-01-01
_LIST_PAGE_BUDGET = MAX_JSON - 1024  # bytes of JSON a LIST_RECORDINGS page may use
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


# --- what the server needs of the camera -------------------------------------------------


class SettableClock(Protocol):
    """The camera clock as the control channel sees it."""

    def now(self) -> float:
        """UTC seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never moved by set_time (session expiry)."""
        ...

    def set_time(self, utc: float) -> float:
        """Set the clock to `utc`; return the drift (camera time minus `utc`) before the change."""
        ...


class EventSink(Protocol):
    """The camera's signed event log (firmware.eventlog)."""

    def append(self, kind: str, **fields: Any) -> object: ...


class CameraServices(Protocol):
    """What CameraControlServer needs of the camera. Called from the server's thread.

    Attributes may be plain attributes or read-only properties.
    """

    @property
    def device_id(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def firmware_version(self) -> str: ...

    @property
    def device_key(self) -> Signer:
        """The camera's Ed25519 device key (crypto.keys.SigningKey); it signs AUTH replies."""
        ...

    @property
    def home(self) -> Path:
        """Camera-private home; the profile store lives in HOME/profiles."""
        ...

    @property
    def volume(self) -> Path:
        """The camera's flash storage (what mass storage exposes); READ is confined to it."""
        ...

    @property
    def clock(self) -> SettableClock: ...

    @property
    def event_log(self) -> EventSink: ...

    def status(self) -> dict[str, Any]:
        """A JSON-serialisable status object (state, storage, buffer, ...)."""
        ...

    def active_profile(self) -> tuple[bytes, Profile]:
        """The profile the camera was started with (raw TOML, parsed).

        Used when nothing has been flashed into the profile store yet.
        """
        ...

    def on_profile_activated(self, raw: bytes, profile: Profile) -> None:
        """A flashed profile was committed; the camera applies it at its next standby."""
        ...


# --- transports --------------------------------------------------------------------------


class _Stopped(Exception):
    """The server was asked to stop while waiting for I/O."""


class _ConnectionReset(Exception):
    """The transport saw the connection change: a client opened or closed the port, or hung up."""


# inotify (Linux): open and close events of the pty's slave device, i.e. of the serial port.
_IN_CLOSE_WRITE = 0x00000008
_IN_CLOSE_NOWRITE = 0x00000010
_IN_OPEN = 0x00000020
_INOTIFY_EVENT = struct.Struct("iIII")  # wd, mask, cookie, name length


class _PortWatch:
    """Reports every open and close of a device node (inotify); inert where unavailable.

    A client opening or closing the camera's port is what the connection is: the pty
    itself does not say that a new client took over between two reads, inotify does, in
    order (the open event is queued before the new client's first byte can arrive).
    """

    def __init__(self, path: str) -> None:
        self.fd = -1
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                raise OSError(ctypes.get_errno(), "inotify_init1")
            mask = _IN_OPEN | _IN_CLOSE_WRITE | _IN_CLOSE_NOWRITE
            if libc.inotify_add_watch(fd, os.fsencode(path), mask) < 0:
                os.close(fd)
                raise OSError(ctypes.get_errno(), "inotify_add_watch")
            self.fd = fd
        except (OSError, AttributeError) as exc:  # not Linux, or no inotify left
            log.warning("cannot watch %s for open/close (%s): only hangups end a session",
                        path, exc)

    def changed(self) -> str | None:
        """Drain the queued events: None if the port was neither opened nor closed since
        last time, else "open" or "close", whichever happened last."""
        if self.fd < 0:
            return None
        last: str | None = None
        while True:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                return last
            if not data:
                return last
            offset = 0
            while offset + _INOTIFY_EVENT.size <= len(data):
                _, mask, _, name_len = _INOTIFY_EVENT.unpack_from(data, offset)
                offset += _INOTIFY_EVENT.size + name_len
                if mask & _IN_OPEN:
                    last = "open"
                elif mask & (_IN_CLOSE_WRITE | _IN_CLOSE_NOWRITE):
                    last = "close"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _Transport(Protocol):
    def read(self) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class _PtyTransport:
    """The master side of a pty; the slave is what clients open with pyserial.

    The server does not hold the slave open itself: then the last client's close is a
    hangup the master sees (EIO), like a USB host dropping the line. Together with the
    open/close watch, `read` raises _ConnectionReset whenever the connection changed.
    """

    def __init__(self, stop_fd: int) -> None:
        self.master, slave = os.openpty()
        # Raw mode: no echo, no line discipline rewriting 0x0a/0x0d or eating 0x03.
        tty.setraw(slave)
        self.slave_path = os.ttyname(slave)
        os.close(slave)
        self._hung_up = True  # until a client opens the port
        self._reset_seen = False  # an open/close noticed while writing, not yet reported
        self._watch = _PortWatch(self.slave_path)
        flags = fcntl.fcntl(self.master, fcntl.F_GETFL)
        fcntl.fcntl(self.master, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self._stop_fd = stop_fd

    def read(self) -> bytes:
        watched = [self._watch.fd] if self._watch.fd >= 0 else []
        if self._hung_up:
            # No client holds the slave: the master would poll readable (hangup) at once.
            # Wait for an open event (or poll the master now and then without inotify).
            ready, _, _ = select.select([self._stop_fd, *watched], [], [], 0.05)
        else:
            ready, _, _ = select.select([self.master, self._stop_fd, *watched], [], [])
        if self._stop_fd in ready:
            raise _Stopped
        # Open/close events first: they were queued before any byte of a new client.
        if self._port_changed() or self._reset_seen:
            self._reset_seen = False
            raise _ConnectionReset
        try:
            data = os.read(self.master, 256 * 1024)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            if not self._hung_up:
                self._hung_up = True
                raise _ConnectionReset from None
            return b""
        self._hung_up = False
        return data

    def _port_changed(self) -> bool:
        change = self._watch.changed()
        if change == "open":
            self._hung_up = False  # a client holds the port now: wait on the master again
        return change is not None

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
                view = view[n:]
            except BlockingIOError:
                # The client is not reading (or gone): wait for room, but stay stoppable.
                ready, _, _ = select.select([self._stop_fd], [self.master], [], 0.05)
                if self._stop_fd in ready:
                    raise _Stopped from None
                if not ready and self._port_changed():
                    self._reset_seen = True  # reported by the next read
                    return  # the client changed: this answer has nobody to go to
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                return  # hung up: the next read reports it

    def close(self) -> None:
        self._watch.close()
        try:
            os.close(self.master)
        except OSError:
            pass


class SerialLike(Protocol):
    """The part of a pyserial port the server and the client use."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...


class _SerialTransport:
    """Any pyserial URL (or an already open port-like object)."""

    def __init__(self, port: SerialLike, stop: threading.Event, owned: bool) -> None:
        self._port = port
        self._stop = stop
        self._owned = owned

    def read(self) -> bytes:
        if self._stop.is_set():
            raise _Stopped
        waiting = self._port.in_waiting
        data = self._port.read(waiting if waiting else 1)  # blocks at most the port timeout
        if self._stop.is_set():
            raise _Stopped
        return data

    def write(self, data: bytes) -> None:
        self._port.write(data)

    def close(self) -> None:
        if self._owned:
            self._port.close()


# --- per-connection state ----------------------------------------------------------------


class _Connection:
    """State of the client currently talking to the camera.

    HELLO resets the session part; a connection reset (port opened or closed) replaces
    the whole object, so no sequence number or cached answer outlives the client.
    """

    def __init__(self) -> None:
        self.last_seq: int | None = None
        self.last_body: bytes | None = None  # the last accepted request, byte for byte
        self.last_response: bytes | None = None
        self.keys: SessionKeys | None = None
        self.dock_public: bytes | None = None
        # dock public key, signed AUTH transcript, X25519 agreement: until AUTH_FINISH
        self.challenge: tuple[bytes, bytes, bytes] | None = None
        self.flash: FlashSession | None = None
        self.opened_at = 0.0
        self.last_used = 0.0
        self.frames_refused = 0

    @property
    def authenticated(self) -> bool:
        return self.keys is not None

    def end_session(self) -> None:
        self.keys = None
        self.dock_public = None
        self.challenge = None
        self.frames_refused = 0
        if self.flash is not None:
            self.flash.abort()
            self.flash = None


_Handler = Callable[[Fields, bytes], tuple[dict[str, Any], bytes]]


class CameraControlServer:
    """Serves the control protocol for one camera on a pty or a serial URL, in a thread.

    ```
    server = CameraControlServer(services)          # pty (default)
    path = server.start()                           # e.g. /dev/pts/5, for serial_for_url
    ...
    server.stop()                                   # joins the thread, closes the pty
    ```
    `port` may instead be a pyserial URL or an open port object (not closed by stop()).
    """

    def __init__(
        self,
        services: CameraServices,
        port: str | SerialLike | None = None,
        *,
        store: ProfileStore | None = None,
    ) -> None:
        self.services = services
        self._port_arg = port
        self.store = store or ProfileStore(Path(services.home) / "profiles")
        self._stop = threading.Event()
        self._stop_r, self._stop_w = -1, -1
        self._transport: _Transport | None = None
        self._thread: threading.Thread | None = None
        self._conn = _Connection()
        self._stored: StoredProfile | None = None
        self._boot: StoredProfile | None = None
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
        self._stored = self.store.load_active()
        self._stop.clear()
        self._stop_r, self._stop_w = os.pipe()
        port = self._port_arg
        transport: _Transport
        if port is None:
            pty = _PtyTransport(self._stop_r)
            transport, self.path = pty, pty.slave_path
        elif isinstance(port, str):
            import serial

            opened = serial.serial_for_url(port, timeout=0.05)
            transport, self.path = _SerialTransport(opened, self._stop, owned=True), port
        else:
            transport, self.path = _SerialTransport(port, self._stop, owned=False), repr(port)
        self._transport = transport
        self._conn = _Connection()
        self._thread = threading.Thread(
            target=self._serve, name=f"camera-control-{self.services.device_id}", daemon=True
        )
        self._thread.start()
        log.info("camera %s serving its control channel on %s", self.services.device_id, self.path)
        return self.path

    def stop(self) -> None:
        """Stop serving, join the thread, close the port. Safe to call twice."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        os.write(self._stop_w, b"x")
        thread.join()
        self._thread = None
        self._end_session("stopped")
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        os.close(self._stop_r)
        os.close(self._stop_w)
        self._stop_r = self._stop_w = -1
        log.info("camera %s control channel closed", self.services.device_id)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> CameraControlServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        assert self._transport is not None
        transport = self._transport
        decoder = FrameDecoder()
        try:
            while True:
                try:
                    data = transport.read()
                except _ConnectionReset:
                    self._connection_reset()
                    decoder.reset()  # half a frame of the previous client is not the next's
                    continue
                if not data:
                    continue
                for item in decoder.feed(data):
                    reply = self.handle(item)
                    if reply:
                        transport.write(reply)
        except _Stopped:
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
            self._boot = None
        elif keys is not None:
            # In a session only the authenticated dock speaks: the tag is checked before
            # anything else about the frame is believed, its sequence number included.
            if not keys.dock_to_camera.verify(item):
                conn.frames_refused += 1
                self.frames_refused += 1
                if conn.frames_refused in (1, 10, 100) or conn.frames_refused % 1000 == 0:
                    # Bounded: whoever floods the line must not flood the log as well.
                    log.warning("camera %s refused %d frame(s) without a valid session tag",
                                self.services.device_id, conn.frames_refused)
                return self._error(item.seq, ErrorCode.NOT_AUTHENTICATED,
                                   NOT_AUTHENTICATED_MESSAGE)
            if not self._in_window(item.seq):
                return self._error(item.seq, ErrorCode.SEQUENCE, _SEQUENCE_MESSAGE,
                                   keys.camera_to_dock)
            conn.last_used = self._monotonic()
        else:
            if item.tagged:  # a frame of a session that is gone
                return self._error(item.seq, ErrorCode.NOT_AUTHENTICATED,
                                   NOT_AUTHENTICATED_MESSAGE)
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
            self._log_event("session_ended", reason=reason, dock=(conn.dock_public or b"").hex(),
                            frames_refused=conn.frames_refused)
            log.info("camera %s: session ended (%s)", self.services.device_id, reason)
        conn.end_session()

    def _connection_reset(self) -> None:
        """A client opened or closed the port: nothing of the previous connection survives."""
        self.connection_resets += 1
        self._end_session("connection")
        self._conn = _Connection()

    def _error(
        self, seq: int, code: ErrorCode, message: str, key: FrameKey | None = None,
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
                response_type(frame.type), frame.seq, encode_payload(out, out_blob),
                self._reply_key(),
            )
        except ProtocolError as exc:
            return self._error(frame.seq, exc.code, exc.message, self._reply_key(), **exc.extra)
        except Exception as exc:
            log.exception("command 0x%02x failed", frame.type)
            return self._error(frame.seq, ErrorCode.INTERNAL, f"camera error: {exc}",
                               self._reply_key())

    # --- helpers -------------------------------------------------------------------------

    def _log_event(self, kind: str, **fields: Any) -> None:
        try:
            self.services.event_log.append(kind, **fields)
        except Exception:  # logging must not turn a served request into a failure
            log.exception("could not write event %s to the event log", kind)

    def _current(self) -> StoredProfile:
        """The profile in force: the flashed one, else the one the camera started with."""
        if self._stored is not None:
            return self._stored
        if self._boot is None:  # parsed once per session, not on every STATUS
            self._boot = self._boot_profile()
        return self._boot

    def _boot_profile(self) -> StoredProfile:
        raw, profile = self.services.active_profile()
        return StoredProfile(
            raw=raw,
            profile=profile,
            sha256=hashlib.sha256(raw).hexdigest(),
            signature=None,
            signature_file=None,
            slot=None,
        )

    def _profile_info(self, stored: StoredProfile) -> dict[str, Any]:
        name, version = profile_identity(stored.profile)
        signer = stored.signer
        return {
            "name": name,
            "version": version,
            "sha256": stored.sha256,
            "signer": signer.hex() if signer else None,
        }

    def _trusted_docks(self) -> set[bytes]:
        trusted: set[bytes] = set()
        for text in self._current().profile.keys.trusted_docks:
            try:
                trusted.add(bytes.fromhex(str(text)))
            except ValueError:
                log.warning("profile lists a trusted dock key that is not hex: %r", text)
        return trusted

    def _storage(self) -> dict[str, Any]:
        recordings = files = total = 0
        root = Path(self.services.volume) / RECORDINGS_DIR
        for rec in _safe_listdir(root):
            if not rec.is_dir(follow_symlinks=False):
                continue
            recordings += 1
            for entry in _safe_listdir(Path(rec.path)):
                if entry.is_file(follow_symlinks=False):
                    files += 1
                    total += entry.stat(follow_symlinks=False).st_size
        capacity = int(self._current().profile.device.storage_capacity_mb) * 1024 * 1024
        return {
            "recordings": recordings,
            "files": files,
            "bytes": total,
            "capacity_bytes": capacity,
        }

    def _volume_file(self, relative: str) -> Path:
        """Resolve a client path inside the volume; refuse anything that leaves it."""
        root = Path(self.services.volume).resolve()
        candidate = root / relative
        try:
            resolved = candidate.resolve(strict=True)
        except FileNotFoundError:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"{relative}: no such file") from None
        if not resolved.is_relative_to(root) or resolved != candidate:
            raise ProtocolError(
                ErrorCode.FORBIDDEN, f"{relative}: leaves the volume through a link"
            )
        return candidate

    def _read_bytes(self, path: Path, offset: int, length: int) -> tuple[int, bytes]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise ProtocolError(ErrorCode.NOT_FOUND, f"{path.name}: no such file") from None
        except OSError as exc:
            raise ProtocolError(ErrorCode.FORBIDDEN, f"{path.name}: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ProtocolError(ErrorCode.FORBIDDEN, f"{path.name}: not a regular file")
            data = os.pread(fd, length, offset) if offset < st.st_size else b""
            return st.st_size, data
        finally:
            os.close(fd)

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
            "profile": self._profile_info(current),
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
        if dock_public not in self._trusted_docks():
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
            "profile": self._profile_info(self._current()),
        }, b""

    def _set_time(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        utc = fields.number("utc", _MIN_UTC, _MAX_UTC)
        profile = self._current().profile
        limit = int(profile.device.max_clock_correction_seconds)
        planned = float(self.services.clock.now()) - utc
        if abs(planned) > limit:
            # Even a trusted dock does not move the time of evidence further than the
            # profile allows: a reset RTC or a wrong dock clock needs a person to look.
            self._log_event("clock_sync_refused", dock_utc=utc, drift_seconds=planned,
                            limit_seconds=limit)
            log.warning("camera %s refused a clock correction of %+.1f s (limit %d s)",
                        self.services.device_id, -planned, limit)
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
        size = fields.integer("size", 1, MAX_PROFILE)
        sha256 = fields.hexbytes("sha256", 32).hex()
        if len(blob) > MAX_SIGNATURE_FILE:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "signature file is too large")
        try:
            verify_signature_file(sha256, blob or None, self.store.integrator_keys() or None)
        except ProfileSignatureError as exc:
            self._log_event("profile_rejected", reason=exc.reason)
            raise ProtocolError(ErrorCode.PROFILE_REJECTED, exc.reason) from None
        try:
            conn.flash = self.store.begin(size, sha256, blob)
        except ProfileRejected as exc:
            raise ProtocolError(ErrorCode.PROFILE_REJECTED, exc.reason) from None
        return {"slot": conn.flash.slot, "chunk_max": PROFILE_CHUNK_MAX}, b""

    def _profile_chunk(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        offset = fields.integer("offset", 0, MAX_PROFILE)
        flash = self._conn.flash
        if flash is None or not flash.open:
            raise ProtocolError(ErrorCode.BAD_STATE, "no flash in progress: send PROFILE_BEGIN")
        if not 0 < len(blob) <= PROFILE_CHUNK_MAX:
            raise ProtocolError(
                ErrorCode.BAD_MESSAGE, f"chunk must carry 1..{PROFILE_CHUNK_MAX} bytes"
            )
        try:
            received = flash.write(offset, blob)
        except FlashStateError as exc:
            raise ProtocolError(ErrorCode.BAD_STATE, str(exc)) from None
        return {"received": received}, b""

    def _profile_commit(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        conn = self._conn
        flash = conn.flash
        if flash is None or not flash.open:
            raise ProtocolError(ErrorCode.BAD_STATE, "no flash in progress: send PROFILE_BEGIN")
        conn.flash = None
        try:
            stored = flash.commit(self._current().profile)
        except FlashStateError as exc:
            flash.abort()
            raise ProtocolError(ErrorCode.BAD_STATE, str(exc)) from None
        except ProfileRejected as exc:
            self._log_event("profile_rejected", reason=exc.reason)
            raise ProtocolError(ErrorCode.PROFILE_REJECTED, exc.reason) from None
        self._stored = stored
        info = self._profile_info(stored)
        self._log_event("profile_flashed", slot=stored.slot, **info)
        try:
            self.services.on_profile_activated(stored.raw, stored.profile)
        except Exception:  # the flash is committed; the camera reloads it at boot anyway
            log.exception("camera failed to take the new profile")
        return {**info, "slot": stored.slot}, b""

    def _profile_read(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        current = self._current()
        sig = current.signature_file
        return {
            **self._profile_info(current),
            "slot": current.slot,
            "signature_file": sig.decode("utf-8", "replace") if sig is not None else None,
        }, current.raw

    def _list_recordings(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        after = fields.text("after", 2 * 128 + 1, default="")
        root = Path(self.services.volume) / RECORDINGS_DIR
        entries: list[tuple[str, str, int]] = []
        for rec in sorted(_safe_listdir(root), key=lambda e: e.name):
            if not rec.is_dir(follow_symlinks=False) or not NAME_PATTERN.fullmatch(rec.name):
                continue
            for entry in sorted(_safe_listdir(Path(rec.path)), key=lambda e: e.name):
                if not entry.is_file(follow_symlinks=False):
                    continue
                if not NAME_PATTERN.fullmatch(entry.name):
                    continue
                if f"{rec.name}/{entry.name}" <= after:
                    continue
                entries.append((rec.name, entry.name, entry.stat(follow_symlinks=False).st_size))
        page: list[dict[str, Any]] = []
        budget = 0
        for rec_name, name, size in entries:
            cost = len(rec_name) + len(name) + 64
            if len(page) >= LIST_PAGE_ENTRIES or budget + cost > _LIST_PAGE_BUDGET:
                break
            page.append({"recording": rec_name, "name": name, "size": size})
            budget += cost
        return {"files": page, "more": len(page) < len(entries)}, b""

    def _read(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        relative = fields.text("path", MAX_PATH, pattern=PATH_PATTERN)
        offset = fields.integer("offset", 0, 2**53)
        length = fields.integer("length", 1, MAX_DATA)
        size, data = self._read_bytes(self._volume_file(relative), offset, length)
        return {"size": size, "offset": offset}, data

    def _event_log(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        offset = fields.integer("offset", 0, 2**53)
        length = fields.integer("length", 1, MAX_DATA)
        path = Path(self.services.volume) / EVENT_LOG_PATH
        if not path.exists():
            return {"size": 0}, b""
        size, data = self._read_bytes(self._volume_file(str(EVENT_LOG_PATH)), offset, length)
        return {"size": size}, data

    def _release(self, fields: Fields, blob: bytes) -> tuple[dict[str, Any], bytes]:
        from crypto.keys import verify_signature

        receipt = ReleaseReceipt.from_fields(fields)
        where = f"{receipt.recording_id}/{receipt.segment}"

        def refuse(code: ErrorCode, reason: str) -> ProtocolError:
            self._log_event("release_refused", file=where, reason=reason)
            return ProtocolError(code, f"release of {where} refused: {reason}")

        if segment_index_of(receipt.segment) is None:
            # Only sealed segments are released; the header and the signed manifest stay
            # until the whole recording has gone (they prove what the dock must hold).
            raise refuse(ErrorCode.FORBIDDEN, "only sealed segments (seg-NNNNNN.bcs) are released")

        if receipt.dock_public not in self._trusted_docks():
            raise refuse(
                ErrorCode.RECEIPT_REJECTED,
                f"receipt signed by {short_key(receipt.dock_public)}, not a trusted dock",
            )
        device_id = self.services.device_id
        if not verify_signature(receipt.dock_public, receipt.message(device_id), receipt.signature):
            raise refuse(
                ErrorCode.RECEIPT_REJECTED,
                f"receipt signature does not verify for camera {device_id}",
            )
        rec_dir = Path(self.services.volume) / RECORDINGS_DIR / receipt.recording_id
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
        removed = self._remove_if_released(rec_dir)
        self._log_event(
            "segment_released",
            recording_id=receipt.recording_id,
            segment=receipt.segment,
            sha256=receipt.sha256,
            dock=receipt.dock_public.hex(),
            recording_removed=removed,
        )
        log.info("released %s (recording folder removed: %s)", where, removed)
        return {"deleted": True, "recording_removed": removed}, b""

    def _remove_if_released(self, rec_dir: Path) -> bool:
        """Remove a finished recording's folder once none of its segments is left."""
        return remove_recording_if_released(rec_dir, self.services.device_key.public_bytes())


_RECORDING_METADATA = frozenset({HEADER_NAME, MANIFEST_NAME})


def remove_recording_if_released(rec_dir: Path, device_public: bytes) -> bool:
    """Remove a recording folder when it is finished and none of its segments is left.

    "Finished" is what the camera's own signed manifest says (an END or RECOVERED_END
    entry, crypto/FORMAT.md); a recording still being written, or one whose manifest
    does not verify, is kept whatever is released from it.
    """
    from crypto.errors import FormatError
    from crypto.verify import verify_manifest

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
    entries = _safe_listdir(rec_dir)
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


def _safe_listdir(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []
