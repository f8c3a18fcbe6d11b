"""The session under the dock's camera client: frames, resends, session tags, re-auth.

Every request carries a sequence number; a lost, corrupt or unanswered frame is resent
with the same number (the camera answers a resent request from its cache, never running
it twice), so nothing is misread and nothing happens twice.

AUTH agrees a session key (formats/PROTOCOL.md section 8): from then on every request is
tagged, and a reply is believed only with a valid tag for its sequence number, so a
reply forged or altered on the line is dropped (counted in `forged_replies`). When the
camera says the session is gone (port reset, expiry), the session authenticates again
once with the same key and resends the request. The commands are dock/link.py.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any, Self

from dock.link_replies import (
    ERRORS_BY_CODE,
    AuthFailed,
    ClockRefused,
    HelloInfo,
    LinkClosed,
    LinkError,
    LinkTampered,
    LinkTimeout,
    SessionLost,
    profile_info,
)
from formats.protocol import (
    NONCE_SIZE,
    PROTOCOL_VERSION,
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    ErrorCode,
    Fields,
    Frame,
    FrameDecoder,
    FrameError,
    FrameKey,
    Message,
    MessageError,
    MessageType,
    SessionKeys,
    Signer,
    auth_transcript,
    camera_auth_message,
    decode_payload,
    derive_session_keys,
    dock_auth_message,
    encode_frame,
    encode_payload,
    response_type,
)

log = logging.getLogger(__name__)


# Requests after which the link does not re-authenticate and resend on its own: AUTH
# itself, and the steps of a flash (HELLO abandons the staged slot; the flash restarts).
_NO_REAUTH = frozenset(
    {
        MessageType.HELLO,
        MessageType.AUTH_BEGIN,
        MessageType.AUTH_FINISH,
        MessageType.PROFILE_CHUNK,
        MessageType.PROFILE_COMMIT,
    }
)


class LinkSession:
    """The session under `CameraLink`: one port, sequenced and resent requests, the
    session key agreed by AUTH and the tags it puts on every frame, re-authentication
    when the camera lost the session. Not thread-safe: one caller at a time."""

    def __init__(
        self,
        port: Any,
        *,
        timeout: float = 1.0,
        retries: int = 5,
        client_name: str = "bodycam-dock",
    ) -> None:
        """`port`: a pyserial URL/path, or an already open pyserial-like port object."""
        if timeout <= 0 or retries < 0:
            raise ValueError("timeout must be > 0 and retries >= 0")
        self.timeout = timeout
        self.retries = retries
        self.client_name = client_name
        if isinstance(port, str):
            import serial

            try:
                # The port's own timeout only bounds one wait; deadlines are kept here.
                self._port = serial.serial_for_url(
                    port, timeout=min(timeout, 0.25), write_timeout=timeout
                )
            except (serial.SerialException, OSError) as exc:
                raise LinkClosed(f"cannot open camera port {port}: {exc}") from None
            self._owned = True
            self.url = port
        else:
            self._port = port
            self._owned = False
            self.url = repr(port)
        self._flush_input()
        self._decoder = FrameDecoder()
        self._seq = secrets.randbelow(0xFFFFFFFF) + 1
        self.device_id: str | None = None
        self.device_public: bytes | None = None
        self._session: SessionKeys | None = None
        self._credentials: tuple[Signer, bytes] | None = None  # for re-authentication
        self.retransmissions = 0
        self.forged_replies = 0  # replies dropped for a missing or wrong session tag
        self.reauthentications = 0

    @property
    def authenticated(self) -> bool:
        """Whether the link holds a session key (the camera may have dropped it since)."""
        return self._session is not None

    def close(self) -> None:
        if self._owned and self._port is not None:
            self._port.close()
        self._port = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport -----------------------------------------------------------------------

    def _flush_input(self) -> None:
        # Bytes left in the line by an earlier client (a reply it never read) are stale.
        reset = getattr(self._port, "reset_input_buffer", None)
        if reset is not None:
            try:
                reset()
            except Exception:  # not every port-like object supports it
                log.debug("could not flush the port's input buffer")

    def _next_seq(self) -> int:
        self._seq = self._seq + 1 if self._seq < 0xFFFFFFFF else 1
        return self._seq

    def _write(self, data: bytes) -> None:
        import serial

        if self._port is None:
            raise LinkClosed("the link is closed")
        try:
            self._port.write(data)
        except serial.SerialTimeoutException:
            log.debug("write timed out")  # counts as a lost frame: the retry loop resends
        except (serial.SerialException, OSError) as exc:
            raise LinkClosed(f"camera port {self.url} failed: {exc}") from None

    def _read_some(self) -> bytes:
        import serial

        if self._port is None:
            raise LinkClosed("the link is closed")
        try:
            waiting = self._port.in_waiting
            return bytes(self._port.read(waiting if waiting else 1))
        except (serial.SerialException, OSError) as exc:
            raise LinkClosed(f"camera port {self.url} failed: {exc}") from None

    def call(
        self, msg_type: int, fields: dict[str, Any] | None = None, blob: bytes = b""
    ) -> Message:
        """Send one request and return the camera's response message (or raise).

        If the camera says our session is gone, authenticate again once (with the key of
        the last AUTH) and send the request again: the camera did not execute it.
        """
        if self._session is None and self._credentials is not None and msg_type not in _NO_REAUTH:
            self._reauthenticate()  # lost earlier (SessionLost from a flash step)
            return self._call_once(msg_type, fields, blob)
        try:
            return self._call_once(msg_type, fields, blob)
        except SessionLost:
            if self._credentials is None or msg_type in _NO_REAUTH:
                raise
            self._reauthenticate()
            return self._call_once(msg_type, fields, blob)

    def _reauthenticate(self) -> None:
        assert self._credentials is not None
        dock_key, device_public = self._credentials
        device_id = self.device_id
        log.warning("camera %s dropped the session; authenticating again", device_id)
        self.reauthentications += 1
        if self.hello().device_id != device_id:
            raise LinkError(
                ErrorCode.AUTH_FAILED, f"another camera ({self.device_id}) answers on {self.url}"
            )
        self.auth(dock_key, device_public)

    def _call_once(
        self,
        msg_type: int,
        fields: dict[str, Any] | None = None,
        blob: bytes = b"",
        *,
        opening: SessionKeys | None = None,
    ) -> Message:
        """One request, resent until answered. `opening`: the keys AUTH_FINISH's reply proves."""
        payload = encode_payload(fields or {}, blob)
        session = self._session
        if msg_type in (MessageType.HELLO, MessageType.AUTH_BEGIN):
            self._session = None  # both end the session (AUTH_BEGIN still tagged inside it)
        request_key = (
            session.dock_to_camera
            if session is not None and msg_type != MessageType.HELLO
            else None
        )
        reply_key: FrameKey | None = None
        if opening is not None:
            reply_key = opening.camera_to_dock
        elif (
            session is not None
            and msg_type != MessageType.HELLO
            and msg_type != MessageType.AUTH_BEGIN
        ):
            reply_key = session.camera_to_dock
        seq = self._next_seq()
        frame = encode_frame(msg_type, seq, payload, request_key)
        expected = response_type(msg_type)
        sends = 0
        forged_before = self.forged_replies
        while True:
            if sends > self.retries:
                forged = self.forged_replies - forged_before
                if forged:
                    raise LinkTampered(
                        f"camera on {self.url} gave no authentic answer to "
                        f"{MessageType(msg_type).name} after {sends} attempts; {forged} "
                        "replies failed the session tag (something on the line answers or "
                        "alters answers)"
                    )
                raise LinkTimeout(
                    f"camera on {self.url} did not answer {MessageType(msg_type).name} "
                    f"after {sends} attempts of {self.timeout:.1f} s"
                )
            if sends:
                self.retransmissions += 1
            self._write(frame)
            sends += 1
            reply = self._await(seq, expected, reply_key, lenient=opening is not None)
            if reply is None:
                continue  # timeout, or damage seen on the line: resend the same frame
            if reply.type == expected:
                try:
                    return decode_payload(reply.payload)
                except MessageError as exc:
                    raise LinkError(ErrorCode.BAD_MESSAGE, f"malformed reply: {exc}") from None
            error = self._error_from(reply)
            if reply_key is not None and not reply.tagged and opening is None:
                # The one untagged answer believed in a session: the camera lost it.
                self._session = None
                raise SessionLost(error.code, error.message)
            raise error

    def _await(
        self, seq: int, expected: int, reply_key: FrameKey | None, *, lenient: bool = False
    ) -> Frame | None:
        """The reply to `seq`, or None after a timeout or a sign that our frame was damaged.

        With `reply_key` a reply must carry a valid tag; the only untagged reply accepted
        is ERROR NOT_AUTHENTICATED (the camera lost the session), or with `lenient` (the
        AUTH_FINISH that opens the session) any untagged ERROR.
        """
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            data = self._read_some()
            if not data:
                continue
            damaged = False
            for item in self._decoder.feed(data):
                if isinstance(item, FrameError):
                    damaged = True  # possibly our reply, damaged on the way back
                    continue
                if item.seq == seq and item.type in (expected, MessageType.ERROR):
                    if self._authentic(item, reply_key, lenient):
                        return item
                    self.forged_replies += 1
                    log.warning(
                        "dropped a reply to request %d on %s that fails the session tag",
                        seq,
                        self.url,
                    )
                    continue
                if item.seq == 0 and item.type == MessageType.ERROR and not item.tagged:
                    damaged = True  # the camera could not decode a frame: maybe ours
                # Anything else is a stale reply to an earlier attempt (or an echo): ignore it.
            if damaged:
                log.debug("damaged frame on the line; resending request %d", seq)
                return None
        log.debug("no reply to request %d within %.2f s", seq, self.timeout)
        return None

    @staticmethod
    def _authentic(frame: Frame, reply_key: FrameKey | None, lenient: bool) -> bool:
        if reply_key is None:
            return not frame.tagged  # no session: nothing could verify a tag
        if frame.tagged:
            return reply_key.verify(frame)
        if frame.type != MessageType.ERROR:
            return False
        if lenient:
            return True
        try:
            code = decode_payload(frame.payload).fields.integer("code", 0, 255)
        except MessageError:
            return False
        return code == ErrorCode.NOT_AUTHENTICATED

    @staticmethod
    def _error_from(frame: Frame) -> LinkError:
        try:
            f = decode_payload(frame.payload).fields
            code = f.integer("code", 0, 255)
            message = f.text("message", 4096, default="")
        except MessageError as exc:
            return LinkError(ErrorCode.BAD_MESSAGE, f"malformed error reply: {exc}")
        if code == ErrorCode.CLOCK_REFUSED:
            drift, limit = f.optional("drift"), f.optional("limit")
            return ClockRefused(
                code,
                message,
                float(drift)
                if isinstance(drift, int | float) and not isinstance(drift, bool)
                else None,
                limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
            )
        return ERRORS_BY_CODE.get(code, LinkError)(code, message)

    # --- the session's two commands: HELLO starts it, AUTH keys it ------------------------

    def hello(self) -> HelloInfo:
        """Identify the camera; starts a new session (any earlier authentication ends)."""
        self._credentials = None  # ended on purpose: no re-authentication behind our back
        f = self.call(
            MessageType.HELLO, {"client": self.client_name[:64], "protocol": PROTOCOL_VERSION}
        ).fields
        profile = f.optional("profile")
        storage = f.optional("storage")
        info = HelloInfo(
            device_id=f.text("device_id", 64),
            model=f.text("model", 128),
            firmware=f.text("firmware", 64),
            device_public=f.hexbytes("device_public", PUBLIC_KEY_SIZE),
            profile=profile_info(Fields(profile if isinstance(profile, dict) else {})),
            transfer_mode=f.text("transfer_mode", 32),
            storage=storage if isinstance(storage, dict) else {},
        )
        self.device_id = info.device_id
        self.device_public = info.device_public
        return info

    def auth(self, dock_key: Signer, device_public: bytes) -> None:
        """Prove our dock key and make the camera prove `device_public` (its registered key).

        Agrees the session key on the way (ephemeral X25519 bound into both signatures);
        every later request and reply is tagged with it. Raises AuthFailed if the camera
        does not trust the dock key or cannot prove it holds the private half of
        `device_public`.
        """
        from crypto.keys import verify_signature, x25519_exchange, x25519_public_from_private

        if self.device_id is None:
            self.hello()
        assert self.device_id is not None
        dock_public = dock_key.public_bytes()
        dock_nonce = secrets.token_bytes(NONCE_SIZE)
        ephemeral = secrets.token_bytes(PUBLIC_KEY_SIZE)
        dock_share = x25519_public_from_private(ephemeral)
        f = self.call(
            MessageType.AUTH_BEGIN,
            {
                "dock_public": dock_public.hex(),
                "dock_nonce": dock_nonce.hex(),
                "dock_share": dock_share.hex(),
            },
        ).fields
        camera_nonce = f.hexbytes("camera_nonce", NONCE_SIZE)
        camera_share = f.hexbytes("camera_share", PUBLIC_KEY_SIZE)
        device_signature = f.hexbytes("device_signature", SIGNATURE_SIZE)
        transcript = auth_transcript(
            self.device_id, dock_public, dock_nonce, camera_nonce, dock_share, camera_share
        )
        if not verify_signature(device_public, camera_auth_message(transcript), device_signature):
            raise AuthFailed(
                ErrorCode.AUTH_FAILED,
                f"camera {self.device_id} did not prove the registered device key "
                f"{device_public[:8].hex()}...: not the camera it claims to be",
            )
        message = dock_auth_message(transcript)
        try:
            keys = derive_session_keys(x25519_exchange(ephemeral, camera_share), message)
        except ValueError:
            raise AuthFailed(
                ErrorCode.AUTH_FAILED,
                f"camera {self.device_id} sent a key share that is not a usable X25519 key",
            ) from None
        del ephemeral
        signature = dock_key.sign(message)
        self._call_once(MessageType.AUTH_FINISH, {"dock_signature": signature.hex()}, opening=keys)
        self._session = keys
        self._credentials = (dock_key, device_public)
        log.info("authenticated with camera %s", self.device_id)
