"""Footage for one viewing: decrypted in memory, watermarked, as fragmented MP4.

The recording is assembled (still encrypted) in a private work folder, verified and
decrypted into memory, and the folder is removed at once; no plaintext byte is ever
written to disk. The video is re-encoded with the viewers' names, the purpose and the
time burned into every frame (OpenCV draws, PyAV/x264 encodes) into a fragmented MP4
held in memory; audio is copied as it is. When the viewing ends the buffer is dropped;
a restart of the server loses it with the process.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from crypto.keys import VaultKey
from crypto.open import decrypt_recording
from dock.store import Store
from vault.catalog.custody import _assemble, _workdir
from vault.catalog.models import Recording
from vault.media import MediaError

log = logging.getLogger(__name__)

# One keyframe a second so a seek lands close to where it was asked.
X264_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency",
                "x264-params": "keyint=30:min-keyint=15:scenecut=0"}
MP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
MAX_FRAMES = 30 * 60 * 60 * 2  # two hours at 30 fps: a bound on any one viewing


@dataclass(frozen=True)
class Watermark:
    lines: tuple[str, ...]

    @classmethod
    def for_viewing(cls, names: Sequence[str], purpose: str, started: dt.datetime,
                    recording: str) -> Watermark:
        return cls((f"VIEWING {' + '.join(names)}",
                    f"purpose {purpose}  |  {recording}",
                    f"viewed {started.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC  |  no copy"))


def burn_in(img: np.ndarray, mark: Watermark, footage_seconds: float) -> np.ndarray:
    """Draw the watermark across the top of a BGR frame (in place) and return it."""
    h, w = img.shape[:2]
    scale = max(0.5, w / 1400)
    thick = max(2, round(scale * 2.5))  # bold enough to survive the encoder at low sizes
    line_h = int(28 * scale) + 6
    lines = [*mark.lines, f"t+{footage_seconds:7.2f} s"]
    box_h = line_h * len(lines) + 8
    # A dark band keeps the text legible on any footage; it cannot be cropped away
    # without losing the top of the picture.
    img[:box_h] = (img[:box_h] * 0.35).astype(np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(img, text, (8, line_h * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thick, cv2.LINE_AA)
    return img


def decrypt_to_memory(*, recording: Recording, store: Store, vault_key: VaultKey,
                      work_dir: Path | None) -> bytes:
    """The recording's MPEG-TS plaintext, verified against the registered camera key."""
    buf = io.BytesIO()
    with _workdir(work_dir) as tmp:
        public = _assemble(store, recording, tmp)
        decrypt_recording(tmp, vault_key, public, buf, require_complete=not recording.recovered
                          and recording.complete)
    return buf.getvalue()


def watermark_mp4(ts: bytes, mark: Watermark) -> bytes:
    """Re-encode the video of `ts` with `mark` burned in; fragmented MP4 bytes."""
    out_buf = io.BytesIO()
    frames = 0
    try:
        with av.open(io.BytesIO(ts), "r", format="mpegts") as fin, \
                av.open(out_buf, "w", format="mp4", options=MP4_OPTIONS) as fout:
            vin = next((s for s in fin.streams if s.type == "video"), None)
            if vin is None:
                raise MediaError("the recording has no video stream")
            vin.thread_type = "AUTO"
            rate = vin.average_rate or vin.guessed_rate or 30
            vout: Any = fout.add_stream("libx264", rate=rate)
            vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
            vout.pix_fmt = "yuv420p"
            vout.options = dict(X264_OPTIONS)
            vout.codec_context.time_base = Fraction(1, int(round(float(rate))))
            aout: Any = None
            ain = next((s for s in fin.streams if s.type == "audio"), None)
            if ain is not None:
                aout = fout.add_stream_from_template(ain)
                if ain.codec_context.extradata:
                    aout.codec_context.extradata = ain.codec_context.extradata
            first_pts: float | None = None
            # The picture restarts at 0 s; sound keeps its place relative to the picture.
            audio_shift: int | None = None
            streams = [vin] + ([ain] if ain is not None else [])
            for packet in fin.demux(*streams):
                if packet.stream is ain:
                    if packet.dts is not None and packet.pts is not None and \
                            first_pts is not None:
                        if audio_shift is None:
                            audio_shift = int(first_pts / float(ain.time_base))
                        packet.pts -= audio_shift
                        packet.dts -= audio_shift
                        if packet.dts >= 0:
                            packet.stream = aout
                            fout.mux(packet)
                    continue
                for frame in packet.decode():
                    t = float(frame.time or 0.0)
                    first_pts = t if first_pts is None else first_pts
                    img = burn_in(frame.to_ndarray(format="bgr24"), mark, t - first_pts)
                    new = av.VideoFrame.from_ndarray(img, format="bgr24")
                    new.pts = frames
                    new.time_base = vout.codec_context.time_base
                    fout.mux(vout.encode(new))
                    frames += 1
                    if frames > MAX_FRAMES:
                        raise MediaError(f"recording longer than {MAX_FRAMES} frames")
            fout.mux(vout.encode())
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot prepare the recording for viewing: {exc}") from None
    if not frames:
        raise MediaError("the recording holds no video frames")
    return out_buf.getvalue()
