"""What an export package says about its video, measured by decoding it (PyAV).

The back office measures the MP4 it writes and signs the figures; the verifier decodes
the MP4 again and compares. Given the vault key it also decodes the decrypted sealed
MPEG-TS and compares every decoded frame (a per-frame SHA-256 of the picture planes),
which holds because the MP4 is a remux of the TS, not a re-encoding.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av

log = logging.getLogger(__name__)

MAX_FRAMES = 10_000_000  # ~3.8 days at 30 fps: a bound on any loop over decoded frames


class MediaCheckError(ValueError):
    """The file does not decode as video."""


@dataclass(frozen=True)
class MediaFacts:
    video_frames: int
    duration_seconds: float  # first to last frame, plus one frame interval
    width: int
    height: int
    codec: str
    audio_streams: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def measure(
    path: Path, *, container_format: str | None = None, frame_digests: bool = False
) -> tuple[MediaFacts, list[str]]:
    """Decode every video frame; the facts, and each frame's picture digest if asked."""
    digests: list[str] = []
    times: list[float] = []
    try:
        with av.open(str(path), "r", format=container_format) as c:
            if not c.streams.video:
                raise MediaCheckError(f"{path.name}: no video stream")
            video = c.streams.video[0]
            width, height = video.codec_context.width, video.codec_context.height
            codec, audio = video.codec_context.name, len(c.streams.audio)
            for frame in c.decode(video):
                if len(times) >= MAX_FRAMES:
                    raise MediaCheckError(f"{path.name}: more than {MAX_FRAMES} frames")
                if frame.time is not None:
                    times.append(float(frame.time))
                else:
                    times.append(float(len(times)))
                if frame_digests:
                    # The picture only: plane line padding is not part of it.
                    digests.append(hashlib.sha256(frame.to_ndarray().tobytes()).hexdigest())
    except av.error.FFmpegError as exc:
        raise MediaCheckError(f"{path.name}: does not decode ({exc})") from None
    if not times:
        raise MediaCheckError(f"{path.name}: no video frames")
    span = max(times) - min(times)
    step = span / (len(times) - 1) if len(times) > 1 else 0.0
    return MediaFacts(len(times), round(span + step, 3), width, height, codec, audio), digests
