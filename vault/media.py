"""The one media layer: every path that turns a decrypted recording into something else.

A decrypted recording is the camera's MPEG-TS (H.264, a keyframe every second, AAC sound
when the profile records it). The MP4 of `vault decrypt`, the export package and its
frame-by-frame proof, the watermarked viewing stream, the training copy and the demo all
open it here, one way (`open_recording`), and this module knows every kind there is:

- no sound at all: no audio stream, or an audio stream that never carries a packet
  (pre-record audio on, recording audio off: the pre-roll's sound is dropped too);
- sound from the first frame (pre-record audio on);
- sound only after the pre-roll (pre-record audio off): the first AAC packet can sit
  120 s and over 100 MB into the stream, far past ffmpeg's default 5 MB probe window.
  Without its first packet the audio stream has no sample rate and the MP4 muxer
  refuses it, so recordings are opened with a probe window that reaches any pre-roll
  (`PROBE_BYTES`, `PROBE_MICROSECONDS`);
- a recording closed at boot after a power cut (it ends wherever the cut left it: the
  sound frame the cut went through is incomplete, no decoder takes it, and it is left
  out like the rest of the lost chunk), a recording of one segment, a recording of a
  second or two.

Timestamps: the camera's stamps count from its power-on. Every output here starts the
picture at 0 s (the recording's first frame, a keyframe); sound keeps its place relative
to the picture, so sound that started 30 s into the recording starts 30 s into the MP4.

Errors are `MediaError`, one line naming the recording and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
import numpy as np
import numpy.typing as npt
from av.bitstream import BitStreamFilterContext

log = logging.getLogger(__name__)

# How far into a recording the demuxer may read to learn every stream's parameters: past
# any pre-roll (120 s of 1080p at the highest bitrate a profile allows is ~300 MB). It
# stops as soon as every stream is known, so a recording with sound from the start costs
# no more than before; one whose audio stream never carries a packet is read to this bound.
PROBE_BYTES = 1 << 30
PROBE_MICROSECONDS = 4 * 3600 * 1_000_000
PROBE_OPTIONS = {"probesize": str(PROBE_BYTES), "analyzeduration": str(PROBE_MICROSECONDS)}
MAX_FRAMES = 10_000_000  # ~3.8 days at 30 fps: a bound on every loop over decoded frames

# The movie time scale of the camera's clock (1/90000 s): the edit list that places late
# sound is then exact; at ffmpeg's default (1/1000 s) it moved the sound up to 1 ms.
CAMERA_TIMESCALE = {"movie_timescale": "90000"}
# An MP4 a player may start before it is complete (the back office's viewing stream).
FRAGMENTED_MP4 = {"movflags": "frag_keyframe+empty_moov+default_base_moof", **CAMERA_TIMESCALE}
# A whole MP4 file with its index first, so a player starts without reading it all.
FILE_MP4 = {"movflags": "+faststart", **CAMERA_TIMESCALE}

Source = Path | bytes
Drawing = Callable[[npt.NDArray[np.uint8], float], npt.NDArray[np.uint8]]


class MediaError(ValueError):
    """A recording that cannot be read or written as media; the message names it."""


def _why(exc: BaseException) -> str:
    """ffmpeg's reason without the errno and the path it prints around it."""
    if isinstance(exc, av.error.FFmpegError):
        reason = exc.strerror or type(exc).__name__
        logged = getattr(exc, "log", None)  # (level, component, message) ffmpeg logged last
        if logged and len(logged) == 3 and str(logged[2]).strip():
            reason = f"{reason} ({str(logged[2]).strip()})"
        return reason
    return str(exc) or type(exc).__name__


@dataclass
class OpenRecording:
    """A recording opened for reading: its streams and the picture's first instant."""

    name: str
    container: Any  # av.container.InputContainer (PyAV's stubs type it loosely)
    video: Any
    audio: Any | None  # None: no sound was recorded
    origin: Fraction  # seconds on the camera's clock of the first video frame

    def ticks(self, stream: Any) -> int:
        """The origin in `stream`'s time base."""
        return round(self.origin / stream.time_base)

    def packets(self, *, audio: bool = True) -> Iterator[Any]:
        """Demuxed packets, timestamps moved so the picture starts at 0 s.

        Sound from before the first frame of the picture is left out (there is no
        picture to go with it); flush packets without timestamps are dropped.
        """
        streams = [self.video] + ([self.audio] if audio and self.audio is not None else [])
        shift = {s.index: self.ticks(s) for s in streams}
        adts = "mpegts" in self.container.format.name  # AAC with ADTS headers (the camera's)
        try:
            for packet in self.container.demux(*streams):
                if packet.dts is None or packet.pts is None:
                    continue
                offset = shift[packet.stream.index]
                packet.pts -= offset
                packet.dts -= offset
                if packet.stream is not self.video and (
                    packet.pts < 0 or (adts and _cut_short(packet))
                ):
                    continue
                yield packet
        except av.error.FFmpegError as exc:
            raise MediaError(f"{self.name}: cannot read the recording: {_why(exc)}") from None

    def decoded(self, *, audio: bool = False) -> Iterator[tuple[Any, float]]:
        """Decoded frames of picture (and sound, if asked), each with its time in seconds
        from the first picture frame, the decoders' last frames included."""
        count = 0
        for packet in self.packets(audio=audio):
            for frame in self.decode(packet):
                count += 1
                if count > MAX_FRAMES:
                    raise MediaError(f"{self.name}: more than {MAX_FRAMES} frames")
                yield frame, float(frame.pts * packet.stream.time_base)
        for stream in [self.video] + ([self.audio] if audio and self.audio is not None else []):
            for frame in self.flush(stream):
                yield frame, float(frame.pts * stream.time_base)

    def decode(self, packet: Any) -> list[Any]:
        try:
            return [f for f in packet.decode() if f.pts is not None]
        except av.error.FFmpegError as exc:
            at = float(packet.pts * packet.stream.time_base)
            raise MediaError(f"{self.name}: cannot decode at {at:.3f} s: {_why(exc)}") from None

    def flush(self, stream: Any) -> list[Any]:
        """What the decoder of `stream` still holds (its threads keep a few frames)."""
        try:
            return [f for f in stream.codec_context.decode(None) if f.pts is not None]
        except av.error.FFmpegError as exc:
            raise MediaError(f"{self.name}: cannot decode the end: {_why(exc)}") from None


def _cut_short(packet: Any) -> bool:
    """An ADTS frame of AAC shorter than its header says: the end of a recording cut by
    a power cut (a sealed, authenticated recording has no other way to lose bytes)."""
    data = bytes(packet)
    if len(data) < 7 or data[0] != 0xFF or data[1] & 0xF6 != 0xF0:
        return False
    length = ((data[3] & 0x03) << 11) | (data[4] << 3) | (data[5] >> 5)
    if len(data) < length:
        log.info(
            "sound frame at %s cut short (%d of %d bytes): left out", packet.pts, len(data), length
        )
        return True
    return False


def _input(source: Source) -> str | IO[bytes]:
    return io.BytesIO(source) if isinstance(source, bytes) else str(source)


@contextmanager
def open_recording(
    source: Source, *, name: str | None = None, container_format: str | None = None
) -> Iterator[OpenRecording]:
    """Open a decrypted recording (a file or its bytes): video, sound if any, its origin.

    `container_format` is "mpegts" for the camera's stream as it was sealed, None to let
    the demuxer tell (an MP4 made here, a file given to the training copy).
    """
    label = name or (source.name if isinstance(source, Path) else "the recording")
    if isinstance(source, Path) and not source.is_file():
        raise MediaError(f"{label}: no such file")
    try:
        container: Any = av.open(
            _input(source), "r", format=container_format, options=PROBE_OPTIONS
        )
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(f"{label}: not a readable recording: {_why(exc)}") from None
    try:
        video = next(iter(container.streams.video), None)
        if video is None:
            raise MediaError(f"{label}: the recording has no video stream")
        if not video.codec_context.width or not video.codec_context.height:
            raise MediaError(f"{label}: the video stream has no picture size (no keyframe)")
        audio = next((s for s in container.streams.audio if s.codec_context.sample_rate), None)
        for silent in container.streams.audio:
            if silent is not audio:
                log.info("%s: audio stream %d carries no sound: left out", label, silent.index)
        start = video.start_time if video.start_time is not None else 0
        yield OpenRecording(label, container, video, audio, Fraction(start) * video.time_base)
    finally:
        container.close()


@dataclass(frozen=True)
class RemuxResult:
    video_packets: int
    audio_packets: int
    duration_seconds: float  # the picture's: first frame to the end of the last


def remux_to_mp4(
    source: Source, dest: Path | IO[bytes], *, name: str | None = None, fragmented: bool = False
) -> RemuxResult:
    """Copy the streams of the recording into an MP4 without re-encoding.

    `dest` is written as given (the caller owns temporary names and renames). The
    picture starts at 0 s; sound starts where it started in the recording.
    """
    with open_recording(source, name=name, container_format="mpegts") as rec:
        target = str(dest) if isinstance(dest, Path) else dest
        try:
            out: Any = av.open(
                target, "w", format="mp4", options=FRAGMENTED_MP4 if fragmented else FILE_MP4
            )
        except av.error.FFmpegError as exc:
            raise MediaError(f"{rec.name}: cannot create the MP4 {dest}: {_why(exc)}") from None
        counts = {"video": 0, "audio": 0}
        end = 0
        try:
            with out:
                picture = _copy_stream(out, rec.video)
                sound = _SoundCopy(rec, out, rec.audio) if rec.audio is not None else None
                for packet in rec.packets():
                    if packet.stream is rec.video:
                        end = max(end, packet.pts + (packet.duration or 0))
                        packet.stream = picture
                        out.mux(packet)
                        counts["video"] += 1
                    elif sound is not None:
                        counts["audio"] += sound.mux(out, packet)
        except av.error.FFmpegError as exc:
            raise MediaError(f"{rec.name}: cannot write the MP4: {_why(exc)}") from None
        if not counts["video"]:
            raise MediaError(f"{rec.name}: the recording holds no video packets")
        return RemuxResult(
            counts["video"], counts["audio"], round(float(end * rec.video.time_base), 3)
        )


def _copy_stream(out: Any, stream: Any) -> Any:
    copied = out.add_stream_from_template(stream)
    # The template keeps the parameters but not always the extradata (SPS/PPS, AAC config).
    if stream.codec_context.extradata:
        copied.codec_context.extradata = stream.codec_context.extradata
    return copied


# MPEG-4 audio sampling frequency index (ISO/IEC 14496-3, 1.6.3.4).
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
AAC_OBJECT_TYPES = {"Main": 1, "LC": 2, "SSR": 3, "LTP": 4}


class _SoundCopy:
    """The camera's AAC sound into an MP4: ADTS headers off, the AudioSpecificConfig on.

    MPEG-TS carries AAC in ADTS frames, each with its own header; MP4 wants the bare
    frames and the configuration once, in the track header. A fragmented MP4 writes that
    header before the first packet, so the configuration is built from the stream's
    parameters up front rather than learnt from the first frame.
    """

    def __init__(self, rec: OpenRecording, out: Any, stream: Any) -> None:
        self.stream = _copy_stream(out, stream)
        self._filter: Any = None
        ctx = stream.codec_context
        if ctx.name != "aac" or ctx.extradata:
            return
        kind = AAC_OBJECT_TYPES.get(str(ctx.profile))
        channels = int(ctx.layout.nb_channels)
        if kind is None or ctx.sample_rate not in AAC_RATES or not 1 <= channels <= 7:
            raise MediaError(
                f"{rec.name}: sound in AAC {ctx.profile} {ctx.sample_rate} Hz with "
                f"{channels} channels cannot be copied into an MP4"
            )
        index = AAC_RATES.index(ctx.sample_rate)
        config = (kind << 11) | (index << 7) | (channels << 3)
        self.stream.codec_context.extradata = config.to_bytes(2, "big")
        self._filter = BitStreamFilterContext("aac_adtstoasc", stream)

    def mux(self, out: Any, packet: Any) -> int:
        packets = [packet] if self._filter is None else self._filter.filter(packet)
        for each in packets:
            each.stream = self.stream
            out.mux(each)
        return len(packets)


def reencode_video(
    source: Source,
    out_file: IO[bytes],
    draw: Drawing,
    *,
    name: str | None = None,
    x264_options: dict[str, str],
    mp4_options: dict[str, str],
    keep_running: Callable[[], bool] = lambda: True,
    max_frames: int = MAX_FRAMES,
) -> int:
    """Decode the picture, let `draw` change each BGR frame, encode it again (x264).

    `draw(image, seconds_from_first_frame)` returns the image to encode. Sound is copied
    as it is, in its place. Returns the frames written; stops (returning what it wrote)
    as soon as `keep_running()` is false.
    """
    frames = 0
    last_pts = -1
    with open_recording(source, name=name, container_format="mpegts") as rec:
        try:
            out: Any = av.open(out_file, "w", format="mp4", options=mp4_options)
        except av.error.FFmpegError as exc:
            raise MediaError(f"{rec.name}: cannot start the MP4: {_why(exc)}") from None
        try:
            with out:
                rec.video.thread_type = "AUTO"
                rate = rec.video.average_rate or rec.video.guessed_rate or 30
                encoder: Any = out.add_stream("libx264", rate=rate)
                encoder.width = rec.video.codec_context.width
                encoder.height = rec.video.codec_context.height
                encoder.pix_fmt = "yuv420p"
                encoder.options = dict(x264_options)
                tick = Fraction(1, int(round(float(rate))))
                encoder.codec_context.time_base = tick
                sound = _SoundCopy(rec, out, rec.audio) if rec.audio is not None else None

                def encode(frame: Any) -> bool:
                    nonlocal frames, last_pts
                    seconds = float(frame.pts * rec.video.time_base)
                    image = draw(frame.to_ndarray(format="bgr24"), seconds)
                    new = av.VideoFrame.from_ndarray(image, format="bgr24")
                    # On the frame grid, from 0: a gap in the recording stays a gap.
                    new.pts = last_pts = max(last_pts + 1, round(seconds / tick))
                    new.time_base = tick
                    out.mux(encoder.encode(new))
                    frames += 1
                    if frames > max_frames:
                        raise MediaError(f"{rec.name}: longer than {max_frames} frames")
                    return keep_running()

                for packet in rec.packets():
                    if packet.stream is not rec.video:
                        if sound is not None:
                            sound.mux(out, packet)
                    elif not all(encode(frame) for frame in rec.decode(packet)):
                        return frames
                if not all(encode(frame) for frame in rec.flush(rec.video)):
                    return frames
                out.mux(encoder.encode())
        except av.error.FFmpegError as exc:
            raise MediaError(f"{rec.name}: cannot encode the video: {_why(exc)}") from None
    if not frames:
        raise MediaError(f"{rec.name}: the recording holds no video frames")
    return frames


@dataclass(frozen=True)
class MediaFacts:
    """What a recording or MP4 holds, measured by decoding it."""

    video_frames: int
    duration_seconds: float  # the picture: first frame to the last, plus one frame interval
    width: int
    height: int
    codec: str
    audio_streams: int  # streams that carry sound (0 or 1)
    audio_frames: int = 0  # decoded frames of sound
    # The first sound frame's time from the first picture frame (sound that began after
    # a pre-roll without sound starts late); None without sound.
    audio_start_seconds: float | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Fingerprint:
    """Every decoded frame of picture and sound: its time (µs from the first picture
    frame) and the SHA-256 of its samples. Equal fingerprints: the same footage, at the
    same instants, whatever container holds it."""

    video: list[tuple[int, str]] = field(default_factory=list)
    audio: list[tuple[int, str]] = field(default_factory=list)


def measure(
    source: Source,
    *,
    name: str | None = None,
    container_format: str | None = None,
    fingerprint: bool = False,
) -> tuple[MediaFacts, Fingerprint]:
    """Decode every frame of picture and sound: the facts, and a fingerprint if asked."""
    print_ = Fingerprint()
    times: list[float] = []
    sound: list[float] = []
    with open_recording(source, name=name, container_format=container_format) as rec:
        width, height = rec.video.codec_context.width, rec.video.codec_context.height
        codec = rec.video.codec_context.name
        for frame, seconds in rec.decoded(audio=True):
            micros = round(seconds * 1_000_000)
            if isinstance(frame, av.AudioFrame):
                sound.append(seconds)
                if fingerprint:
                    print_.audio.append((micros, _digest(frame)))
                continue
            times.append(seconds)
            if fingerprint:
                print_.video.append((micros, _digest(frame)))
        audio_streams = 0 if rec.audio is None else 1
    if not times:
        raise MediaError(f"{rec.name}: no video frames")
    span = max(times) - min(times)
    step = span / (len(times) - 1) if len(times) > 1 else 0.0
    facts = MediaFacts(
        len(times),
        round(span + step, 3),
        width,
        height,
        codec,
        audio_streams,
        len(sound),
        round(min(sound), 3) if sound else None,
    )
    return facts, print_


def _digest(frame: Any) -> str:
    """The samples only: plane line padding is not part of the picture."""
    return hashlib.sha256(frame.to_ndarray().tobytes()).hexdigest()
