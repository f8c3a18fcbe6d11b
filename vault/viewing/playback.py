"""Footage for one viewing: decrypted in memory, watermarked, as fragmented MP4.

The recording is assembled (still encrypted) in a private work folder, verified and
decrypted into memory, and the folder is removed at once; no plaintext byte is ever
written to disk. The video is re-encoded with the viewers' mark burned into every frame
(`vault.viewing.watermark`: OpenCV draws, PyAV/x264 encodes) into a fragmented MP4 held in
memory; audio is copied as it is. When the viewing ends the buffer is dropped;
a restart of the server loses it with the process.

The encoding is deterministic: the same footage and the same mark give the same bytes
in every process on every host running these packages (x264 on a fixed number of
threads, which its output depends on; no wall-clock time in the container), so any
worker can answer any byte range of a viewing (`vault.viewing.streams`).
"""

from __future__ import annotations

import io
import logging
import threading
import time
from pathlib import Path

import numpy as np

from crypto.keys import VaultKey
from crypto.open import decrypt_recording
from store import Store
from vault.catalog.custody import _assemble, _workdir
from vault.catalog.models import Recording
from vault.media import FRAGMENTED_MP4, open_recording, reencode_video
from vault.viewing.watermark import BurnIn, Watermark
from vault.viewing.watermark import burn_in as burn_in  # one frame, for callers of this module

log = logging.getLogger(__name__)

# One keyframe a second so a seek lands close to where it was asked. x264's output
# depends on its thread count (slices per frame): fixed here, never "auto" (the cores of
# whichever host encodes), so every worker produces the same bytes.
ENCODER_THREADS = 2
X264_OPTIONS = {
    "preset": "ultrafast",
    "tune": "zerolatency",
    "x264-params": f"keyint=30:min-keyint=15:scenecut=0:threads={ENCODER_THREADS}",
}
# Small fragments (a quarter second) so the first frame reaches the browser early.
MP4_OPTIONS = {**FRAGMENTED_MP4, "frag_duration": "250000"}
MAX_FRAMES = 30 * 60 * 60 * 2  # two hours at 30 fps: a bound on any one viewing


class GrowingMedia:
    """The watermarked MP4 as it is encoded: readers wait for bytes, the encoder appends.

    Playback starts on the first fragment (about a second of video) instead of after the
    whole recording; byte ranges of the finished file are served as usual. The encoder
    writes through `write` only (the MP4 muxer sees a stream it cannot seek).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._cond = threading.Condition()
        self.done = False
        self.error: str = ""
        self.stopped = False  # dropped on purpose (ended, evicted): its error is no failure
        self.frames = 0
        self.started = time.perf_counter()

    # -- the encoder's side (a non-seekable file for PyAV) --
    def write(self, data: bytes) -> int:
        with self._cond:
            if self.stopped:  # dropped: the encoder stops at its next frame
                return len(data)
            if not self._buf and self.started:
                log.info(
                    "viewing stream: first bytes %.3f s after the start",
                    time.perf_counter() - self.started,
                )
            self._buf += data
            self._cond.notify_all()
        return len(data)

    def seekable(self) -> bool:
        return False

    def finish(self, error: str = "") -> None:
        with self._cond:
            self.done, self.error = True, error
            self._cond.notify_all()

    # -- the readers' side --
    def size(self) -> int:
        with self._cond:
            return len(self._buf)

    def read(self, start: int, end: int, timeout: float) -> bytes:
        """Bytes start..end (inclusive), waiting up to `timeout` s for at least one of them."""
        with self._cond:
            self._cond.wait_for(lambda: self.done or len(self._buf) > start, timeout=timeout)
            return bytes(self._buf[start : end + 1])

    def wait_done(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.done, timeout=timeout)

    def mime_codecs(self, timeout: float) -> str:
        """`video/mp4; codecs="avc1.PPCCLL[, mp4a.40.2]"` from the initialization segment."""
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    self.done or b"moov" in self._buf[: 1 << 16] and b"avcC" in self._buf[: 1 << 16]
                ),
                timeout=timeout,
            )
            head = bytes(self._buf[: 1 << 16])
        at = head.find(b"avcC")
        if at < 0 or len(head) < at + 8:
            return 'video/mp4; codecs="avc1.42E01E"'
        codecs = [f"avc1.{head[at + 5]:02X}{head[at + 6]:02X}{head[at + 7]:02X}"]
        if b"mp4a" in head:
            codecs.append("mp4a.40.2")
        return f'video/mp4; codecs="{", ".join(codecs)}"'

    def value(self) -> bytes:
        with self._cond:
            return bytes(self._buf)

    def drop(self) -> None:
        with self._cond:
            self._buf = bytearray()
            self.done = True
            self._cond.notify_all()


def decrypt_to_memory(
    *, recording: Recording, store: Store, vault_key: VaultKey, work_dir: Path | None
) -> bytes:
    """The recording's MPEG-TS plaintext, verified against the registered camera key."""
    buf = io.BytesIO()
    with _workdir(work_dir) as tmp:
        public = _assemble(store, recording, tmp)
        decrypt_recording(
            tmp,
            vault_key,
            public,
            buf,
            require_complete=not recording.recovered and recording.complete,
        )
    return buf.getvalue()


def check_playable(ts: bytes, *, name: str) -> None:
    """Raise MediaError unless `ts` opens as the camera's MPEG-TS with a picture in it.

    What can be known before encoding starts: the streams (with a probe window past any
    pre-roll) and the picture's size. A failure later, while encoding, is the stream's
    `GrowingMedia.error`.
    """
    with open_recording(ts, name=name, container_format="mpegts"):
        pass


def watermark_mp4(ts: bytes, mark: Watermark) -> bytes:
    """Re-encode the video of `ts` with `mark` burned in; fragmented MP4 bytes."""
    media = GrowingMedia()
    encode_watermarked(ts, mark, media)
    return media.value()


def encode_watermarked(
    ts: bytes, mark: Watermark, out_buf: GrowingMedia, stop: threading.Event | None = None
) -> int:
    """Encode into `out_buf` as fragments complete; returns frames. Stops early on `stop`."""

    mark_frame = BurnIn(mark)

    def draw(image: np.ndarray, seconds: float) -> np.ndarray:
        out_buf.frames += 1
        return mark_frame(image, seconds)

    frames = reencode_video(
        ts,
        out_buf,  # type: ignore[arg-type]  # a write-only file: all the MP4 muxer needs
        draw,
        name=mark.recording,
        x264_options=X264_OPTIONS,
        mp4_options=MP4_OPTIONS,
        keep_running=lambda: stop is None or not stop.is_set(),
        max_frames=MAX_FRAMES,
    )
    if stop is not None and stop.is_set():
        raise Stopped()
    return frames


class Stopped(Exception):
    """The viewing ended while its stream was still being prepared."""
