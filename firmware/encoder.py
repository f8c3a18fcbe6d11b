"""The camera's encoder (H.264 + AAC via PyAV) and its MPEG-TS segment muxer.

```
enc = H264Encoder(1280, 720, 30, 4_000_000, gop_frames=30, audio=True, sample_rate=48_000)
packets = enc.encode_video(frame_bgr, frame_number)   # list[EncodedPacket], pts in 1/90000
packets += enc.encode_audio(samples_float32_mono)
packets += enc.flush()                                 # at power-off; the encoder is done

mux = TsSegmentMuxer(sink, enc)     # sink: write-only, not seekable (the sealing writer)
mux.write(pkt)
mux.close()                          # trailer written; segments concatenate into one stream
```

The encoder turns frames into packets and knows nothing of where they go (the
pre-record ring buffer in standby, the recorder while recording); the muxer turns
packets into one MPEG-TS segment and knows nothing of encoding. Packets carry their
bytes (copied out of PyAV), so they outlive the encoder and the muxer.

Video: libx264, preset ultrafast + tune zerolatency (no B-frames, no lookahead: one
packet per frame, decode order = presentation order, dts = pts), a keyframe every
`gop_frames` frames (scenecut off, so keyframes are exactly periodic) and SPS/PPS
repeated in front of every keyframe (repeat-headers), so every segment cut at a
keyframe decodes on its own. Timestamps: pts = frame_number * 90000 // fps, the
same rule the camera uses, so frame numbers survive into the media timeline.

Audio (when enabled): FFmpeg's native AAC encoder, mono float (fltp). The first
sample encoded is placed at the pts of the first video frame encoded. AAC's first
output packet (the encoder's 1024-sample priming, pts < 0) is dropped, so no
timestamp precedes the picture; every later packet keeps its exact sample timing,
rescaled to 1/90000. The encoder is not thread-safe: one capture loop drives it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from fractions import Fraction
from typing import Any, BinaryIO

import av
import cv2
import numpy as np
import numpy.typing as npt

from ringbuffer.packet import (
    STREAM_AUDIO,
    STREAM_VIDEO,
    TICKS_PER_SECOND,
    TIME_BASE,
    EncodedPacket,
    frame_pts,
)

log = logging.getLogger(__name__)

AAC_SAMPLE_RATES = (8_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)
AUDIO_BITRATE = 64_000  # mono speech and street sound
MAX_AUDIO_CHUNK = 10 * 48_000  # samples per encode_audio call (bounds memory)
MAX_PACKET_BYTES = 16 * 1024 * 1024  # a packet larger than this is a bug, not a frame
# Muxer options. copyts: keep the capture timestamps (no 1.4 s muxer offset), so the
# TS pts is the camera's media clock. initial_discontinuity: each segment restarts the
# TS continuity counters; flagging it lets players read concatenated segments cleanly.
# max_interleave_delta: packets arrive already interleaved in capture order; do not
# hold video for seconds waiting for audio (a pre-roll may have none).
_MUX_OPTIONS = {
    "mpegts_copyts": "1",
    "mpegts_flags": "+initial_discontinuity",
    "max_interleave_delta": "100000",
}


class EncoderError(ValueError):
    """Bad encoder settings or input (wrong frame shape, frame numbers going back)."""


class EncoderClosed(EncoderError):
    """The encoder was flushed; make a new one (as the camera does at each standby)."""


class MuxError(ValueError):
    """A packet the segment muxer cannot take (unknown stream, audio without an audio track)."""


class H264Encoder:
    """H.264 (libx264) video and optional AAC audio, packets timestamped in 1/90000 s."""

    def __init__(
        self,
        width: int,
        height: int,
        fps: int,
        bitrate_bps: int,
        gop_frames: int,
        audio: bool = False,
        sample_rate: int = 48_000,
    ) -> None:
        width, height, fps = int(width), int(height), int(fps)
        bitrate_bps, gop_frames = int(bitrate_bps), int(gop_frames)
        if not (16 <= width <= 7680 and 16 <= height <= 4320) or width % 2 or height % 2:
            raise EncoderError(
                f"picture {width}x{height}: allowed even sizes 16..7680 x 16..4320 (4:2:0)"
            )
        if not 1 <= fps <= 240:
            raise EncoderError(f"fps {fps}: allowed 1..240")
        if not 10_000 <= bitrate_bps <= 200_000_000:
            raise EncoderError(f"bitrate {bitrate_bps} bit/s: allowed 10000..200000000")
        if not 1 <= gop_frames <= 1000:
            raise EncoderError(f"gop_frames {gop_frames}: allowed 1..1000")
        if audio and int(sample_rate) not in AAC_SAMPLE_RATES:
            raise EncoderError(f"sample_rate {sample_rate}: allowed {AAC_SAMPLE_RATES}")
        self.width, self.height, self.fps = width, height, fps
        self.bitrate_bps, self.gop_frames = bitrate_bps, gop_frames
        self.audio = bool(audio)
        self.sample_rate = int(sample_rate)
        self.time_base = TIME_BASE
        self.frames_encoded = 0
        self._closed = False
        self._last_frame: int | None = None

        video: Any = av.CodecContext.create("libx264", "w")
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        # The encoder's own clock counts frames; packets are mapped to 1/90000 below.
        video.time_base = Fraction(1, fps)
        video.framerate = Fraction(fps, 1)
        video.bit_rate = bitrate_bps
        video.gop_size = gop_frames
        video.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": (
                f"keyint={gop_frames}:min-keyint={gop_frames}:scenecut=0:repeat-headers=1"
            ),
        }
        video.open()
        self.video_context: Any = video

        self.audio_context: Any = None
        self._audio_start: int | None = None  # pts of sample 0 (the first video frame)
        self._pending = np.zeros(0, dtype=np.float32)
        self._samples_in = 0
        if self.audio:
            aac: Any = av.CodecContext.create("aac", "w")
            aac.sample_rate = self.sample_rate
            aac.format = "fltp"
            aac.layout = "mono"
            aac.time_base = Fraction(1, self.sample_rate)
            aac.bit_rate = AUDIO_BITRATE
            # The fast coder: about a quarter of the default (twoloop) coder's CPU per frame,
            # at speech-and-street-noise quality the default bitrate already limits.
            aac.options = {"aac_coder": "fast"}
            aac.open()
            self.audio_context = aac
            self.audio_frame_size = int(aac.frame_size)
        log.debug(
            "encoder %dx%d %d fps %d bit/s gop %d audio=%s",
            width,
            height,
            fps,
            bitrate_bps,
            gop_frames,
            self.audio,
        )

    # --- video ---------------------------------------------------------------------

    @property
    def frame_duration(self) -> int:
        """Ticks per frame (rounded down when fps does not divide 90000)."""
        return TICKS_PER_SECOND // self.fps

    @property
    def audio_extradata(self) -> bytes | None:
        """The AAC AudioSpecificConfig a muxer needs (None without audio)."""
        if self.audio_context is None:
            return None
        data = self.audio_context.extradata
        return bytes(data) if data else None

    def encode_video(self, frame: npt.NDArray[np.uint8], frame_number: int) -> list[EncodedPacket]:
        """Encode one frame captured as `frame_number` (strictly rising).

        `frame`: BGR (H, W, 3) uint8, or I420 planes (H * 3 / 2, W) uint8 (no conversion).
        """
        self._check_open()
        n = int(frame_number)
        if self._last_frame is not None and n <= self._last_frame:
            raise EncoderError(
                f"frame number {n} after {self._last_frame}: frame numbers must rise"
            )
        if n < 0:
            raise EncoderError(f"frame number {n} is negative")
        i420 = (self.height * 3 // 2, self.width)
        if frame.dtype != np.uint8 or frame.shape not in ((self.height, self.width, 3), i420):
            raise EncoderError(
                f"frame of shape {frame.shape} {frame.dtype}: expected "
                f"({self.height}, {self.width}, 3) uint8 BGR or {i420} uint8 I420"
            )
        if frame.shape == i420:  # a sensor that draws in I420 already (sim/sensor.py)
            yuv = np.ascontiguousarray(frame)
        else:
            # OpenCV's BT.601 limited-range conversion: ~20x faster than swscale from bgr24.
            yuv = np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8)
        # The planes as they are (no copy into a new frame); x264 copies the picture in
        # during encode(), so the array may go once encode() returned.
        picture = av.VideoFrame.from_numpy_buffer(yuv, format="yuv420p")
        picture.pts = n
        self._last_frame = n
        if self._audio_start is None:
            self._audio_start = frame_pts(n, self.fps)
        self.frames_encoded += 1
        return self._video_packets(self.video_context.encode(picture))

    def _video_packets(self, packets: Iterable[Any]) -> list[EncodedPacket]:
        out = []
        for packet in packets:
            n = int(packet.pts)
            pts = frame_pts(n, self.fps)
            out.append(
                EncodedPacket(
                    _copy(packet),
                    pts,
                    frame_pts(n + 1, self.fps) - pts,
                    STREAM_VIDEO,
                    bool(packet.is_keyframe),
                )
            )
        return out

    # --- audio ---------------------------------------------------------------------

    def encode_audio(self, samples: npt.NDArray[Any]) -> list[EncodedPacket]:
        """Encode mono float samples in [-1, 1]; returns the AAC packets that are complete."""
        self._check_open()
        if self.audio_context is None:
            raise EncoderError("this encoder was made with audio=False")
        data = np.asarray(samples, dtype=np.float32).reshape(-1)
        if data.size > MAX_AUDIO_CHUNK:
            raise EncoderError(f"{data.size} samples in one call: allowed up to {MAX_AUDIO_CHUNK}")
        if self._audio_start is None:
            self._audio_start = 0  # no picture yet: sample 0 is at pts 0
        pending = np.concatenate((self._pending, data)) if self._pending.size else data
        size = self.audio_frame_size
        whole = pending.size - pending.size % size
        out: list[EncodedPacket] = []
        for start in range(0, whole, size):
            out += self._encode_audio_frame(pending[start : start + size])
        self._pending = pending[whole:].copy()
        return out

    def _encode_audio_frame(self, chunk: npt.NDArray[np.float32] | None) -> list[EncodedPacket]:
        if chunk is None:
            packets = self.audio_context.encode(None)
        else:
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk).reshape(1, -1), format="fltp", layout="mono"
            )
            frame.sample_rate = self.sample_rate
            frame.pts = self._samples_in
            self._samples_in += chunk.size
            packets = self.audio_context.encode(frame)
        out = []
        start = self._audio_start or 0
        for packet in packets:
            sample = int(packet.pts)
            if sample < 0:
                continue  # the encoder's priming packet: see the module docstring
            end = sample + int(packet.duration or self.audio_frame_size)
            pts = start + sample * TICKS_PER_SECOND // self.sample_rate
            stop = start + end * TICKS_PER_SECOND // self.sample_rate
            out.append(EncodedPacket(_copy(packet), pts, stop - pts, STREAM_AUDIO, True))
        return out

    # --- end -----------------------------------------------------------------------

    def flush(self) -> list[EncodedPacket]:
        """Drain both encoders (a short last audio frame included); the encoder is then done."""
        self._check_open()
        self._closed = True
        out = self._video_packets(self.video_context.encode(None))
        if self.audio_context is not None:
            if self._pending.size:
                out += self._encode_audio_frame(self._pending)
                self._pending = np.zeros(0, dtype=np.float32)
            out += self._encode_audio_frame(None)
        return out

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise EncoderClosed("the encoder was flushed; make a new H264Encoder")

    def __repr__(self) -> str:
        return (
            f"H264Encoder({self.width}x{self.height} {self.fps} fps {self.bitrate_bps} bit/s "
            f"gop {self.gop_frames} audio={self.audio})"
        )


def _copy(packet: Any) -> bytes:
    size = int(packet.size)
    if size > MAX_PACKET_BYTES:
        raise EncoderError(f"encoder produced a {size}-byte packet (limit {MAX_PACKET_BYTES})")
    return bytes(packet)


class TsSegmentMuxer:
    """Writes packets of one segment as MPEG-TS into a write-only, non-seekable sink.

    Video (and audio when the encoder has it) streams in 1/90000; dts = pts (no
    B-frames). `close()` flushes the muxer; it does not close the sink.
    """

    def __init__(self, sink: BinaryIO | Any, encoder: H264Encoder) -> None:
        self._sink = sink
        self._closed = False
        self.packets = 0
        self._container: Any = av.open(
            sink, mode="w", format="mpegts", container_options=dict(_MUX_OPTIONS)
        )
        try:
            video = self._container.add_mux_stream(
                "h264", rate=encoder.fps, width=encoder.width, height=encoder.height
            )
            video.time_base = TIME_BASE
            self._streams: dict[int, Any] = {STREAM_VIDEO: video}
            if encoder.audio:
                self._streams[STREAM_AUDIO] = self._add_audio(encoder)
        except Exception:
            self._container.close()
            raise

    def _add_audio(self, encoder: H264Encoder) -> Any:
        # A stream with a codec context (not a bare mux stream): the TS muxer needs the
        # AudioSpecificConfig (extradata) to put ADTS headers on the raw AAC frames.
        # Without it FFmpeg writes unplayable audio and reports nothing.
        source = encoder.audio_context
        stream = self._container.add_stream("aac", rate=encoder.sample_rate)
        ctx = stream.codec_context
        ctx.format = source.format.name
        ctx.layout = source.layout.name
        ctx.bit_rate = source.bit_rate
        ctx.time_base = Fraction(1, encoder.sample_rate)
        ctx.extradata = encoder.audio_extradata
        stream.time_base = TIME_BASE
        return stream

    def write(self, pkt: EncodedPacket) -> None:
        """Add one packet (capture order; pts rising per stream)."""
        if self._closed:
            raise MuxError("segment muxer is closed")
        target = self._streams.get(int(pkt.stream))
        if target is None:
            raise MuxError(
                f"packet for stream {pkt.stream}: this segment has streams {sorted(self._streams)}"
            )
        if len(pkt.data) > MAX_PACKET_BYTES:
            raise MuxError(f"packet of {len(pkt.data)} bytes: limit {MAX_PACKET_BYTES}")
        packet = av.Packet(bytes(pkt.data))
        packet.pts = packet.dts = int(pkt.pts)
        packet.duration = int(pkt.duration)
        packet.time_base = TIME_BASE
        packet.stream = target
        packet.is_keyframe = bool(pkt.keyframe)
        self._container.mux(packet)
        self.packets += 1

    def close(self) -> None:
        """Flush buffered packets and the TS trailer into the sink. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._container.close()

    def __repr__(self) -> str:
        return f"TsSegmentMuxer(streams={sorted(self._streams)}, packets={self.packets})"
