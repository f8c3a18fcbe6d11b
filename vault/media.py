"""Turning a decrypted recording (concatenated MPEG-TS segments) into a playable MP4."""

from __future__ import annotations

import logging
from pathlib import Path

import av

log = logging.getLogger(__name__)


class MediaError(ValueError):
    """The decrypted stream cannot be remuxed (not MPEG-TS with H.264/AAC)."""


def ts_to_mp4(src: Path, dst: Path) -> int:
    """Remux (no re-encoding) the TS at `src` into an MP4 at `dst`; returns packets written."""
    written = 0
    try:
        with (
            av.open(str(src), "r", format="mpegts") as fin,
            av.open(str(dst), "w", format="mp4", options={"movflags": "+faststart"}) as fout,
        ):
            mapping = {}
            for stream in fin.streams:
                if stream.type not in ("video", "audio"):
                    continue
                out = fout.add_stream_from_template(stream)
                # The template keeps parameters but not always the extradata (SPS/PPS).
                if stream.codec_context.extradata:
                    out.codec_context.extradata = stream.codec_context.extradata
                mapping[stream.index] = out
            if not mapping:
                raise MediaError(f"{src}: no audio or video stream")
            for packet in fin.demux(*[fin.streams[i] for i in mapping]):
                if packet.dts is None:
                    continue
                packet.stream = mapping[packet.stream.index]
                fout.mux(packet)
                written += 1
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot remux {src} into MP4: {exc}") from None
    if not written:
        raise MediaError(f"{src}: no media packets")
    return written
