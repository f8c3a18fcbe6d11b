"""Flashing signed profiles over a real pty: A/B, verified read-back, refusals with a reason,
and interruptions at every phase that keep the old profile and let the next flash succeed."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from serial_support import FakeCamera, Keys, profile_toml

from dock.link import CameraLink, LinkClosed, LinkError, ProfileRefused
from firmware.control import CameraControlServer
from firmware.profile_store import FAULT_POINTS, ProfileStore
from formats.profile_sign import ProfileSignature, profile_message
from formats.protocol import ErrorCode, MessageType
from sim.pty import PtySerialPort

MakeProfile = Callable[..., tuple[bytes, bytes]]


class PowerCut(Exception):
    """Raised by the store's fault hook: the camera loses power at that point."""


def _connect(server: CameraControlServer, keys: Keys) -> CameraLink:
    assert server.path is not None
    link = CameraLink(server.path, timeout=0.5, retries=2)
    link.hello()
    link.auth(keys.dock, keys.device.public_bytes())
    return link


def _active_version(camera: FakeCamera, keys: Keys) -> int:
    """Boot a fresh server on the camera's home (a reboot) and ask what is active."""
    with CameraControlServer(camera, PtySerialPort()) as srv:
        link = _connect(srv, keys)
        try:
            return link.profile_read().version
        finally:
            link.close()


def test_flash_switches_slots_reads_back_and_survives_reboot(
    session: CameraLink, camera: FakeCamera, keys: Keys, make_profile: MakeProfile
) -> None:
    raw, sig = make_profile(2)
    seen: list[tuple[int, int]] = []
    info = session.profile_flash(
        raw, sig, progress=lambda d, t: seen.append((d, t)), chunk_size=256
    )
    assert (info.name, info.version, info.slot) == ("test-site", 2, "a")
    assert info.data == raw and info.signature_file == sig
    assert info.signer == keys.integrator.public_bytes()
    assert info.sha256 == hashlib.sha256(raw).hexdigest()
    assert seen[0] == (0, len(raw)) and seen[-1] == (len(raw), len(raw)) and len(seen) > 3
    # The camera was told; it applies the profile at its next standby.
    assert camera.activated == [raw]
    assert "profile_flashed" in camera.kinds()
    assert session.hello().profile.version == 2
    session.auth(keys.dock, keys.device.public_bytes())
    raw3, sig3 = make_profile(3, prerecord_seconds=120)
    assert session.profile_flash(raw3, sig3).slot == "b"
    store = camera.home / "profiles"
    assert (store / "active").read_text().strip() == "b"
    assert (store / "b" / "profile.toml").read_bytes() == raw3
    assert (store / "a" / "profile.toml").read_bytes() == raw  # the previous slot is kept
    assert _active_version(camera, keys) == 3


def _refused(link: CameraLink, raw: bytes, sig: bytes) -> str:
    with pytest.raises(ProfileRefused) as exc:
        link.profile_flash(raw, sig)
    return exc.value.message


def test_unsigned_profile_is_refused_with_the_reason(
    session: CameraLink, camera: FakeCamera, keys: Keys
) -> None:
    raw = profile_toml(2, [keys.dock.public_bytes()])
    assert "unsigned" in _refused(session, raw, b"")
    assert "malformed" in _refused(session, raw, b"{not json")
    assert session.profile_read().version == 1 and camera.activated == []
    assert "profile_rejected" in camera.kinds()


def test_profile_signed_by_another_key_is_refused(
    session: CameraLink, camera: FakeCamera, make_profile: MakeProfile, keys: Keys
) -> None:
    raw, sig = make_profile(2, signer=keys.other_integrator)
    assert "not this camera's integrator key" in _refused(session, raw, sig)
    assert session.profile_read().version == 1 and camera.activated == []


def test_profile_changed_after_signing_is_refused(
    session: CameraLink, make_profile: MakeProfile
) -> None:
    raw, sig = make_profile(2)
    tampered = raw.replace(b"seconds = 30", b"seconds = 31")
    assert tampered != raw
    assert "signature is for other bytes" in _refused(session, tampered, sig)
    assert session.profile_read().version == 1


def _forge(key: object, raw: bytes, name: str, version: int) -> bytes:
    sha = hashlib.sha256(raw).hexdigest()
    signature = key.sign(profile_message(name, version, sha))  # type: ignore[attr-defined]
    return ProfileSignature(name, version, sha, key.public_bytes(), signature).to_bytes()  # type: ignore[attr-defined]


def test_signature_binds_name_and_version(session: CameraLink, keys: Keys) -> None:
    raw = profile_toml(2, [keys.dock.public_bytes()])
    # A genuine integrator signature, but over another name/version than the file has.
    reason = _refused(session, raw, _forge(keys.integrator, raw, "test-site", 9))
    assert "signature is for profile 'test-site' version 9" in reason
    reason = _refused(session, raw, _forge(keys.integrator, raw, "other-site", 2))
    assert "'other-site'" in reason
    assert session.profile_read().version == 1


def test_invalid_profile_and_rollback_are_refused(
    session: CameraLink, keys: Keys, make_profile: MakeProfile
) -> None:
    broken = b'[profile]\nname = "test-site"\nversion = 5\n[prerecord]\nseconds = 5\n'
    reason = _refused(session, broken, _forge(keys.integrator, broken, "test-site", 5))
    assert "not valid" in reason
    session.profile_flash(*make_profile(3))
    assert "older than the active version 3" in _refused(session, *make_profile(2))
    assert session.profile_read().version == 3


def test_flash_state_errors(session: CameraLink, make_profile: MakeProfile) -> None:
    raw, sig = make_profile(2)
    with pytest.raises(LinkError) as exc:
        session.call(MessageType.PROFILE_CHUNK, {"offset": 0}, raw[:10])
    assert exc.value.code == ErrorCode.BAD_STATE
    session.call(
        MessageType.PROFILE_BEGIN,
        {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()},
        sig,
    )
    with pytest.raises(LinkError, match="expected offset 0") as exc:
        session.call(MessageType.PROFILE_CHUNK, {"offset": 10}, raw[10:20])
    session.call(MessageType.PROFILE_CHUNK, {"offset": 0}, raw[:10])
    with pytest.raises(LinkError, match="not complete") as exc:
        session.call(MessageType.PROFILE_COMMIT)
    assert exc.value.code == ErrorCode.BAD_STATE
    with pytest.raises(LinkError) as exc:
        session.call(MessageType.PROFILE_CHUNK, {"offset": 10}, raw[10:])  # flash abandoned
    assert exc.value.code == ErrorCode.BAD_STATE
    assert session.profile_read().version == 1
    assert session.profile_flash(raw, sig).version == 2


# --- interruptions -----------------------------------------------------------------------


def _begin_and_send_part(link: CameraLink, raw: bytes, sig: bytes, chunks: int) -> None:
    link.call(
        MessageType.PROFILE_BEGIN,
        {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()},
        sig,
    )
    for i in range(chunks):
        link.call(MessageType.PROFILE_CHUNK, {"offset": i * 100}, raw[i * 100 : (i + 1) * 100])


def test_port_closed_mid_transfer_keeps_the_old_profile(
    server: CameraControlServer, camera: FakeCamera, keys: Keys, make_profile: MakeProfile
) -> None:
    raw, sig = make_profile(2)
    first = _connect(server, keys)
    _begin_and_send_part(first, raw, sig, chunks=5)
    first.close()  # unplugged
    second = _connect(server, keys)
    try:
        assert second.profile_read().version == 1
        assert second.profile_flash(raw, sig).version == 2
    finally:
        second.close()
    assert _active_version(camera, keys) == 2


def test_corrupt_chunk_is_caught_and_the_next_flash_succeeds(
    session: CameraLink, camera: FakeCamera, make_profile: MakeProfile
) -> None:
    raw, sig = make_profile(2)
    damaged = bytearray(raw)
    damaged[150] ^= 0x01
    # BEGIN announces the genuine digest; one chunk is then damaged on its way (with a valid
    # frame CRC, as if damaged before framing): the camera must catch it at COMMIT.
    session.call(
        MessageType.PROFILE_BEGIN,
        {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()},
        sig,
    )
    for off in range(0, len(raw), 100):
        session.call(MessageType.PROFILE_CHUNK, {"offset": off}, bytes(damaged[off : off + 100]))
    with pytest.raises(ProfileRefused, match="damaged in transfer"):
        session.call(MessageType.PROFILE_COMMIT)
    assert session.profile_read().version == 1 and camera.activated == []
    assert session.profile_flash(raw, sig).version == 2


def test_power_cut_mid_transfer_keeps_the_old_profile(
    camera: FakeCamera, keys: Keys, make_profile: MakeProfile
) -> None:
    raw2, sig2 = make_profile(2)
    raw3, sig3 = make_profile(3)
    with CameraControlServer(camera, PtySerialPort()) as srv:
        link = _connect(srv, keys)
        link.profile_flash(raw2, sig2)
        _begin_and_send_part(link, raw3, sig3, chunks=4)
        srv.stop()  # power cut: the server dies with the flash half done
        with pytest.raises((LinkClosed, TimeoutError)):
            link.status()
        link.close()
    assert _active_version(camera, keys) == 2
    with CameraControlServer(camera, PtySerialPort()) as srv:
        link = _connect(srv, keys)
        assert link.profile_flash(raw3, sig3).version == 3
        link.close()


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_power_cut_at_every_store_step(
    camera: FakeCamera, keys: Keys, make_profile: MakeProfile, point: str
) -> None:
    store_dir = camera.home / "profiles"
    with CameraControlServer(camera, PtySerialPort()) as srv:
        link = _connect(srv, keys)
        link.profile_flash(*make_profile(2))
        link.close()

    def cut(at: str) -> None:
        if at == point:
            raise PowerCut(at)

    store = ProfileStore(store_dir, fault=cut)
    with CameraControlServer(camera, PtySerialPort(), store=store) as srv:
        link = _connect(srv, keys)
        with pytest.raises(LinkError) as exc:
            link.profile_flash(*make_profile(3))
        assert exc.value.code == ErrorCode.INTERNAL
        link.close()
    # After the reboot: the old profile, unless the cut came after the atomic switch.
    assert _active_version(camera, keys) == (3 if point == "activated" else 2)
    with CameraControlServer(camera, PtySerialPort()) as srv:
        link = _connect(srv, keys)
        assert link.profile_flash(*make_profile(4)).version == 4
        link.close()
    assert _active_version(camera, keys) == 4


def test_camera_without_a_provisioned_key_refuses_every_flash(
    camera: FakeCamera, keys: Keys, make_profile: MakeProfile
) -> None:
    shutil.rmtree(camera.home / "profiles")  # never provisioned
    with CameraControlServer(camera, PtySerialPort()) as srv:
        link = _connect(srv, keys)
        # Not even a profile the right integrator signed: nothing pins itself on first use.
        with pytest.raises(ProfileRefused, match="no integrator key provisioned") as exc:
            link.profile_flash(*make_profile(2))
        assert "bodycam device provision --home" in exc.value.message
        assert link.profile_read().version == 1 and camera.activated == []
        link.close()
    assert ProfileStore(camera.home / "profiles").integrator_keys() == []
    assert not (camera.home / "profiles" / "active").exists()
    assert "profile_rejected" in camera.kinds()


def test_provision_command_pins_the_key_then_flashes_are_accepted(
    camera: FakeCamera,
    keys: Keys,
    make_profile: MakeProfile,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bodycam_cli import main
    from crypto.keys import write_public_key

    shutil.rmtree(camera.home / "profiles")
    public = tmp_path / "integrator.pub"
    write_public_key(public, keys.integrator.public_bytes(), "integrator")
    dock_pub = tmp_path / "dock.pub"
    write_public_key(dock_pub, keys.dock.public_bytes(), "dock")
    other = tmp_path / "other.pub"
    write_public_key(other, keys.other_integrator.public_bytes(), "integrator")
    home = str(camera.home)

    def provision(key: Path) -> tuple[int, str, str]:
        code = main(["device", "provision", "--home", home, "--integrator-key", str(key)])
        out, err = capsys.readouterr()
        return code, out, err

    code, _, err = provision(dock_pub)
    assert code == 1 and f"{dock_pub} is a dock key; pass the integrator's public key" in err
    code, out, _ = provision(public)
    assert code == 0 and "provisioned; profiles signed with it can now be flashed" in out
    code, out, _ = provision(public)
    assert code == 0 and "was already provisioned" in out
    code, _, err = provision(other)
    assert code == 1 and "not replaced over the wire" in err
    assert ProfileStore(camera.home / "profiles").integrator_keys() == [
        keys.integrator.public_bytes()
    ]
    with CameraControlServer(camera, PtySerialPort()) as srv:
        link = _connect(srv, keys)
        assert link.profile_flash(*make_profile(2)).version == 2
        with pytest.raises(ProfileRefused, match="not this camera's integrator key"):
            link.profile_flash(*make_profile(3, signer=keys.other_integrator))
        assert link.profile_read().version == 2
        link.close()


def test_damaged_active_slot_falls_back_to_the_other_slot(
    session: CameraLink, camera: FakeCamera, keys: Keys, make_profile: MakeProfile
) -> None:
    session.profile_flash(*make_profile(2))
    session.profile_flash(*make_profile(3))
    active: Path = camera.home / "profiles" / "b" / "profile.toml"
    active.write_bytes(active.read_bytes().replace(b"version = 3", b"version = 4"))
    stored = ProfileStore(camera.home / "profiles").load_active()
    assert stored is not None and (stored.version, stored.slot) == (2, "a")
    (camera.home / "profiles" / "a" / "profile.sig").unlink()
    assert ProfileStore(camera.home / "profiles").load_active() is None
    assert _active_version(camera, keys) == 1  # back to the camera's built-in profile
