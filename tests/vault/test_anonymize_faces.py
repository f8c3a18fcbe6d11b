"""Every face, every frame: the training copy's anonymizer on scenes a body camera sees.

34 real faces (`face_scenes.py`): several at once with one covered for a few frames, faces
of 30-60 px, heads rolled by up to 30 degrees, turned towards profile, in dim light, moving
with motion blur, entering from the picture's edges. Each scene is a 1280x720 clip written
as the camera writes it; every true face box on every output frame is judged: its texture
must be gone and OpenCV's Haar cascades (not the anonymizer's detector) must not find it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from anonymize_support import decode_bgr
from face_scenes import SceneResult, compose, judge, lfw_faces, scenes, write

from vault.anonymize import anonymize_recording

WIDTH, HEIGHT, FPS, FRAMES = 1280, 720, 24, 12

# Share of face boxes obscured per scene, at least (measured: 1.0 on every scene). Boxes
# of faces under 30 px or mostly outside the picture count as well; see ALLOWED_MISSES.
FLOORS = {
    "crowd": 1.0,
    "small": 0.98,
    "tilted": 0.98,
    "profile": 0.98,
    "dim": 0.98,
    "blur": 0.98,
    "edge": 0.95,
}
ALLOWED_MISSES = 0.005  # of all boxes, and only where the face is small or mostly outside


@dataclass
class Judged:
    results: dict[str, SceneResult]


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Judged:
    folder = tmp_path_factory.mktemp("faces")
    results = {}
    for scene in scenes(FRAMES):
        footage = write(compose(scene, WIDTH, HEIGHT, FPS), folder / f"{scene.name}.ts")
        out = folder / f"{scene.name}.mp4"
        anonymize_recording(footage.path, out)
        results[scene.name] = judge(
            footage,
            decode_bgr(footage.path),
            decode_bgr(Path(out)),
            check_input=scene.name == "crowd",
        )
    return Judged(results)


def test_the_scenes_hold_at_least_30_different_real_faces() -> None:
    used = {actor.photo.name for scene in scenes(FRAMES) for actor in scene.actors}
    assert len(used) >= 30 and len(lfw_faces()) == 100
    assert set(FLOORS) == {scene.name for scene in scenes(FRAMES)}


def test_the_judge_sees_the_faces_in_the_input(judged: Judged) -> None:
    crowd = judged.results["crowd"]
    assert crowd.haar_input >= 0.9 * crowd.boxes, (crowd.haar_input, crowd.boxes)


@pytest.mark.parametrize("name", list(FLOORS))
def test_every_face_is_obscured_on_every_frame(judged: Judged, name: str) -> None:
    result = judged.results[name]
    assert result.boxes >= 20
    assert result.recall >= FLOORS[name], f"{name}: {result.recall:.3f}\n" + "\n".join(
        result.missed
    )
    # A miss is allowed only where the face is small or mostly outside the picture.
    assert result.strict_missed == 0, "\n".join(result.missed)


def test_misses_stay_within_the_allowance_over_all_scenes(judged: Judged) -> None:
    boxes = sum(r.boxes for r in judged.results.values())
    missed = sum(r.boxes - r.obscured for r in judged.results.values())
    assert boxes >= 350
    assert missed <= ALLOWED_MISSES * boxes, [m for r in judged.results.values() for m in r.missed]
