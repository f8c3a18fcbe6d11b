"""Every kind of recording through every path that turns footage into a picture.

One shift (`corpus_support.py`) makes the recordings a back office meets: 1080p with a
120 s pre-roll and sound only after it, 720p with sound from the first frame, no sound at
all, a recording cut by a power cut and recovered, and a recording of one segment. Each
goes, as its users would send it, through `vault decrypt --out X.mp4`, `vault export` and
`verify-export` (with and without the vault key), a viewing in pairs over HTTP against
`bodycam vault serve`, and the training copy's anonymizer.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from corpus_support import Browser, Corpus, build_corpus

from vault.media import measure


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def decrypted(corpus: Corpus) -> dict[str, tuple[Path, Path]]:
    """Each recording decrypted by the cluster manager: (MPEG-TS, MP4)."""
    out = corpus.root / "decrypted"
    out.mkdir()
    made = {}
    for rec in corpus.recordings:
        files = []
        for suffix in (".ts", ".mp4"):
            path = out / f"{rec.recording_id}{suffix}"
            done = corpus.vault(
                "decrypt",
                rec.ref,
                "--out",
                str(path),
                "--purpose",
                "criminal_investigation",
                user="cees",
            )
            assert done.returncode == 0, f"{rec.camera} {rec.ref}: {done.stderr.strip()}"
            files.append(path)
        made[rec.recording_id] = (files[0], files[1])
    return made


def ffprobe(path: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_packets",
            "-show_format",
            "-show_streams",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    info: dict[str, Any] = json.loads(proc.stdout)
    return info


def _stream(info: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((s for s in info["streams"] if s["codec_type"] == kind), None)


def test_the_corpus_holds_every_kind_of_recording(corpus: Corpus) -> None:
    kinds = {(r.camera, r.size, r.recovered, r.sound_from) for r in corpus.recordings}
    assert ("hd-long", (1920, 1080), False, 120.0) in kinds
    assert any(r.recovered for r in corpus.recordings)
    assert any(r.sound_from is None for r in corpus.recordings)
    assert any(r.sound_from == 0.0 for r in corpus.recordings)
    hd = next(r for r in corpus.recordings if r.camera == "hd-long")
    assert hd.prerecord == 120.0


def test_every_recording_decrypts_to_an_mp4_with_the_cameras_timeline(
    corpus: Corpus, decrypted: dict[str, tuple[Path, Path]]
) -> None:
    for rec in corpus.recordings:
        ts, mp4 = decrypted[rec.recording_id]
        sealed, _ = measure(ts, container_format="mpegts")
        info = ffprobe(mp4)
        video, audio = _stream(info, "video"), _stream(info, "audio")
        what = f"{rec.camera} {rec.recording_id}"
        assert video is not None and video["codec_name"] == "h264", what
        assert (video["width"], video["height"]) == rec.size, what
        frame = 1 / eval(video["avg_frame_rate"])  # noqa: S307 - "30/1" from ffprobe
        # The MP4 starts at 0 and lasts as long as the sealed recording, within a frame.
        assert float(video["start_time"]) == 0.0, what
        assert float(info["format"]["start_time"]) == 0.0, what
        assert int(video["nb_read_packets"]) == sealed.video_frames, what
        assert abs(float(video["duration"]) - sealed.duration_seconds) <= frame + 1e-3, what
        assert abs(float(info["format"]["duration"]) - sealed.duration_seconds) <= frame, what
        if rec.sound_from is None:
            assert audio is None, f"{what}: sound in a recording made without"
            continue
        assert audio is not None and audio["codec_name"] == "aac", f"{what}: sound lost"
        # Sound starts where it started: at the press after a pre-roll without sound.
        starts = float(audio["start_time"])
        want = rec.prerecord if rec.sound_from > 0 else 0.0
        assert abs(starts - want) < 0.1, f"{what}: sound at {starts} s, expected {want} s"
        assert abs(starts + float(audio["duration"]) - sealed.duration_seconds) < 0.15, what
        # In sync: the same distance between picture and sound as in the sealed stream.
        with av.open(
            str(ts), options={"probesize": str(1 << 30), "analyzeduration": str(10**10)}
        ) as c:
            v, a = c.streams.video[0], c.streams.audio[0]
            offset = float((a.start_time * a.time_base) - (v.start_time * v.time_base))
        assert abs(starts - offset) < 0.002, f"{what}: sound moved by {starts - offset:.4f} s"


def test_every_recording_exports_and_verifies_with_and_without_the_vault_key(
    corpus: Corpus,
) -> None:
    out = corpus.root / "exports"
    out.mkdir()
    for n, rec in enumerate(corpus.recordings, start=1):
        what = f"{rec.camera} {rec.recording_id}"
        pkg = out / f"{rec.recording_id}.zip"
        made = corpus.vault(
            "export",
            rec.ref,
            "--out",
            str(pkg),
            "--reference",
            f"OM-2026-{n:03d}",
            user="priya",
        )
        assert made.returncode == 0, f"{what}: {made.stderr.strip()}"
        assert pkg.is_file()
        plain = corpus.vault("verify-export", str(pkg), user="priya")
        assert plain.returncode == 0, f"{what}: {plain.stdout}{plain.stderr}"
        proven = corpus.vault(
            "verify-export",
            str(pkg),
            "--vault-key",
            str(corpus.keys_dir / "vault.key"),
            user="priya",
        )
        assert proven.returncode == 0, f"{what}: {proven.stdout}{proven.stderr}"
        assert "is the decryption of the originals" in proven.stdout, what
        facts = re.search(r"(\d+) decoded frames of picture and (\d+) of sound", proven.stdout)
        assert facts is not None, proven.stdout
        assert (int(facts[2]) > 0) == (rec.sound_from is not None), what


@pytest.fixture(scope="module")
def server(corpus: Corpus) -> Iterator[str]:
    import sys

    web = Path(__file__).resolve().parents[1] / "web"
    sys.path.insert(0, str(web))
    from web_support import Server

    srv = Server(corpus.home, corpus.root / "serve.log")
    try:
        yield srv.url
    finally:
        srv.stop()


def test_every_recording_streams_for_a_viewing_in_pairs_with_the_watermark(
    corpus: Corpus, decrypted: dict[str, tuple[Path, Path]], server: str
) -> None:
    session = Browser(server)
    session.sign_in("cees", corpus.password)
    for rec in corpus.recordings:
        what = f"{rec.camera} {rec.recording_id}"
        page_path = f"/recordings/{rec.device_id}/{rec.recording_id}/"
        status, page, _ = session.get(page_path)
        assert status == 200, f"{what}: recording page {status}"
        status, body, where = session.post(
            f"{page_path}view",
            {"purpose": "complaint", "second_username": "sam", "second_password": corpus.password},
            page.decode(),
        )
        assert status == 200 and "/viewings/" in where, f"{what}: {status} {body[:400]!r}"
        viewing = where.split("/viewings/")[1].split("/")[0]
        status, stream, _ = session.get(f"/viewings/{viewing}/stream", timeout=600)
        assert status == 200 and stream, f"{what}: stream {status}, {len(stream)} bytes"
        _, mp4 = decrypted[rec.recording_id]
        shown = _decode(stream)
        plain = _decode(mp4.read_bytes())
        assert len(shown.frames) == len(plain.frames), what
        assert shown.sound == plain.sound, f"{what}: sound {shown.sound} vs {plain.sound}"
        for i in (0, len(plain.frames) // 2, len(plain.frames) - 1):
            diff = np.abs(shown.frames[i].astype(int) - plain.frames[i].astype(int))
            assert (diff > 40).mean() > 0.002, f"{what}: frame {i} carries no watermark"
        _, viewing_page, _ = session.get(f"/viewings/{viewing}/")
        session.post(f"/viewings/{viewing}/event", {"event": "end"}, viewing_page.decode())


class _Decoded:
    def __init__(self, frames: list[np.ndarray], sound: bool) -> None:
        self.frames, self.sound = frames, sound


def _decode(data: bytes) -> _Decoded:
    with av.open(io.BytesIO(data)) as c:
        frames = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
        return _Decoded(frames, bool(c.streams.audio))


def test_every_recording_makes_a_training_copy(
    corpus: Corpus, decrypted: dict[str, tuple[Path, Path]]
) -> None:
    from vault.anonymize import anonymize_recording

    out = corpus.root / "training"
    out.mkdir()
    for rec in corpus.recordings:
        ts, _ = decrypted[rec.recording_id]
        sealed, _ = measure(ts, container_format="mpegts")
        copy = out / f"{rec.recording_id}.mp4"
        report = anonymize_recording(ts, copy)
        assert report.frames == sealed.video_frames, rec.camera
        info = ffprobe(copy)
        assert _stream(info, "audio") is None  # sound is never part of a training copy
        assert int(_stream(info, "video")["nb_read_packets"]) == sealed.video_frames
