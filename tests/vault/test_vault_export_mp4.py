"""What `verify-export` proves about recording.mp4: picture, sound and the time of every
frame. A forger here holds the site's export key (re-signs whatever they change); only
the vault-key mode, which decrypts the camera-signed originals, can catch them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from export_support import World, copy_package, export, make_ts_with_sound, make_world, resign

from vault.export import format as fmt
from vault.export.verify import ExportReport, verify_export
from vault.media import measure

SOUND_FROM = 1.0  # seconds of pre-roll without sound


@pytest.fixture
def sound_world(db: str, tmp_path: Path, clock: Any) -> World:
    """A recording with sound only after a one-second pre-roll (pre-record audio off)."""
    return make_world(tmp_path, clock, ts=make_ts_with_sound(3, sound_from=SOUND_FROM))


@pytest.fixture
def silent_world(db: str, tmp_path: Path, clock: Any) -> World:
    return make_world(tmp_path, clock)


def _package(world: World, tmp_path: Path) -> Path:
    out = tmp_path / "OM-2026-0042"
    export(world, "u-privacy_officer", out)
    return out


def _copy_streams(
    src: Path,
    dest: Path,
    *,
    sound: bool = True,
    picture_pts: Callable[[int, int], int] = lambda pts, i: pts,
    made_up_sound: bool = False,
) -> None:
    """Remux `src` into the MP4 `dest` without decoding the picture: the same frames,
    optionally without the sound, with picture timestamps changed (`picture_pts(pts,
    index)`), or with an AAC track of a made-up tone added."""
    with av.open(str(src)) as inp, av.open(str(dest), "w", format="mp4") as out:
        video = inp.streams.video[0]
        streams = [video] + (list(inp.streams.audio) if sound else [])
        mapping = {}
        for s in streams:
            mapping[s.index] = out.add_stream_from_template(s)
            mapping[s.index].codec_context.extradata = s.codec_context.extradata
        tone: Any = None
        if made_up_sound:
            tone = out.add_stream("aac", rate=48_000)
            tone.layout = "mono"
        i = 0
        for packet in inp.demux(*streams):
            if packet.dts is None:
                continue
            if packet.stream is video:
                packet.pts = packet.dts = picture_pts(packet.pts, i)
                i += 1
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
        if tone is not None:
            t = np.arange(48_000 * 2) / 48_000
            samples = (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
            for n, start in enumerate(range(0, samples.size, 1024)):
                frame = av.AudioFrame.from_ndarray(
                    samples[start : start + 1024].reshape(1, -1), format="fltp", layout="mono"
                )
                frame.sample_rate, frame.pts = 48_000, n * 1024
                out.mux(tone.encode(frame))
            out.mux(tone.encode(None))


def _forge(package: Path, dest: Path, world: World, make: Callable[[Path, Path], None]) -> Path:
    """A copy of the package whose MP4 `make(honest_mp4, new_mp4)` wrote, with the MP4's
    figures measured and the manifest re-signed with the export key."""
    pkg = copy_package(package, dest)
    honest = dest.parent / f"{dest.name}-honest.mp4"
    (pkg / fmt.MP4).rename(honest)
    make(honest, pkg / fmt.MP4)
    manifest = json.loads((pkg / fmt.MANIFEST).read_bytes())
    manifest["mp4"].update(measure(pkg / fmt.MP4)[0].as_json())
    (pkg / fmt.MANIFEST).write_text(json.dumps(manifest))
    resign(pkg, world.export_key)
    return pkg


def _both_modes(world: World, pkg: Path) -> tuple[ExportReport, ExportReport]:
    key = world.export_key.public_bytes()
    return (
        verify_export(pkg, expected_key=key),
        verify_export(pkg, expected_key=key, vault_key=world.site.vault_key),
    )


def test_the_honest_package_with_late_sound_is_proven(sound_world: World, tmp_path: Path) -> None:
    package = _package(sound_world, tmp_path)
    signed = json.loads((package / fmt.MANIFEST).read_bytes())["mp4"]
    assert signed["video_frames"] == 90 and signed["duration_seconds"] == 3.0
    assert signed["audio_streams"] == 1 and signed["audio_frames"] > 80
    assert signed["audio_start_seconds"] == pytest.approx(SOUND_FROM, abs=0.03)
    # Exactly where the camera's sound starts (an MP4 edit list in 1/1000 s moved it).
    plain = sound_world.site.plaintexts[sound_world.recording.recording_id]
    sealed = measure(plain, container_format="mpegts")[0]
    assert signed["audio_start_seconds"] == sealed.audio_start_seconds
    # In the MP4 the picture starts at 0 s and the sound keeps its place after it.
    with av.open(str(package / fmt.MP4)) as mp4:
        video, audio = mp4.streams.video[0], mp4.streams.audio[0]
        assert float(video.start_time * video.time_base) == 0.0
        first_sound = next(p for p in mp4.demux(audio) if p.pts is not None)
        assert float(first_sound.pts * audio.time_base) == pytest.approx(SOUND_FROM, abs=0.03)

    without, with_key = _both_modes(sound_world, package)
    assert without.ok and with_key.ok, with_key.findings
    assert f"sound from {signed['audio_start_seconds']} s" in "\n".join(without.proven)
    assert (
        f"all 90 decoded frames of picture and {signed['audio_frames']} of sound, and the "
        "time of each, equal the sealed MPEG-TS's" in "\n".join(with_key.proven)
    )


def test_a_made_up_sound_track_fails_with_the_vault_key(
    silent_world: World, tmp_path: Path
) -> None:
    package = _package(silent_world, tmp_path)
    pkg = _forge(
        package,
        tmp_path / "dubbed",
        silent_world,
        lambda honest, new: _copy_streams(honest, new, made_up_sound=True),
    )
    signed = json.loads((pkg / fmt.MANIFEST).read_bytes())["mp4"]
    assert signed["audio_streams"] == 1 and signed["audio_frames"] > 0
    without, with_key = _both_modes(silent_world, pkg)
    assert without.ok  # the export key's word is all the package has without the vault key
    assert with_key.files_named == {fmt.MP4}, with_key.findings
    assert "frames of sound in the MP4, 0 in the originals" in str(with_key.findings[0])
    assert not any("is the decryption" in line for line in with_key.proven)


def test_removed_sound_fails_with_the_vault_key(sound_world: World, tmp_path: Path) -> None:
    package = _package(sound_world, tmp_path)
    pkg = _forge(
        package,
        tmp_path / "muted",
        sound_world,
        lambda honest, new: _copy_streams(honest, new, sound=False),
    )
    without, with_key = _both_modes(sound_world, pkg)
    assert without.ok
    assert with_key.files_named == {fmt.MP4}, with_key.findings
    assert "0 frames of sound in the MP4" in str(with_key.findings[0])


@pytest.mark.parametrize(
    "change",
    ["stretched", "gap after frame 45", "picture moved against the sound"],
)
def test_the_same_frames_at_other_times_fail_with_the_vault_key(
    sound_world: World, tmp_path: Path, change: str
) -> None:
    package = _package(sound_world, tmp_path)
    with av.open(str(package / fmt.MP4)) as mp4:
        tick = mp4.streams.video[0].time_base
    half_second = int(0.5 / tick)
    picture_pts: Callable[[int, int], int] = {
        "stretched": lambda pts, i: pts * 3 // 2,
        "gap after frame 45": lambda pts, i: pts + (half_second if i >= 45 else 0),
        "picture moved against the sound": lambda pts, i: pts + half_second,
    }[change]
    pkg = _forge(
        package,
        tmp_path / "retimed",
        sound_world,
        lambda honest, new: _copy_streams(honest, new, picture_pts=picture_pts),
    )
    without, with_key = _both_modes(sound_world, pkg)
    assert without.ok, without.findings
    assert with_key.files_named == {fmt.MP4}, with_key.findings
    finding = str(with_key.findings[0])
    assert "is not the decryption of the originals" in finding
    kind = "sound" if change == "picture moved against the sound" else "picture"
    assert f"{kind} frame" in finding and "s in the MP4" in finding, finding


def test_signed_sound_figures_are_compared_without_the_vault_key(
    sound_world: World, tmp_path: Path
) -> None:
    """An MP4 changed but its figures left as signed (only the file hashes re-signed):
    decoding it disagrees with the manifest, which the check without the key sees."""
    package = _package(sound_world, tmp_path)
    pkg = copy_package(package, tmp_path / "muted-unsigned")
    honest = tmp_path / "honest.mp4"
    (pkg / fmt.MP4).rename(honest)
    _copy_streams(honest, pkg / fmt.MP4, sound=False)
    resign(pkg, sound_world.export_key)
    report = verify_export(pkg, expected_key=sound_world.export_key.public_bytes())
    assert report.files_named == {fmt.MP4}, report.findings
    finding = str(report.findings[0])
    assert "audio_streams 0 decoded, 1 signed" in finding
    assert "audio_start_seconds None decoded" in finding

    # And a made-up track in a package that signed none.
    silent = copy_package(package, tmp_path / "dubbed-unsigned")
    manifest = json.loads((silent / fmt.MANIFEST).read_bytes())
    manifest["mp4"].update(audio_streams=0, audio_frames=0, audio_start_seconds=None)
    (silent / fmt.MANIFEST).write_text(json.dumps(manifest))
    resign(silent, sound_world.export_key)
    report = verify_export(silent, expected_key=sound_world.export_key.public_bytes())
    assert report.files_named == {fmt.MP4}
    assert "audio_streams 1 decoded, 0 signed" in str(report.findings[0])


def test_a_package_signed_before_sound_figures_still_verifies(
    sound_world: World, tmp_path: Path
) -> None:
    package = _package(sound_world, tmp_path)
    pkg = copy_package(package, tmp_path / "older")
    manifest = json.loads((pkg / fmt.MANIFEST).read_bytes())
    for name in ("audio_frames", "audio_start_seconds"):
        del manifest["mp4"][name]
    (pkg / fmt.MANIFEST).write_text(json.dumps(manifest))
    resign(pkg, sound_world.export_key)
    without, with_key = _both_modes(sound_world, pkg)
    assert without.ok and with_key.ok, with_key.findings
    assert any("predates signed sound figures" in n for n in without.notes)


@pytest.fixture
def recovered_world(db: str, tmp_path: Path, clock: Any) -> World:
    """Cut by a power cut 3 s in, with sound from 1 s; closed by recovery at boot."""
    return make_world(
        tmp_path, clock, ts=make_ts_with_sound(3, sound_from=SOUND_FROM), recovered=True
    )


def test_a_recording_recovered_after_a_power_cut_is_proven(
    recovered_world: World, tmp_path: Path
) -> None:
    package = _package(recovered_world, tmp_path)
    manifest = json.loads((package / fmt.MANIFEST).read_bytes())
    assert manifest["recording"]["recovered"] and manifest["recording"]["ended_utc"] is None
    # The cut lost the chunk in memory: fewer frames than were recorded.
    assert manifest["mp4"]["video_frames"] < 90
    without, with_key = _both_modes(recovered_world, package)
    assert without.ok and with_key.ok, with_key.findings
    assert f"timeline (0.0..{fmt.MAX_SEGMENT_SECONDS:.1f} s)" in "\n".join(without.proven)
    assert any("is the decryption of the originals" in p for p in with_key.proven)


def _long_video(path: Path, seconds: int, fps: int = 5) -> None:
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(seconds * fps):
            img = np.full((48, 64, 3), (i * 3) % 255, dtype=np.uint8)
            out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(s.encode())


def test_a_recovered_recording_bounds_the_mp4_by_its_last_segment(
    recovered_world: World, tmp_path: Path
) -> None:
    """RECOVERED_END carries no end time; the last segment's signed start plus the longest
    segment a camera seals bounds the MP4 instead (before: no upper bound at all)."""
    package = _package(recovered_world, tmp_path)
    seconds = fmt.MAX_SEGMENT_SECONDS + 6
    pkg = _forge(
        package, tmp_path / "longer", recovered_world, lambda _, new: _long_video(new, seconds)
    )
    report = verify_export(pkg, expected_key=recovered_world.export_key.public_bytes())
    assert report.files_named == {fmt.MP4}, report.findings
    assert (
        f"lasts {float(seconds)} s; the camera's signed timeline allows "
        f"0.0..{fmt.MAX_SEGMENT_SECONDS:.1f} s (recovered after a power cut"
    ) in str(report.findings[0])
