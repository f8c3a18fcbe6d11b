"""The camera end to end in one process: boot, standby, record, stop, dock, faults, refusals.

Small pictures (160x120, 10 fps) keep these fast; the full-size path is in tests/e2e.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from crypto.keys import SigningKey, VaultKey
from crypto.verify import verify_recording
from firmware.camera import Camera, CameraClock, CameraOff
from firmware.encoder import H264Encoder
from firmware.state import CameraState, FaultKind, IllegalTransition
from formats.eventlog import events_path, verify_event_log
from formats.profile import Profile, default_profile, derive_profile
from ringbuffer.packet import EncodedPacket
from sim.board import SimBoard
from sim.clock import FastForwardClock
from sim.volume import DirectoryVolume

START = 1_790_000_000.0
SMALL = {
    "video": {"width": 160, "height": 120, "fps": 10, "gop_frames": 10, "bitrate_kbps": 300},
    "prerecord": {"seconds": 30, "audio": False},
    "recording": {"audio": False, "segment_seconds": 4},
}


class Site:
    def __init__(self) -> None:
        self.vault = VaultKey.generate()
        self.dock = SigningKey.generate(kind="dock")

    def profile(self, changes: dict[str, Any] | None = None) -> tuple[bytes, Profile]:
        base = default_profile(
            vault_recipients=[self.vault.public_bytes().hex()],
            trusted_docks=[self.dock.public_bytes().hex()],
        )
        merged = json.loads(json.dumps(SMALL))
        for section, fields in (changes or {}).items():
            merged.setdefault(section, {}).update(fields)
        return derive_profile(base, merged, source="test profile")


@pytest.fixture
def site() -> Site:
    return Site()


def make_camera(
    tmp_path: Path,
    site: Site,
    changes: dict[str, Any] | None = None,
    *,
    sensor: Any = None,
    storage: Any = None,
    serial_port: Any = None,
    **kw: Any,
) -> Camera:
    raw, profile = site.profile(changes)
    board = SimBoard(
        FastForwardClock(START), sensor=sensor, storage=storage, serial_port=serial_port
    )
    return Camera(tmp_path / "home", profile, board, profile_raw=raw, **kw)


def kinds(camera: Camera) -> list[str]:
    report = verify_event_log(events_path(camera.volume), camera.device_public)
    return [e.kind for e in report.events]


def events(camera: Camera, kind: str) -> list[dict[str, Any]]:
    report = verify_event_log(events_path(camera.volume), camera.device_public)
    return [e.fields for e in report.of_kind(kind)]


def test_boot_standby_record_stop_power_off(tmp_path: Path, site: Site) -> None:
    cam = make_camera(tmp_path, site)
    with pytest.raises(CameraOff):
        _ = cam.device_id
    cam.power_on()
    assert cam.state is CameraState.STANDBY
    cam.run_for(35)
    status = cam.status()
    assert status["state"] == "standby"
    assert status["buffer_seconds"] >= 30
    assert status["buffer_target_seconds"] == 30
    assert status["storage_free_bytes"] > 0
    assert status["indicators"]["led"] is False
    json.dumps(status)  # the control server sends it as JSON

    pressed = cam.press_record()
    assert pressed.accepted and pressed.recording_id and pressed.summary
    assert cam.state is CameraState.RECORDING
    assert pressed.summary.prerecord_covered >= 30
    assert not pressed.summary.prerecord_short
    cam.run_for(10)
    assert cam.status()["recording_seconds"] == pytest.approx(10, abs=0.2)
    assert cam.status()["indicators"]["led"] is True
    stopped = cam.press_stop()
    assert stopped.accepted and stopped.summary is not None
    assert stopped.summary.complete
    assert stopped.summary.duration_seconds == pytest.approx(
        10 + stopped.summary.prerecord_covered, abs=0.2
    )
    assert cam.state is CameraState.STANDBY
    cam.power_off()
    assert cam.state is CameraState.OFF

    verified = verify_recording(stopped.summary.path, cam.device_public)
    assert verified.complete and len(verified.segments) >= 10  # 4 s segments, 40+ s
    seq = kinds(cam)
    assert seq[0] == "provisioned" and seq[1] == "boot" and seq[-1] == "power_off"
    for kind in ("state", "button", "record_start", "segment_sealed", "record_stop", "indicator"):
        assert kind in seq
    states = [(e["from"], e["to"]) for e in events(cam, "state")]
    assert states == [
        ("off", "standby"),
        ("standby", "recording"),
        ("recording", "standby"),
        ("standby", "off"),
    ]
    start = events(cam, "record_start")[0]
    assert start["recording_id"] == pressed.recording_id
    assert start["prerecord_short"] is False


def test_recording_id_is_the_press_time_in_utc(tmp_path: Path, site: Site) -> None:
    cam = make_camera(tmp_path, site)
    cam.power_on()
    cam.run_for(2)
    result = cam.press_record()
    assert result.recording_id is not None
    # START = 2026-09-21T14:13:20Z; pressed 2 s later.
    assert result.recording_id.startswith("20260921T141322Z-")
    assert len(result.recording_id) == len("20260921T141322Z-") + 4
    cam.power_off()


def test_pressed_right_after_power_on_reports_a_short_preroll(tmp_path: Path, site: Site) -> None:
    cam = make_camera(tmp_path, site)
    cam.power_on()
    cam.run_for(3)
    result = cam.press_record()
    assert result.accepted and result.summary is not None
    assert result.summary.prerecord_short
    assert result.summary.prerecord_covered == pytest.approx(3, abs=0.11)
    cam.run_for(2)
    cam.press_stop()
    start = events(cam, "record_start")[0]
    assert start["prerecord_short"] is True
    assert "camera on for 3.0 s" in start["prerecord_short_reason"]
    cam.power_off()


def test_pressed_at_the_very_first_frame(tmp_path: Path, site: Site) -> None:
    cam = make_camera(tmp_path, site)
    cam.power_on()
    result = cam.press_record()
    assert result.accepted and result.summary is not None
    assert result.summary.prerecord_covered == 0
    cam.run_for(3)
    summary = cam.press_stop().summary
    assert summary is not None and summary.duration_seconds == pytest.approx(3, abs=0.11)
    assert verify_recording(summary.path, cam.device_public).complete
    cam.power_off()


def test_second_recording_starts_at_a_keyframe_without_losing_frames(
    tmp_path: Path, site: Site
) -> None:
    """Stop mid-GOP and press again at once: the next pre-roll holds the GOP in progress."""
    cam = make_camera(tmp_path, site)
    cam.power_on()
    cam.run_for(1)
    cam.press_record()
    cam.run_for(2.5)  # stop in the middle of a group of pictures
    first = cam.press_stop().summary
    second = cam.press_record().summary
    cam.run_for(1)
    cam.press_stop()
    assert first is not None and second is not None
    assert second.first_pts is not None and first.end_pts is not None
    assert second.first_pts <= first.end_pts  # overlap of at most a GOP, no gap
    assert first.end_pts - second.first_pts < 90_000
    assert second.live_pts == first.end_pts
    cam.power_off()


@pytest.mark.parametrize(
    ("action", "state_changes"),
    [
        ("press_stop", []),
        ("undock", []),
    ],
)
def test_illegal_actions_in_standby(
    tmp_path: Path, site: Site, action: str, state_changes: list[str]
) -> None:
    cam = make_camera(tmp_path, site)
    cam.power_on()
    if action == "press_stop":
        result = cam.press_stop()
        assert not result.accepted and "not recording" in result.reason
    else:
        with pytest.raises(IllegalTransition, match="not docked"):
            cam.undock()
    assert cam.state is CameraState.STANDBY
    cam.power_off()


def test_refusals_never_crash_and_are_logged(tmp_path: Path, site: Site) -> None:
    cam = make_camera(tmp_path, site, {"buttons": {"stop": "long-press"}})
    off = cam.press_record()
    assert not off.accepted and "power the camera on" in off.reason
    with pytest.raises(IllegalTransition, match="power the camera on"):
        cam.dock()
    with pytest.raises(IllegalTransition, match="already off"):
        cam.power_off()
    cam.power_on()
    with pytest.raises(IllegalTransition, match="already on"):
        cam.power_on()
    cam.run_for(1)
    assert cam.press_record().accepted
    again = cam.press_record()
    assert not again.accepted and "already recording" in again.reason
    short = cam.press_stop("press")
    assert not short.accepted and "long-press" in short.reason
    assert cam.state is CameraState.RECORDING
    assert cam.press_stop().accepted  # the mapped gesture
    cam.dock()
    docked = cam.press_record()
    assert not docked.accepted and "dock" in docked.reason
    with pytest.raises(IllegalTransition, match="already docked"):
        cam.dock()
    cam.undock()
    cam.power_off()
    refused = [e for e in events(cam, "button") if not e["accepted"]]
    assert [e["button"] for e in refused] == ["record", "stop", "record"]


def test_dock_while_recording_stops_it_and_serves_serial(tmp_path: Path, site: Site) -> None:
    servers: list[FakeServer] = []

    def factory(camera: Camera, port: object) -> FakeServer:
        servers.append(FakeServer(camera, port))
        return servers[-1]

    # The board's serial line is what the control server is given.
    cam = make_camera(tmp_path, site, control_factory=factory, serial_port="loop://")
    cam.power_on()
    cam.run_for(2)
    rec = cam.press_record().recording_id
    cam.run_for(2)
    cam.dock()
    assert cam.state is CameraState.DOCKED
    assert cam.serial_path == "/dev/fake" and servers[0].running
    assert servers[0].port == "loop://"
    status = cam.status()
    assert status["charging"] is True and status["buffer_seconds"] == 0
    assert status["recording_id"] is None
    stop = events(cam, "record_stop")[0]
    assert stop["recording_id"] == rec and stop["reason"] == "docked"
    cam.run_for(5)  # time passes in the dock, nothing is captured
    frames = cam.frames_captured
    cam.run_for(1)
    assert cam.frames_captured == frames
    cam.undock()
    assert not servers[0].running and cam.serial_path is None
    cam.run_for(1)
    assert cam.frames_captured == frames + 10
    cam.power_off()
    assert "serial_up" in kinds(cam) and "serial_down" in kinds(cam)


class FakeServer:
    def __init__(self, camera: Camera, port: object = None) -> None:
        self.camera = camera
        self.port = port
        self.running = False

    def start(self) -> str:
        self.running = True
        self.camera.status()  # the server may ask for status from the start
        return "/dev/fake"

    def stop(self) -> None:
        self.running = False


def test_frame_numbers_follow_time_across_a_dock(tmp_path: Path, site: Site) -> None:
    cam = make_camera(tmp_path, site)
    cam.power_on()
    cam.run_for(2)
    cam.dock()
    cam.run_for(7.55)
    cam.undock()
    cam.run_for(1)
    cam.press_record()
    cam.run_for(1)
    summary = cam.press_stop().summary
    assert summary is not None and summary.first_pts is not None
    # 2 s + 7.55 s docked: the first frame after undocking is frame 96 (9.6 s)
    assert summary.first_pts == 96 * 9000
    cam.power_off()


def test_storage_full_stops_cleanly_with_a_fault(tmp_path: Path, site: Site) -> None:
    home = tmp_path / "home"
    storage = DirectoryVolume(home / "volume", 600_000)
    cam = make_camera(tmp_path, site, storage=storage, reserve_bytes=200_000, chunk_size=16384)
    cam.power_on()
    cam.run_for(5)
    cam.press_record()
    for _ in range(600):  # until the volume is full (at most 10 minutes of footage)
        cam.run_for(1)
        if cam.state is not CameraState.RECORDING:
            break
    assert cam.state is CameraState.FAULT
    assert cam.fault is FaultKind.STORAGE_FULL
    assert cam.status()["fault"] == "storage_full"
    summary = cam.recordings[-1]
    assert summary.complete and summary.stop_reason == "fault: storage_full"
    verified = verify_recording(summary.path, cam.device_public)
    assert verified.complete and len(verified.segments) == len(summary.segments)
    assert storage.used_bytes() <= 600_000
    refused = cam.press_record()
    assert not refused.accepted and "dock" in refused.reason
    faults = events(cam, "fault")
    assert faults and faults[0]["fault"] == "storage_full"
    indicators = [e for e in events(cam, "indicator") if e.get("reason") == "fault"]
    assert {e["indicator"] for e in indicators} >= {"beep", "vibrate"}
    cam.dock()  # the dock is where a full camera goes
    assert cam.state is CameraState.DOCKED
    cam.undock()  # still full: straight back into the fault
    assert cam.state is CameraState.FAULT
    cam.power_off()


class FailingSensor:
    def __init__(self, inner: Any, fail_at: int) -> None:
        self.inner = inner
        self.fail_at = fail_at

    def capture(self, frame_number: int, capture_utc: float) -> Any:
        if frame_number >= self.fail_at:
            raise OSError("sensor I2C timeout")
        return self.inner.capture(frame_number, capture_utc)


def test_sensor_failure_is_a_fault_and_the_recording_is_kept(tmp_path: Path, site: Site) -> None:
    from sim.sensor import SyntheticSensor

    sensor = FailingSensor(SyntheticSensor(160, 120, "BC-00000000"), fail_at=50)
    cam = make_camera(tmp_path, site, sensor=sensor)
    cam.power_on()
    cam.run_for(2)
    cam.press_record()
    cam.run_for(10)
    assert cam.state is CameraState.FAULT and cam.fault is FaultKind.SENSOR_FAILURE
    summary = cam.recordings[-1]
    assert summary.complete
    assert summary.end_pts == 50 * 9000
    assert verify_recording(summary.path, cam.device_public).complete
    assert "I2C timeout" in events(cam, "fault")[0]["detail"]
    cam.power_off()


def test_power_cut_mid_recording_then_boot_recovers(tmp_path: Path, site: Site) -> None:
    cam = make_camera(tmp_path, site)
    cam.power_on()
    cam.run_for(3)
    rec_id = cam.press_record().recording_id
    cam.run_for(9.3)
    cam.power_cut()
    assert cam.state is CameraState.OFF
    cam.run_for(60)
    cam.power_on()
    boot = events(cam, "boot")
    assert boot[0]["clean_shutdown"] is True and boot[1]["clean_shutdown"] is False
    recovery = events(cam, "recovery")
    assert len(recovery) == 1 and recovery[0]["recording_id"] == rec_id
    assert recovery[0]["closed"] is True
    cam.power_off()
    assert rec_id is not None
    verified = verify_recording(cam.recordings_root / rec_id, cam.device_public)
    assert verified.complete
    # 3 s of pre-roll and 9.3 s recorded; on a fast-forward clock the recording's worker
    # may still hold up to RECORDING_QUEUE_SECONDS (4 s) of frames when the power goes,
    # and those are lost, so at least 8.3 s (two segments) must have been recovered.
    assert len(verified.segments) >= 2


def test_set_time_moves_the_wall_clock_not_the_media_clock(tmp_path: Path, site: Site) -> None:
    cam = make_camera(tmp_path, site)
    cam.power_on()
    cam.run_for(1)
    assert isinstance(cam.clock, CameraClock)
    mono = cam.clock.monotonic()
    drift = cam.clock.set_time(START + 1 - 30)  # camera was 30 s fast
    assert drift == pytest.approx(30)
    assert cam.clock.now() == pytest.approx(START - 29)
    assert cam.clock.monotonic() == mono
    cam.run_for(1)
    assert cam.status()["utc"] == pytest.approx(START - 28)
    cam.power_off()


def test_profile_flashed_while_docked_applies_at_undock(tmp_path: Path, site: Site) -> None:
    cam = make_camera(tmp_path, site)
    cam.power_on()
    cam.dock()
    raw, newer = site.profile({"prerecord": {"seconds": 60}, "profile": {"version": 9}})
    cam.on_profile_activated(raw, newer)
    assert cam.profile.prerecord.seconds == 30  # not while docked
    cam.undock()
    assert cam.profile.prerecord.seconds == 60
    assert cam.active_profile() == (raw, newer)
    assert cam.status()["buffer_target_seconds"] == 60
    cam.power_off()
    assert events(cam, "profile_applied")[0]["profile_version"] == 9


def test_active_profile_round_trips_through_toml(tmp_path: Path, site: Site) -> None:
    from formats.profile import parse_profile

    _, profile = site.profile()
    cam = Camera(tmp_path / "home", profile, SimBoard(FastForwardClock(START)))
    raw, same = cam.active_profile()
    assert parse_profile(raw, source="round trip") == same == profile


def test_indicators_follow_the_profile(tmp_path: Path, site: Site) -> None:
    cam = make_camera(
        tmp_path,
        site,
        {
            "indicators": {
                "led_on_record": True,
                "beep_on_start_stop": False,
                "beep_interval_seconds": 5,
                "vibrate": False,
            }
        },
    )
    cam.power_on()
    cam.run_for(1)
    cam.press_record()
    cam.run_for(12)
    cam.press_stop()
    cam.power_off()
    seen = [(e["indicator"], e.get("on"), e["reason"]) for e in events(cam, "indicator")]
    assert ("led", True, "recording started") in seen
    assert ("led", False, "recording stopped") in seen
    assert [s for s in seen if s[0] == "beep"] == [("beep", None, "recording reminder")] * 2
    assert not [s for s in seen if s[0] == "vibrate"]


def test_no_command_plays_decrypts_or_deletes_footage(tmp_path: Path, site: Site) -> None:
    public = {name for name in dir(Camera) if not name.startswith("_")}
    forbidden = ("play", "decrypt", "delete", "remove", "erase", "view", "export", "wipe")
    assert not [n for n in public if any(word in n for word in forbidden)]
    cam = make_camera(tmp_path, site)
    cam.power_on()
    # The camera holds the vault's public keys only: nothing on it can open a recording.
    key_files = [p.name for p in cam.home.rglob("*.key")]
    assert key_files == ["device.key"]
    cam.power_off()


def test_status_before_power_on_and_after_power_off(tmp_path: Path, site: Site) -> None:
    cam = make_camera(tmp_path, site)
    assert cam.status()["state"] == "off"
    cam.power_on()
    device = cam.device_id
    cam.power_off()
    status = cam.status()
    assert status["state"] == "off" and status["device_id"] == device
    with pytest.raises(CameraOff):
        _ = cam.event_log


class DeadSensor:
    def capture(self, frame_number: int, capture_utc: float) -> Any:
        raise OSError("no sensor on the bus")


def test_sensor_dead_at_boot_is_a_fault_not_a_crash(tmp_path: Path, site: Site) -> None:
    cam = make_camera(tmp_path, site, sensor=DeadSensor())
    cam.power_on()
    cam.run_for(1)
    assert cam.state is CameraState.FAULT and cam.fault is FaultKind.SENSOR_FAILURE
    assert cam.frames_captured == 0
    assert not cam.press_record().accepted
    cam.power_off()
    assert events(cam, "fault")[0]["fault"] == "sensor_failure"


def test_control_channel_failing_to_start_still_docks(tmp_path: Path, site: Site) -> None:
    def broken(camera: Camera, port: object) -> FakeServer:
        raise OSError("out of ptys")

    cam = make_camera(tmp_path, site, control_factory=broken)
    cam.power_on()
    cam.dock()
    assert cam.state is CameraState.DOCKED and cam.serial_path is None
    cam.undock()
    cam.power_off()
    assert "out of ptys" in events(cam, "serial_failed")[0]["error"]


# --- the pipeline: outputs, the recording worker, what the buffer would not keep -----------


class ReshapingEncoder:
    """The real H.264 encoder with its video packets changed on the way out."""

    def __init__(self, inner: Any, change: Any) -> None:
        self.inner = inner
        self.change = change
        # What the segment muxer reads from its encoder.
        for name in ("width", "height", "fps", "audio", "sample_rate", "audio_context"):
            setattr(self, name, getattr(inner, name))

    @property
    def audio_extradata(self) -> Any:
        return self.inner.audio_extradata

    def encode_video(self, frame: Any, frame_number: int) -> list[EncodedPacket]:
        return [self.change(p, frame_number) for p in self.inner.encode_video(frame, frame_number)]

    def encode_audio(self, samples: Any) -> list[EncodedPacket]:
        return list(self.inner.encode_audio(samples))


def reshaping(change: Any) -> Any:
    def factory(*args: Any, **kw: Any) -> ReshapingEncoder:
        return ReshapingEncoder(H264Encoder(*args, **kw), change)

    return factory


def test_buffer_evictions_and_refusals_reach_status_and_event_log(
    tmp_path: Path, site: Site
) -> None:
    # 300 kbit/s x 30 s x 1.5 headroom = 1.69 MB of buffer. Video padded to 12 kB a frame
    # (120 kB/s) outgrows it after ~14 s: whole GOPs are evicted for memory. Frame 100
    # is made larger than the whole buffer, which refuses it.
    def pad(p: EncodedPacket, n: int) -> EncodedPacket:
        size = 2_000_000 if n == 100 else 12_000
        return p._replace(data=bytes(p.data) + bytes(max(0, size - len(p.data))))

    cam = make_camera(tmp_path, site, encoder_factory=reshaping(pad))
    cam.power_on()
    cam.run_for(20)
    status = cam.status()["prerecord_buffer"]
    assert status["undersized_evictions"] >= 1
    assert status["refused"] == 1
    assert "PacketTooLarge" in status["last_refusal"]
    buffer_events = events(cam, "prerecord_buffer")
    assert any(e["counter"] == "undersized_evictions" for e in buffer_events)
    refused = events(cam, "prerecord_refused")
    assert len(refused) == 1 and refused[0]["refused"] == 1
    assert "PacketTooLarge" in refused[0]["last_refusal"]
    # The press records what was kept, and says what the buffer had to give up.
    pressed = cam.press_record()
    assert events(cam, "record_start")[0]["prerecord_buffer"]["undersized_evictions"] >= 1
    assert pressed.summary is not None and pressed.summary.prerecord_short
    cam.power_off()


def test_an_encoder_without_keyframes_is_a_loud_fault(tmp_path: Path, site: Site) -> None:
    def no_keyframes(p: EncodedPacket, n: int) -> EncodedPacket:
        return p._replace(keyframe=False)

    cam = make_camera(tmp_path, site, encoder_factory=reshaping(no_keyframes))
    cam.power_on()
    cam.run_for(10)
    # gop 10 frames: two GOPs without a keyframe are a fault, not an empty pre-roll.
    assert cam.state is CameraState.FAULT and cam.fault is FaultKind.ENCODER_FAILURE
    status = cam.status()
    assert status["fault"] == "encoder_failure" and "keyframe" in status["fault_detail"]
    assert status["prerecord_buffer"]["dropped_before_keyframe"] >= 1
    fault = events(cam, "fault")
    assert fault and fault[0]["fault"] == "encoder_failure"
    dropped = [
        e for e in events(cam, "prerecord_buffer") if e["counter"] == "dropped_before_keyframe"
    ]
    assert dropped and dropped[0]["dropped_before_keyframe"] >= 1
    assert not cam.press_record().accepted
    cam.power_off()


class HeldVolume:
    """The device volume, with a gate that holds the recording worker when it checks space."""

    def __init__(self, inner: DirectoryVolume) -> None:
        self.inner = inner
        self.capacity_bytes = inner.capacity_bytes
        self.held = threading.Event()
        self.release = threading.Event()
        self.hold = True

    def free_bytes(self) -> int:
        if self.hold and threading.current_thread().name.startswith("camera-recording"):
            self.held.set()
            assert self.release.wait(60), "the test never released the recording worker"
        return self.inner.free_bytes()

    def used_bytes(self) -> int:
        return self.inner.used_bytes()


def test_capture_keeps_going_while_the_recording_worker_writes_the_preroll(
    tmp_path: Path, site: Site
) -> None:
    volume = HeldVolume(DirectoryVolume(tmp_path / "home" / "volume", 64 * 1024 * 1024))
    cam = make_camera(tmp_path, site, storage=volume)
    cam.power_on()
    cam.run_for(20)
    try:
        pressed = cam.press_record()
        assert pressed.accepted and pressed.summary is not None
        # The press returned with the pre-roll still to be written: the worker is held.
        assert volume.held.wait(60)
        before = cam.frames_captured
        cam.run_for(2)
        assert cam.frames_captured == before + 20  # capture kept its cadence (10 fps)
        assert pressed.summary.packets == 0  # ... while nothing was written yet
        assert cam.status()["recording_seconds"] == pytest.approx(2, abs=0.11)
    finally:
        volume.hold = False
        volume.release.set()
    cam.run_for(1)
    summary = cam.press_stop().summary
    assert summary is not None and summary.complete
    assert summary.prerecord_covered >= 20
    # Every frame from the first keyframe of the pre-roll to the stop, each exactly once
    # (10 fps, one packet per frame, 9000 ticks apart): none lost, none doubled.
    assert summary.first_pts is not None and summary.end_pts is not None
    assert summary.packets == (summary.end_pts - summary.first_pts) // 9000
    verified = verify_recording(summary.path, cam.device_public)
    assert verified.complete and len(verified.segments) == len(summary.segments)
    cam.power_off()


def test_the_recording_worker_is_joined_by_stop_dock_and_power_off(
    tmp_path: Path, site: Site
) -> None:
    def workers() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("camera-recording")]

    cam = make_camera(tmp_path, site)
    cam.power_on()
    cam.run_for(3)
    cam.press_record()
    assert len(workers()) == 1
    cam.press_stop()
    assert workers() == []
    cam.press_record()
    cam.dock()
    assert workers() == []
    cam.undock()
    cam.press_record()
    cam.power_off()
    assert workers() == []
