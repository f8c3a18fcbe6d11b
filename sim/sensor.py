"""Simulated image sensors: synthetic frames with burned-in identity, time and frame counter.

```
sensor = SyntheticSensor(1280, 720, "BC-1A2B3C4D", night_mode=False)
frame = sensor.capture(frame_number=42, capture_utc=1_790_000_001.4)  # (720, 1280, 3) BGR
read_frame_counter(decoded_frame)  # 42, after H.264 encode and decode
```

Each frame carries, like the on-screen display of a real body camera, the device id,
the frame number and the capture time (UTC) burned in with OpenCV, plus a
machine-readable frame counter: a strip of 32 black/white cells along the top edge
(2 rows x 16 columns) holding the frame number (24 bits) and a CRC-8 over it. The cells
are large and pure black or white, so the strip survives H.264 at the bitrates a
profile allows, and the CRC makes a misread fail loudly instead of returning a wrong
number. Tests use it to check for gaps and duplicates after decoding. The strip is at
the top because the top macroblock rows are coded first: a frame cut short (a power
cut in the middle of writing it) still shows its own number, where a strip at the
bottom would show whatever the decoder concealed the missing rows with (an older frame).

The picture below the strip moves (a panning textured panorama and a bouncing disc) so
the encoder sees realistic motion. Everything that does not change per frame is
computed once in the constructor; a capture is a slice copy, a few OpenCV drawing calls
and 32 block fills (about 1 ms at 1280x720).

With `pixel_format="yuv420p"` (what the simulated board gives the camera) a capture is
the I420 planes as one (H * 3 / 2, W) array, drawn directly in those planes from a
panorama converted once: the encoder takes it without a colour conversion or a copy.

`FileSensor` plays a video file instead (PyAV, looping) with the same overlay.
Night mode (infrared) gives a green-tinted, nearly grayscale picture; the counter strip
stays pure black and white.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]

COUNTER_BITS = 24  # frame numbers are read back modulo 2**24 (155 h at 30 fps)
CRC_BITS = 8
STRIP_COLUMNS = 16
STRIP_ROWS = 2
_CRC8_POLY = 0x07  # CRC-8/ATM: detects every error of up to 3 bits in 32
MIN_WIDTH, MIN_HEIGHT = 64, 48
MAX_WIDTH, MAX_HEIGHT = 7680, 4320

_FONT = cv2.FONT_HERSHEY_SIMPLEX
PIXEL_FORMATS = ("bgr24", "yuv420p")  # what SyntheticSensor.capture can hand out
_NIGHT_TINT = np.array([0.35, 1.0, 0.45], dtype=np.float32)  # B, G, R gains of an IR picture


class SensorError(OSError):
    """The sensor cannot deliver frames (bad geometry, unreadable video file)."""


class FrameCounterError(ValueError):
    """No valid frame counter strip in a frame (damaged, cropped, scaled or not ours)."""


def strip_geometry(width: int, height: int) -> tuple[int, int, int]:
    """(cell width, cell height, y of the first picture row below the strip) for a frame.

    The strip covers rows 0 .. STRIP_ROWS * cell height; the picture is below it.
    """
    cell_w = width // STRIP_COLUMNS
    cell_h = max(8, (height // 30) & ~1)
    return cell_w, cell_h, STRIP_ROWS * cell_h


def _crc8(value: int, nbits: int = COUNTER_BITS) -> int:
    crc = 0
    for i in range(nbits - 1, -1, -1):
        bit = (value >> i) & 1
        top = (crc >> 7) & 1
        crc = (crc << 1) & 0xFF
        if top ^ bit:
            crc ^= _CRC8_POLY
    return crc


def encode_counter_bits(frame_number: int) -> list[int]:
    """The 32 cell values (1 = white) for a frame number: 24 bits, then CRC-8, MSB first."""
    value = frame_number % (1 << COUNTER_BITS)
    word = (value << CRC_BITS) | _crc8(value)
    total = COUNTER_BITS + CRC_BITS
    return [(word >> (total - 1 - i)) & 1 for i in range(total)]


def read_frame_counter(frame: npt.NDArray[Any]) -> int:
    """The frame number from a (decoded) frame's counter strip; raises FrameCounterError.

    `frame` is BGR (H, W, 3) or grayscale (H, W) at the size it was captured. The value
    is the frame number modulo 2**24. A frame torn inside its first macroblock row (the
    last frame of a recording cut by a power cut; PyAV's `frame.is_corrupt` is set) may
    raise, or show the older picture FFmpeg concealed it with: skip corrupt frames.
    """
    if frame.ndim == 3:
        luma = frame[..., 1]  # green carries most of the luma; the cells are neutral anyway
    elif frame.ndim == 2:
        luma = frame
    else:
        raise FrameCounterError(f"expected an (H, W) or (H, W, 3) frame, got shape {frame.shape}")
    height, width = luma.shape
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise FrameCounterError(f"frame {width}x{height} is too small to hold a counter strip")
    cell_w, cell_h, _ = strip_geometry(width, height)
    # Sample the middle half of each cell: edges blur under compression.
    mx, my = max(1, cell_w // 4), max(1, cell_h // 4)
    levels = []
    for row in range(STRIP_ROWS):
        y = row * cell_h
        for col in range(STRIP_COLUMNS):
            x = col * cell_w
            levels.append(float(luma[y + my : y + cell_h - my, x + mx : x + cell_w - mx].mean()))
    bits = [1 if level >= 128.0 else 0 for level in levels]
    word = 0
    for bit in bits:
        word = (word << 1) | bit
    value, crc = word >> CRC_BITS, word & 0xFF
    if _crc8(value) != crc:
        raise FrameCounterError(
            f"frame counter strip does not check (read {value}, crc {crc:#04x}, "
            f"expected {_crc8(value):#04x}; weakest cell level "
            f"{min(levels, key=lambda v: abs(v - 128.0)):.0f})"
        )
    return value


def _check_geometry(width: int, height: int) -> None:
    if not (MIN_WIDTH <= width <= MAX_WIDTH and MIN_HEIGHT <= height <= MAX_HEIGHT):
        raise SensorError(
            f"sensor size {width}x{height} out of range: allowed {MIN_WIDTH}..{MAX_WIDTH} x "
            f"{MIN_HEIGHT}..{MAX_HEIGHT}"
        )
    if width % 2 or height % 2:
        raise SensorError(f"sensor size {width}x{height}: width and height must be even (4:2:0)")


def _format_utc(capture_utc: float) -> str:
    whole = math.floor(capture_utc)
    millis = int(round((capture_utc - whole) * 1000))
    if millis == 1000:
        whole, millis = whole + 1, 0
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def _night(image: Frame) -> Frame:
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    tinted = gray[..., None] * _NIGHT_TINT
    night: Frame = np.clip(tinted, 0, 255).astype(np.uint8)
    return night


def i420_planes(frame: Frame, width: int, height: int) -> tuple[Frame, Frame, Frame]:
    """Views of the Y, U and V planes of an I420 frame stored as (H * 3 / 2, W) uint8."""
    flat = frame.reshape(-1)
    y_size, c_size = width * height, (width // 2) * (height // 2)
    return (
        flat[:y_size].reshape(height, width),
        flat[y_size : y_size + c_size].reshape(height // 2, width // 2),
        flat[y_size + c_size : y_size + 2 * c_size].reshape(height // 2, width // 2),
    )


def _yuv_of(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    """The Y, U, V values OpenCV's BGR -> I420 conversion (the encoder's) gives a colour."""
    yuv = cv2.cvtColor(np.full((2, 2, 3), bgr, dtype=np.uint8), cv2.COLOR_BGR2YUV_I420)
    return int(yuv[0, 0]), int(yuv[2, 0]), int(yuv[2, 1])


class _Overlay:
    """Burned-in text and the counter strip, shared by the synthetic and the file sensor."""

    def __init__(self, width: int, height: int, device_id: str, night_mode: bool) -> None:
        self.width, self.height = width, height
        self.device_id = device_id
        self.night_mode = night_mode
        self.cell_w, self.cell_h, self.picture_top = strip_geometry(width, height)
        self.scale = max(0.3, height / 720.0 * 0.9)
        self.thickness = max(1, round(height / 360.0))
        (_, text_h), baseline = cv2.getTextSize("0", _FONT, self.scale, self.thickness)
        self.line_h = text_h + baseline + max(2, text_h // 2)
        self.margin = max(2, height // 90)
        widest, _ = cv2.getTextSize("0000-00-00 00:00:00.000Z", _FONT, self.scale, self.thickness)
        self.box = (
            self.margin + 3 * self.line_h + self.margin,
            min(width, 2 * self.margin + max(widest[0], len(device_id) * widest[0] // 24)),
        )
        self.text_color = (60, 255, 90) if night_mode else (255, 255, 255)

    def draw(self, frame: Frame, frame_number: int, capture_utc: float) -> None:
        box_h, box_w = self.box
        top = self.picture_top
        # Darkened box: the text stays legible on any picture.
        frame[top : top + box_h, :box_w] //= 4
        lines = (self.device_id, f"frame {frame_number}", _format_utc(capture_utc))
        for i, text in enumerate(lines):
            y = top + self.margin + (i + 1) * self.line_h - self.line_h // 4
            cv2.putText(
                frame,
                text,
                (self.margin, y),
                _FONT,
                self.scale,
                self.text_color,
                self.thickness,
                cv2.LINE_AA,
            )
        self.draw_strip(frame, frame_number)

    def draw_i420(self, frame: Frame, frame_number: int, capture_utc: float) -> None:
        """`draw` on I420 planes (frame shape (H * 3 / 2, W)): text on the luma plane; the
        box takes the text colour's chroma, the strip stays neutral black and white."""
        h, w = self.height, self.width
        y_plane, u_plane, v_plane = i420_planes(frame, w, h)
        box_h, box_w = self.box
        top = self.picture_top
        ty, tu, tv = _yuv_of(self.text_color)
        y_plane[top : top + box_h, :box_w] //= 4
        c_rows = slice(top // 2, (top + box_h + 1) // 2)
        u_plane[c_rows, : (box_w + 1) // 2] = tu
        v_plane[c_rows, : (box_w + 1) // 2] = tv
        lines = (self.device_id, f"frame {frame_number}", _format_utc(capture_utc))
        for i, text in enumerate(lines):
            yy = top + self.margin + (i + 1) * self.line_h - self.line_h // 4
            cv2.putText(
                y_plane, text, (self.margin, yy), _FONT, self.scale, ty, self.thickness, cv2.LINE_AA
            )
        black, _, _ = _yuv_of((0, 0, 0))
        white, _, _ = _yuv_of((255, 255, 255))
        cw, ch = self.cell_w, self.cell_h
        y_plane[:top] = black
        u_plane[: (top + 1) // 2] = 128
        v_plane[: (top + 1) // 2] = 128
        for i, bit in enumerate(encode_counter_bits(frame_number)):
            if bit:
                row, col = divmod(i, STRIP_COLUMNS)
                y_plane[row * ch : (row + 1) * ch, col * cw : (col + 1) * cw] = white

    def draw_strip(self, frame: Frame, frame_number: int) -> None:
        cw, ch = self.cell_w, self.cell_h
        frame[: self.picture_top] = 0
        for i, bit in enumerate(encode_counter_bits(frame_number)):
            if bit:
                row, col = divmod(i, STRIP_COLUMNS)
                y = row * ch
                frame[y : y + ch, col * cw : (col + 1) * cw] = 255


class SyntheticSensor:
    """A camera sensor made of numpy: moving picture, burned-in text, frame counter strip."""

    def __init__(
        self,
        width: int,
        height: int,
        device_id: str,
        night_mode: bool = False,
        pixel_format: str = "bgr24",
    ) -> None:
        width, height = int(width), int(height)
        _check_geometry(width, height)
        if pixel_format not in PIXEL_FORMATS:
            raise ValueError(f"pixel_format {pixel_format!r}: allowed {', '.join(PIXEL_FORMATS)}")
        if pixel_format == "yuv420p" and (width % 2 or height % 2):
            raise SensorError(f"sensor {width}x{height}: yuv420p needs an even width and height")
        self.pixel_format = pixel_format
        self.width, self.height = width, height
        self.device_id = device_id
        self.night_mode = bool(night_mode)
        self._overlay = _Overlay(width, height, device_id, self.night_mode)
        # The same device always sees the same world: seed from its id.
        seed = int.from_bytes(hashlib.sha256(device_id.encode()).digest()[:8], "big")
        rng = np.random.default_rng(seed)
        self._picture_top = self._overlay.picture_top
        self._picture_h = height - self._picture_top
        self._pan = max(8, width // 4)  # panorama is this much wider than the frame
        self._pan_step = max(1, width // 320)  # pixels per frame
        self._panorama = self._make_panorama(rng, width + self._pan, self._picture_h)
        self._disc_r = max(4, height // 12)
        self._disc_color = (40, 230, 80) if self.night_mode else (30, 90, 230)
        if pixel_format == "yuv420p":
            # The panorama in I420 once, at full frame height (the strip rows are drawn
            # over): a capture is then plane slices, no colour conversion per frame.
            pano_w = width + self._pan + (width + self._pan) % 2
            full = np.zeros((height, pano_w, 3), dtype=np.uint8)
            full[self._picture_top :, : self._panorama.shape[1]] = self._panorama
            pano_i420 = np.asarray(cv2.cvtColor(full, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8)
            self._pano_planes = i420_planes(pano_i420, pano_w, height)
            self._disc_yuv = _yuv_of(self._disc_color)

    def _make_panorama(self, rng: np.random.Generator, width: int, height: int) -> Frame:
        """A street-like scene: sky gradient, blocks of 'buildings' with windows, road."""
        pano = np.empty((height, width, 3), dtype=np.uint8)
        sky = np.linspace(0, 1, height, dtype=np.float32)[:, None]
        pano[..., 0] = (200 - 80 * sky).astype(np.uint8)
        pano[..., 1] = (170 - 60 * sky).astype(np.uint8)
        pano[..., 2] = (120 - 40 * sky).astype(np.uint8)
        x = 0
        while x < width:
            w = int(rng.integers(max(8, width // 24), max(16, width // 8)))
            h = int(rng.integers(height // 3, max(height // 3 + 1, height * 9 // 10)))
            color = tuple(int(c) for c in rng.integers(40, 200, size=3))
            cv2.rectangle(pano, (x, height - h), (x + w - 2, height - 1), color, -1)
            win = max(3, width // 160)
            for wy in range(height - h + win, height - win, 3 * win):
                for wx in range(x + win, x + w - 2 * win, 3 * win):
                    if rng.random() < 0.6:
                        shade = int(rng.integers(150, 255))
                        cv2.rectangle(
                            pano, (wx, wy), (wx + win, wy + win), (shade // 3, shade, shade), -1
                        )
            x += w
        road = height - max(4, height // 8)
        pano[road:] = (70, 70, 70)
        dash = max(4, width // 40)
        pano[road + (height - road) // 2 : road + (height - road) // 2 + 2, :] = (0, 200, 230)
        pano[road + (height - road) // 2 : road + (height - road) // 2 + 2, ::dash] = (70, 70, 70)
        return _night(pano) if self.night_mode else pano

    def capture(self, frame_number: int, capture_utc: float) -> Frame:
        """The frame captured at `capture_utc` (UTC epoch seconds); a new array per call.

        BGR (H, W, 3), or with `pixel_format="yuv420p"` the I420 planes as (H * 3 / 2, W),
        what the encoder takes without a conversion or a copy.
        """
        if self.pixel_format == "yuv420p":
            frame = self._i420_for(frame_number)
            self._overlay.draw_i420(frame, frame_number, capture_utc)
            return frame
        frame = self._frame_for(frame_number)
        self._overlay.draw(frame, frame_number, capture_utc)
        return frame

    def _motion(self, n: int) -> tuple[int, int, int]:
        """Pan offset and disc centre (x, y in the frame) of frame `n`."""
        period = 2 * self._pan
        phase = (n * self._pan_step) % period
        offset = phase if phase <= self._pan else period - phase
        w, h, r = self.width, self._picture_h, self._disc_r
        cx = r + abs((n * 3 * self._pan_step) % (2 * (w - 2 * r)) - (w - 2 * r))
        cy = r + abs((n * 2 * self._pan_step) % (2 * max(1, h - 2 * r)) - (h - 2 * r))
        return offset, int(cx), self._picture_top + int(cy)

    def _i420_for(self, n: int) -> Frame:
        w, h = self.width, self.height
        frame = np.empty((h * 3 // 2, w), dtype=np.uint8)
        y_plane, u_plane, v_plane = i420_planes(frame, w, h)
        offset, cx, cy = self._motion(n)
        offset -= offset % 2  # chroma is subsampled 2:1: pan by whole chroma samples
        py, pu, pv = self._pano_planes
        y_plane[:] = py[:, offset : offset + w]
        u_plane[:] = pu[:, offset // 2 : offset // 2 + w // 2]
        v_plane[:] = pv[:, offset // 2 : offset // 2 + w // 2]
        dy, du, dv = self._disc_yuv
        r = self._disc_r
        cv2.circle(y_plane, (cx, cy), r, dy, -1, cv2.LINE_8)
        cv2.circle(u_plane, (cx // 2, cy // 2), r // 2, du, -1, cv2.LINE_8)
        cv2.circle(v_plane, (cx // 2, cy // 2), r // 2, dv, -1, cv2.LINE_8)
        return frame

    def _frame_for(self, n: int) -> Frame:
        frame = np.empty((self.height, self.width, 3), dtype=np.uint8)
        # Ping-pong pan (no jump at a wrap), so motion is smooth forever; a disc bouncing
        # across the picture gives local motion on top of the pan.
        offset, cx, cy = self._motion(n)
        frame[self._picture_top :] = self._panorama[:, offset : offset + self.width]
        cv2.circle(frame, (cx, cy), self._disc_r, self._disc_color, -1, cv2.LINE_8)
        return frame

    def __repr__(self) -> str:
        return (
            f"SyntheticSensor({self.width}x{self.height}, {self.device_id!r}, "
            f"night_mode={self.night_mode})"
        )


class FileSensor:
    """Plays a video file as the sensor (PyAV), looping at its end, with the same overlay.

    Frames are scaled to width x height. Use as a context manager or call `close()`.
    """

    def __init__(
        self,
        path: Path | str,
        width: int,
        height: int,
        device_id: str,
        night_mode: bool = False,
    ) -> None:
        import av

        width, height = int(width), int(height)
        _check_geometry(width, height)
        self.path = Path(path)
        self.width, self.height = width, height
        self.device_id = device_id
        self.night_mode = bool(night_mode)
        self._overlay = _Overlay(width, height, device_id, self.night_mode)
        self._lock = threading.Lock()
        try:
            self._container: Any = av.open(str(self.path))
        except (av.FFmpegError, OSError) as exc:
            raise SensorError(f"cannot open video file {self.path}: {exc}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise SensorError(f"{self.path} has no video stream")
        self._stream = self._container.streams.video[0]
        self._frames: Iterator[Any] = self._container.decode(self._stream)
        self.loops = 0

    def _next_picture(self) -> Any:
        for attempt in range(2):
            try:
                return next(self._frames)
            except StopIteration:
                if attempt:
                    break
                # End of file: start again from the beginning (a sensor never runs dry).
                self._container.seek(0)
                self._frames = self._container.decode(self._stream)
                self.loops += 1
        raise SensorError(f"{self.path} yields no video frames")

    def capture(self, frame_number: int, capture_utc: float) -> Frame:
        with self._lock:
            try:
                picture = self._next_picture()
            except SensorError:
                raise
            except Exception as exc:  # a damaged file is a sensor failure, not a crash
                raise SensorError(f"cannot decode {self.path}: {exc}") from exc
        image = picture.to_ndarray(format="bgr24")
        if image.shape[1] != self.width or image.shape[0] != self.height:
            image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
        frame: Frame = np.ascontiguousarray(image, dtype=np.uint8)
        if self.night_mode:
            frame = _night(frame)
        self._overlay.draw(frame, frame_number, capture_utc)
        return frame

    def close(self) -> None:
        with self._lock:
            self._container.close()

    def __enter__(self) -> FileSensor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FileSensor({str(self.path)!r}, {self.width}x{self.height}, {self.device_id!r})"
