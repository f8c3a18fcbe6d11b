"""AUTH: the dock proves a trusted key, the camera proves its device key; sessions gate commands."""

from __future__ import annotations

import secrets

import pytest
from serial_support import FakeCamera, Keys

from dock.link import AuthFailed, CameraLink, LinkError
from formats.protocol import ErrorCode, MessageType, auth_transcript, dock_auth_message


def test_trusted_dock_and_real_camera_authenticate(
    link: CameraLink, keys: Keys, camera: FakeCamera
) -> None:
    info = link.hello()
    assert info.device_id == camera.device_id
    assert info.device_public == keys.device.public_bytes()
    assert info.profile.version == 1 and info.transfer_mode == "serial"
    link.auth(keys.dock, keys.device.public_bytes())
    assert link.status()["camera"]["state"] == "docked"
    assert "dock_authenticated" in camera.kinds()


def test_untrusted_dock_key_is_refused_and_logged(
    link: CameraLink, keys: Keys, camera: FakeCamera
) -> None:
    link.hello()
    with pytest.raises(AuthFailed, match="not in the trusted_docks"):
        link.auth(keys.other_dock, keys.device.public_bytes())
    assert camera.kinds() == ["auth_failed"]
    with pytest.raises(LinkError) as exc:
        link.status()
    assert exc.value.code == ErrorCode.NOT_AUTHENTICATED


def test_camera_with_the_wrong_device_key_is_refused(link: CameraLink, keys: Keys) -> None:
    link.hello()
    # The dock expects another device key than the one this camera holds: an impostor.
    with pytest.raises(AuthFailed, match="did not prove the registered device key"):
        link.auth(keys.dock, keys.other_dock.public_bytes())
    # The dock never sent its proof, so the camera opened no session either.
    with pytest.raises(LinkError) as exc:
        link.list_recordings()
    assert exc.value.code == ErrorCode.NOT_AUTHENTICATED


def test_forged_dock_signature_fails_and_the_challenge_is_single_use(
    link: CameraLink, keys: Keys, camera: FakeCamera
) -> None:
    from crypto.keys import x25519_public_from_private

    link.hello()
    dock_public = keys.dock.public_bytes()
    dock_nonce = secrets.token_bytes(32)
    dock_share = x25519_public_from_private(secrets.token_bytes(32))
    begin = link.call(
        MessageType.AUTH_BEGIN,
        {
            "dock_public": dock_public.hex(),
            "dock_nonce": dock_nonce.hex(),
            "dock_share": dock_share.hex(),
        },
    ).fields
    transcript = auth_transcript(
        camera.device_id,
        dock_public,
        dock_nonce,
        begin.hexbytes("camera_nonce", 32),
        dock_share,
        begin.hexbytes("camera_share", 32),
    )
    forged = keys.other_dock.sign(dock_auth_message(transcript))
    with pytest.raises(AuthFailed, match="does not verify"):
        link.call(MessageType.AUTH_FINISH, {"dock_signature": forged.hex()})
    good = keys.dock.sign(dock_auth_message(transcript))
    with pytest.raises(AuthFailed, match="no challenge"):
        link.call(MessageType.AUTH_FINISH, {"dock_signature": good.hex()})
    with pytest.raises(LinkError) as exc:
        link.status()
    assert exc.value.code == ErrorCode.NOT_AUTHENTICATED


@pytest.mark.parametrize(
    "msg_type",
    [
        t
        for t in MessageType
        if t
        not in (
            MessageType.HELLO,
            MessageType.AUTH_BEGIN,
            MessageType.AUTH_FINISH,
            MessageType.ERROR,
        )
    ],
)
def test_every_other_command_needs_a_session(link: CameraLink, msg_type: MessageType) -> None:
    link.hello()
    with pytest.raises(LinkError) as exc:
        link.call(msg_type, {})
    assert exc.value.code == ErrorCode.NOT_AUTHENTICATED


def test_hello_ends_the_session(session: CameraLink) -> None:
    session.status()
    session.hello()
    with pytest.raises(LinkError) as exc:
        session.status()
    assert exc.value.code == ErrorCode.NOT_AUTHENTICATED


def test_server_serves_a_pyserial_url(camera: FakeCamera, keys: Keys) -> None:
    import socket

    from serial_support import SocketPort

    from firmware.control import CameraControlServer

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        server = CameraControlServer(camera, port=f"socket://127.0.0.1:{port}")
        assert server.start() == f"socket://127.0.0.1:{port}"
        try:
            conn, _ = listener.accept()
            link = CameraLink(SocketPort(conn), timeout=0.5)
            assert link.hello().device_id == camera.device_id
            link.auth(keys.dock, keys.device.public_bytes())
            assert link.status()["camera"]["state"] == "docked"
            link.close()
            conn.close()
        finally:
            server.stop()
