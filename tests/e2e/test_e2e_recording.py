"""End to end: an emulated camera records in fast-forward; the vault key opens a playable file.

For each profile the decrypted recording must open with PyAV and ffprobe, start
with a keyframe, begin at least the configured pre-record seconds before the
press (when the camera was on that long), and hold every frame number exactly
once, across the pre-roll/live join and across segment boundaries.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    START,
    Site,
    assert_consecutive,
    decode,
    decrypt,
    ffprobe,
    plaintext_findings,
    scan_volume,
    small,
)

from crypto.verify import verify_recording
from firmware.camera import Camera
from sim.board import SimBoard
from sim.clock import FastForwardClock


@pytest.fixture(scope="module")
def site() -> Site:
    return Site()


CASES = {
    "30s-no-audio": (small(prerecord=30, fps=15), 34.0, 9.0),
    "30s-audio-live-only": (small(prerecord=30, fps=15, audio=True), 31.5, 5.0),
    "120s-audio-in-preroll": (
        small(prerecord=120, fps=10, width=160, height=120, audio=True, prerecord_audio=True),
        123.0,
        4.0,
    ),
    "pressed-2s-after-power-on": (small(prerecord=30, fps=15), 2.0, 5.0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_recording_decrypts_plays_and_covers_the_preroll(
    tmp_path: Path, site: Site, case: str
) -> None:
    changes, standby, record = CASES[case]
    raw, profile = site.profile(changes)
    fps = int(profile.video.fps)
    configured = int(profile.prerecord.seconds)
    cam = Camera(tmp_path / "home", profile, SimBoard(FastForwardClock(START)), profile_raw=raw)
    cam.power_on()
    cam.run_for(standby)
    press_utc = cam.clock.now()
    pressed = cam.press_record()
    assert pressed.accepted and pressed.summary is not None
    cam.run_for(record / 2)
    assert scan_volume(cam.volume) == {}  # mid-recording too: a .part is being written
    cam.run_for(record / 2)
    summary = cam.press_stop().summary
    cam.power_off()
    assert summary is not None

    verified = verify_recording(summary.path, cam.device_public)
    assert verified.complete and len(verified.segments) == len(summary.segments)
    for seg in summary.segments:  # every segment starts at a keyframe (GOP = 1 s)
        assert seg.start_pts % 90_000 == 0
    ts = decrypt(summary.path, site.vault, cam.device_public)
    assert plaintext_findings(ts)  # the scanner does see plaintext video
    assert scan_volume(cam.volume) == {}
    out = tmp_path / "recording.ts"
    out.write_bytes(ts)
    probe = ffprobe(out)
    codecs = sorted(s["codec_name"] for s in probe["streams"])
    audio = bool(profile.recording.audio)
    assert codecs == (["aac", "h264"] if audio else ["h264"])
    assert probe["format"]["format_name"] == "mpegts"

    decoded = decode(ts)
    assert decoded.first_packet_keyframe and decoded.torn_frames == 0
    assert decoded.video_codec == "h264"
    assert_consecutive(decoded.counters)
    first, last = decoded.counters[0], decoded.counters[-1]
    live_frame = (summary.live_pts or 0) * fps // 90_000
    assert first <= live_frame <= last  # the join is inside the consecutive run
    first_capture = cam.boot_utc + first / fps
    if standby >= configured:
        assert first_capture <= press_utc - configured + 1e-3  # clock float rounding
        assert not summary.prerecord_short
    else:
        assert summary.prerecord_short
        assert first == 0  # everything since power-on is in it
        assert summary.prerecord_covered == pytest.approx(standby, abs=1 / fps + 1e-6)
    # the last frame is the last one due before the stop
    assert last == math.ceil((press_utc + record - cam.boot_utc) * fps - 1e-3) - 1
    if audio:
        assert decoded.audio_codec == "aac" and decoded.audio_packets > 0
        assert decoded.audio_first_pts is not None
        if not profile.prerecord.audio:
            # Sound is not kept in standby: it starts at the press, not in the pre-roll.
            assert decoded.audio_first_pts >= (summary.live_pts or 0) - 90_000 // 10
        else:
            assert decoded.audio_first_pts <= (summary.live_pts or 0) - 100 * 90_000
    else:
        assert decoded.audio_codec is None


def test_recording_cut_by_storage_full_still_plays(tmp_path: Path, site: Site) -> None:
    from sim.volume import DirectoryVolume

    raw, profile = site.profile(small(prerecord=30, fps=15, bitrate_kbps=1200))
    home = tmp_path / "home"
    cam = Camera(
        home,
        profile,
        SimBoard(FastForwardClock(START), storage=DirectoryVolume(home / "volume", 2_500_000)),
        profile_raw=raw,
        reserve_bytes=200_000,
        chunk_size=16_384,
    )
    cam.power_on()
    cam.run_for(5)
    cam.press_record()
    for _ in range(600):  # until the volume is full
        cam.run_for(1)
        if cam.status()["state"] != "recording":
            break
    assert cam.status()["fault"] == "storage_full"
    summary = cam.recordings[-1]
    cam.power_off()
    decoded = decode(decrypt(summary.path, site.vault, cam.device_public))
    assert decoded.first_packet_keyframe
    assert_consecutive(decoded.counters)
    assert decoded.counters[-1] + 1 == (summary.end_pts or 0) * 15 // 90_000
    assert scan_volume(cam.volume) == {}


def test_scanner_sees_plaintext_in_a_file(tmp_path: Path, site: Site) -> None:
    """The volume scan is only worth something if it would catch a leak."""
    raw, profile = site.profile(small(prerecord=30, fps=15))
    cam = Camera(tmp_path / "home", profile, SimBoard(FastForwardClock(START)), profile_raw=raw)
    cam.power_on()
    cam.run_for(2)
    cam.press_record()
    cam.run_for(2)
    summary: Any = cam.press_stop().summary
    cam.power_off()
    leak = cam.volume / "recordings" / "leak.ts"
    leak.write_bytes(decrypt(summary.path, site.vault, cam.device_public))
    findings = scan_volume(cam.volume)
    assert list(findings) == ["recordings/leak.ts"]
    assert any("TS sync" in f for f in findings["recordings/leak.ts"])
    assert any("H.264" in f for f in findings["recordings/leak.ts"])
