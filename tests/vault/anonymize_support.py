"""Moving test footage made of real photographs, with the true face boxes of every frame.

The faces come from pictures scikit-image ships: `data.astronaut()` (Eileen Collins,
frontal) and `data.camera()` (the cameraman, half in profile, shown mirrored; of OpenCV's
Haar cascades only the profile one finds him). They are pasted onto the
simulated camera's street scene (burned-in device id, time and frame counter) and move,
grow and shrink; a grey bar passes over the astronaut's face for a few frames. The clip
is written the way the camera writes it: H.264 + AAC in MPEG-TS, timestamps in 1/90000 s
starting far from 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from skimage import data

from firmware.encoder import H264Encoder, TsSegmentMuxer
from sim.audio import SyntheticMicrophone
from sim.sensor import SyntheticSensor

Box = tuple[int, int, int, int]
Frame = npt.NDArray[np.uint8]

# (crop of the photograph as x0, y0, x1, y1; the face inside the crop as x, y, w, h)
ASTRONAUT_CROP = (120, 20, 340, 240)
ASTRONAUT_FACE = (57, 46, 95, 95)
CAMERAMAN_CROP = (100, 40, 320, 260)
CAMERAMAN_FACE = (46, 41, 122, 122)
FIRST_FRAME = 54_000  # the camera's frame numbers do not start at 0
HAAR_FRONTAL = ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml")
HAAR_PROFILE = "haarcascade_profileface.xml"


class HaarFaces:
    """A face detector unrelated to the anonymizer's (OpenCV's Haar cascades), to check it.

    Sensitive: full resolution, fine scale steps, small faces, a single neighbour is
    enough, every frontal cascade OpenCV ships, and the profile one on the picture and on
    its mirror image (faces turned the other way).
    """

    def __init__(self, min_face: int = 16, scale_factor: float = 1.1, neighbours: int = 1) -> None:
        folder = Path(cv2.data.haarcascades)  # type: ignore[attr-defined]
        self.frontal = [cv2.CascadeClassifier(str(folder / name)) for name in HAAR_FRONTAL]
        self.profile = cv2.CascadeClassifier(str(folder / HAAR_PROFILE))
        assert not any(c.empty() for c in [*self.frontal, self.profile]), "Haar cascades missing"
        self.options: dict[str, Any] = {
            "scaleFactor": scale_factor,
            "minNeighbors": neighbours,
            "minSize": (min_face, min_face),
        }

    def detect(self, grey: npt.NDArray[np.uint8]) -> list[Box]:
        """Face boxes in a grayscale picture (histogram-equalized first)."""
        grey = np.asarray(cv2.equalizeHist(grey), dtype=np.uint8)
        found: list[Box] = []
        for cascade in self.frontal:
            found += [_box(b) for b in cascade.detectMultiScale(grey, **self.options)]
        found += [_box(b) for b in self.profile.detectMultiScale(grey, **self.options)]
        width = grey.shape[1]
        for x, y, w, h in self.profile.detectMultiScale(cv2.flip(grey, 1), **self.options):
            found.append((width - int(x) - int(w), int(y), int(w), int(h)))
        return found


def _box(b: Any) -> Box:
    return int(b[0]), int(b[1]), int(b[2]), int(b[3])


@dataclass
class Subject:
    name: str
    picture: Frame  # the crop, BGR
    face: Box  # face box inside the crop
    boxes: list[Box | None]  # true face box on each frame (None: not in the picture)
    occluded: list[bool]


@dataclass
class Clip:
    path: Path
    width: int
    height: int
    fps: int
    frames: int
    subjects: list[Subject]
    occlusion: range  # frames on which the bar covers the astronaut's face


def astronaut() -> Frame:
    x0, y0, x1, y1 = ASTRONAUT_CROP
    return np.ascontiguousarray(data.astronaut()[y0:y1, x0:x1, ::-1])


def cameraman_mirrored() -> tuple[Frame, Box]:
    x0, y0, x1, y1 = CAMERAMAN_CROP
    gray = data.camera()[y0:y1, x0:x1]
    picture = np.asarray(
        cv2.cvtColor(np.ascontiguousarray(gray[:, ::-1]), cv2.COLOR_GRAY2BGR), dtype=np.uint8
    )
    x, y, w, h = CAMERAMAN_FACE
    return picture, (int(gray.shape[1]) - x - w, y, w, h)


def _paste(frame: Frame, picture: Frame, face: Box, scale: float, x: int, y: int) -> Box:
    """Paste `picture` scaled by `scale` with its top-left at (x, y); the face's box."""
    h, w = picture.shape[:2]
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    scaled = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
    fh, fw = frame.shape[:2]
    sw, sh = min(size[0], fw - x), min(size[1], fh - y)
    frame[y : y + sh, x : x + sw] = scaled[:sh, :sw]
    fx, fy, fw_, fh_ = face
    return (x + round(fx * scale), y + round(fy * scale), round(fw_ * scale), round(fh_ * scale))


def compose_frames(
    width: int, height: int, fps: int, seconds: float, with_faces: bool = True
) -> tuple[list[Frame], list[Subject], range]:
    """Frames of the clip and, per subject, the true face box on every frame."""
    frames = round(seconds * fps)
    sensor = SyntheticSensor(width, height, "BC-7EA1A1A1")
    k = width / 640  # geometry is laid out for 640x360 and scaled
    a_pic = astronaut()
    c_pic, c_face = cameraman_mirrored()
    subjects = [
        Subject("astronaut", a_pic, ASTRONAUT_FACE, [], []),
        Subject("cameraman", c_pic, c_face, [], []),
    ]
    occlusion = range(frames // 3, frames // 3 + max(3, frames // 12))
    out: list[Frame] = []
    for n in range(frames):
        frame = sensor.capture(FIRST_FRAME + n, 1_790_000_000.0 + n / fps)
        phase = n / max(1, frames - 1)
        if with_faces:
            # The astronaut walks right and comes closer (scale 0.55 -> 1.0 of the crop).
            a_scale = k * (0.55 + 0.45 * phase)
            a_box = _paste(
                frame,
                a_pic,
                ASTRONAUT_FACE,
                a_scale,
                round(k * (30 + 150 * phase)),
                round(k * 110 - k * 40 * phase),
            )
            # The cameraman sways and changes size (0.45 .. 0.6).
            c_scale = k * (0.52 + 0.08 * math.sin(2 * math.pi * phase))
            c_x, c_y = k * (480 - 40 * phase), k * (150 + 20 * math.sin(4 * phase))
            c_box = _paste(frame, c_pic, c_face, c_scale, round(c_x), round(c_y))
            blocked = n in occlusion
            if blocked:
                x, y, w, h = a_box
                bar_x = x + w // 2 - round(0.7 * w)
                cv2.rectangle(
                    frame,
                    (bar_x, y - h // 4),
                    (bar_x + round(1.4 * w), y + h + h // 4),
                    (128, 128, 128),
                    -1,
                )
            subjects[0].boxes.append(a_box)
            subjects[0].occluded.append(blocked)
            subjects[1].boxes.append(c_box)
            subjects[1].occluded.append(False)
        out.append(frame)
    return out, (subjects if with_faces else []), occlusion


def write_camera_clip(path: Path, frames: list[Frame], fps: int, audio: bool = True) -> None:
    """MPEG-TS as the camera writes it: H.264 (+ AAC of the simulated microphone)."""
    h, w = frames[0].shape[:2]
    encoder = H264Encoder(w, h, fps, 2_000_000, fps, audio=audio)
    mic = SyntheticMicrophone() if audio else None
    with path.open("wb") as sink:
        muxer = TsSegmentMuxer(sink, encoder)
        packets: list[Any] = []
        for i, frame in enumerate(frames):
            packets += encoder.encode_video(frame, FIRST_FRAME + i)
            if mic is not None:
                packets += encoder.encode_audio(mic.capture(48_000 // fps))
        packets += encoder.flush()
        for p in sorted(packets, key=lambda p: p.pts):
            muxer.write(p)
        muxer.close()


def make_clip(
    path: Path,
    width: int = 640,
    height: int = 360,
    fps: int = 24,
    seconds: float = 2.0,
    with_faces: bool = True,
    audio: bool = True,
) -> Clip:
    frames, subjects, occlusion = compose_frames(width, height, fps, seconds, with_faces)
    write_camera_clip(path, frames, fps, audio)
    return Clip(path, width, height, fps, len(frames), subjects, occlusion)


def decode_bgr(path: Path) -> list[Frame]:
    import av

    with av.open(str(path)) as container:
        return [
            np.asarray(f.to_ndarray(format="bgr24"), dtype=np.uint8)
            for f in container.decode(video=0)
        ]
