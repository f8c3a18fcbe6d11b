"""One worker's copies of the viewings' watermarked streams, and the pool that encodes them.

A viewing is a database row (`vault.viewing.models.Viewing`); its picture is not. Each
worker (process, on any host) that serves a viewing's stream builds it in its own memory
from the row: the recording decrypted in memory, the mark drawn from the row's names,
purpose, recording and start, encoded with fixed settings (`playback.X264_OPTIONS`, an
explicit thread count, no time in the container). Two workers therefore hold the same
bytes, and a byte range can be answered by any of them.

`StreamCache` keeps at most `bound` streams per worker (the least recently used is
stopped and dropped first) and drops a stream as soon as its row says it ended.
`EncoderPool` runs the encoders on a bounded number of threads, apart from the threads
that answer pages; a new viewing takes a free slot or is told how long to wait
(`ViewingBusy`), while a stream another worker started is queued (bounded by the cache).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from vault.errors import VaultError
from vault.viewing.playback import GrowingMedia, Stopped, encode_watermarked
from vault.viewing.watermark import Watermark

log = logging.getLogger(__name__)

DEFAULT_SLOTS = 2  # encoders per worker at once (each runs x264 on its fixed thread count)
DEFAULT_CACHE = 8  # streams one worker keeps in memory
FIRST_GUESS_SECONDS = 5.0  # how long an encode takes, before one has been measured


class ViewingBusy(VaultError):
    """Every encoder of this worker is busy: the viewing can start in `retry_after` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"the server is busy preparing other viewings: try again in {retry_after} s"
        )
        self.retry_after = retry_after


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        log.warning("%s=%r is not a whole number: %d used", name, raw, default)
        return default
    return max(1, value)


class EncoderPool:
    """At most `slots` encoders at once, on threads of their own that end when idle; an
    estimate of the wait for a slot."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._lock = threading.Lock()
        self._active = 0  # running and queued jobs, reserved slots included
        self._runners = 0
        self._queue: deque[Callable[[], None]] = deque()
        self._seconds = FIRST_GUESS_SECONDS  # a moving average of how long a job takes

    def reserve(self) -> bool:
        """A slot for a new viewing, or False when every slot is taken."""
        with self._lock:
            if self._active >= self.slots:
                return False
            self._active += 1
            return True

    def release(self) -> None:
        """Give back a reserved slot that is not used after all."""
        with self._lock:
            self._active -= 1

    def retry_after(self) -> int:
        with self._lock:
            return max(1, min(60, math.ceil(self._seconds)))

    def active(self) -> int:
        with self._lock:
            return self._active

    def submit(self, job: Callable[[], None], *, reserved: bool) -> None:
        """Run `job`: in a reserved slot, or queued behind the running ones."""
        with self._lock:
            if not reserved:
                self._active += 1
            self._queue.append(job)
            if self._runners >= self.slots:
                return
            self._runners += 1
        threading.Thread(target=self._run, name="viewing-encoder", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._runners -= 1
                    return
                job = self._queue.popleft()
            t0 = time.perf_counter()
            try:
                job()
            except Exception:  # a job reports its own failures; never lose the runner
                log.exception("viewing encoder job failed")
            finally:
                with self._lock:
                    self._active -= 1
                    self._seconds = 0.7 * self._seconds + 0.3 * (time.perf_counter() - t0)


@dataclass
class LocalStream:
    """This worker's copy of one viewing's stream."""

    media: GrowingMedia
    stop: threading.Event = field(default_factory=threading.Event)


class StreamCache:
    """Viewing id -> this worker's stream; at most `bound`, least recently used out first."""

    def __init__(self, bound: int, pool: EncoderPool) -> None:
        self.bound = bound
        self.pool = pool
        self._lock = threading.Lock()
        self._streams: OrderedDict[str, LocalStream] = OrderedDict()
        self._building: dict[str, threading.Lock] = {}

    def get(self, viewing_id: str) -> LocalStream | None:
        with self._lock:
            s = self._streams.get(viewing_id)
            if s is not None:
                self._streams.move_to_end(viewing_id)
            return s

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._streams)

    def building(self, viewing_id: str) -> threading.Lock:
        """One lock per viewing id: one request of this worker prepares its stream."""
        with self._lock:
            return self._building.setdefault(viewing_id, threading.Lock())

    def start(
        self, viewing_id: str, plain: bytes, mark: Watermark, *, reserved: bool
    ) -> LocalStream:
        """Encode `plain` with `mark` on the pool; the stream grows as the encoder runs."""
        stream = LocalStream(GrowingMedia())
        self._put(viewing_id, stream)
        media, stop = stream.media, stream.stop

        def job() -> None:
            t0 = time.perf_counter()
            try:
                if stop.is_set():
                    raise Stopped()
                encode_watermarked(plain, mark, media, stop)
            except Stopped:
                media.finish("ended before the stream was complete")
            except Exception as exc:  # any failure is said to the viewers, never a hang
                log.warning("viewing stream %s failed: %s", viewing_id, exc)
                media.finish(str(exc) or type(exc).__name__)
            else:
                media.finish()
                log.info(
                    "viewing stream %s encoded: %d frames, %d bytes in %.2f s",
                    viewing_id,
                    media.frames,
                    media.size(),
                    time.perf_counter() - t0,
                )

        self.pool.submit(job, reserved=reserved)
        return stream

    def failed(self, viewing_id: str, error: str) -> LocalStream:
        """A stream that could not even start here (its footage no longer opens)."""
        stream = LocalStream(GrowingMedia())
        stream.media.finish(error)
        self._put(viewing_id, stream)
        return stream

    def _put(self, viewing_id: str, stream: LocalStream) -> None:
        with self._lock:
            old = self._streams.pop(viewing_id, None)
            self._streams[viewing_id] = stream
            evicted = []
            while len(self._streams) > self.bound:
                evicted.append(self._streams.popitem(last=False))
                self._building.pop(evicted[-1][0], None)
        if old is not None:
            _release(old)
        for vid, s in evicted:
            log.info("viewing stream %s dropped from this worker's memory (bound)", vid)
            _release(s)

    def drop(self, viewing_id: str) -> bool:
        with self._lock:
            s = self._streams.pop(viewing_id, None)
            self._building.pop(viewing_id, None)
        if s is not None:
            _release(s)
        return s is not None

    def clear(self) -> None:
        for vid in self.ids():
            self.drop(vid)


def _release(stream: LocalStream) -> None:
    """Stop its encoder (it sees `stop` at the next frame) and drop the picture."""
    stream.media.stopped = True
    stream.stop.set()
    stream.media.drop()


POOL = EncoderPool(_env_int("BODYCAM_VAULT_ENCODERS", DEFAULT_SLOTS))
STREAMS = StreamCache(_env_int("BODYCAM_VAULT_STREAM_CACHE", DEFAULT_CACHE), POOL)
