"""A shift whose recordings are every kind the back office must handle, built once.

The corpus: a 1080p camera with the longest pre-roll (120 s) and sound only once recording
starts (its first sound sits ~90 MB into the MPEG-TS), a 720p camera with sound from the
first frame, a camera with no sound at all, and a camera whose recording is cut by a
power cut (recovered at boot) and that then makes a recording of one segment, pressed two
seconds after power-on. The shift runs in fast-forward, the dock takes every camera over
its serial port into a file store, and a back office is seeded with the shift (a user per
role, as `make demo` does). Small pictures where a path does not depend on size.
"""

from __future__ import annotations

import io
import re
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

SITE = "heusden"


def _camera(
    name: str,
    *,
    size: tuple[int, int],
    fps: int,
    kbps: int,
    prerecord: int,
    prerecord_audio: bool,
    audio: bool,
    segment: int,
) -> str:
    return f"""
[[cameras]]
name = "{name}"
profile = "default"
[cameras.overrides.prerecord]
seconds = {prerecord}
audio = {str(prerecord_audio).lower()}
[cameras.overrides.recording]
audio = {str(audio).lower()}
segment_seconds = {segment}
[cameras.overrides.video]
width = {size[0]}
height = {size[1]}
fps = {fps}
gop_frames = {fps}
bitrate_kbps = {kbps}
"""


SMALL: dict[str, Any] = {"size": (320, 240), "fps": 15, "kbps": 600}
SPECS: dict[str, dict[str, Any]] = {
    # 1080p at 10 fps keeps the shift short; the bitrate is what 30 fps would need.
    "hd-long": dict(
        size=(1920, 1080),
        fps=10,
        kbps=6000,
        prerecord=120,
        prerecord_audio=False,
        audio=True,
        segment=10,
    ),
    "hd-sound": dict(
        size=(1280, 720),
        fps=30,
        kbps=3000,
        prerecord=30,
        prerecord_audio=True,
        audio=True,
        segment=10,
    ),
    "mute": dict(SMALL, prerecord=30, prerecord_audio=False, audio=False, segment=10),
    "cut": dict(SMALL, prerecord=30, prerecord_audio=False, audio=True, segment=4),
}
CAMERAS = "".join(_camera(name, **spec) for name, spec in SPECS.items())
EVENTS = [
    ("0:00", "hd-long", "power_on"),
    ("0:00", "hd-sound", "power_on"),
    ("0:00", "mute", "power_on"),
    ("0:00", "cut", "power_on"),
    ("0:32", "mute", "record"),
    ("0:37", "mute", "stop"),
    ("0:35", "hd-sound", "record"),
    ("0:41", "hd-sound", "stop"),
    ("0:40", "cut", "record"),
    ("0:47.5", "cut", "power_cut"),
    ("0:50", "cut", "power_on"),
    ("0:52", "cut", "record"),
    ("0:53", "cut", "stop"),
    ("2:02", "hd-long", "record"),
    ("2:06", "hd-long", "stop"),
    ("0:42", "hd-sound", "dock"),
    ("0:42", "mute", "dock"),
    ("0:55", "cut", "dock"),
    ("2:07", "hd-long", "dock"),
]
# What each recording must hold, by camera and order: sound recorded, and from when
# (seconds into the recording: 0 = the first frame, None = no sound).
EXPECTED = {
    ("hd-long", 0): {"sound_from": 120.0, "recovered": False},
    ("hd-sound", 0): {"sound_from": 0.0, "recovered": False},
    ("mute", 0): {"sound_from": None, "recovered": False},
    ("cut", 0): {"sound_from": 30.0, "recovered": True},
    ("cut", 1): {"sound_from": 2.0, "recovered": False},
}


def scenario_text() -> str:
    events = "".join(
        f'\n[[events]]\nat = "{at}"\ncamera = "{cam}"\naction = "{action}"\n'
        for at, cam, action in EVENTS
    )
    head = '[shift]\nname = "every-path"\nstart_utc = "2026-11-22T17:00:00Z"\nend = "2:10"\n'
    return head + CAMERAS + events


@dataclass
class CorpusRecording:
    camera: str
    device_id: str
    recording_id: str
    sound_from: float | None
    recovered: bool
    prerecord: float
    size: tuple[int, int]

    @property
    def ref(self) -> str:
        return f"{self.device_id}/{self.recording_id}"


@dataclass
class Corpus:
    root: Path
    home: Path  # the back office
    keys_dir: Path
    password: str
    recordings: list[CorpusRecording] = field(default_factory=list)

    def vault(self, *args: str, user: str) -> subprocess.CompletedProcess[str]:
        """`bodycam vault ARGS` as USER, the way a back-office user runs it."""
        from vault.web.seed import BackOffice

        return BackOffice(self.home, self.password).call(*args, user=user)


def build_corpus(root: Path) -> Corpus:
    from firmware.control import CameraControlServer
    from sim.docking import ingest_docked
    from sim.shift import run_shift
    from vault.web.seed import DEMO_PASSWORD, seed_demo

    root.mkdir(parents=True, exist_ok=True)
    scenario = root / "every-path.toml"
    scenario.write_text(scenario_text())
    keys_dir, store_dir, slots = root / "site-keys", root / "store", root / "dock" / "slots"
    docked = []

    def at_end(cameras: dict[str, Any]) -> None:
        docked.append(
            ingest_docked(
                cameras,
                slots,
                root / "dock" / "ledger.sqlite",
                f"file://{store_dir}",
                keys_dir,
                site=SITE,
                out=io.StringIO(),
            )
        )

    result = run_shift(
        scenario,
        root / "shift",
        keys_dir=keys_dir,
        slots=slots,
        control_factory=CameraControlServer,
        at_end=at_end,
    )
    if not docked or docked[0].exit_code != 0:
        raise RuntimeError(f"the dock did not store the corpus: {docked}")
    said = io.StringIO()
    code = seed_demo(
        home=root / "back-office",
        store_url=f"file://{store_dir}",
        site=SITE,
        keys_dir=keys_dir,
        file=said,
        cameras=[(c.name, c.device_id, c.device_public) for c in result.cameras],
    )
    if code:
        raise RuntimeError(f"the back office was not seeded: {said.getvalue()}")
    corpus = Corpus(root, root / "back-office", keys_dir, DEMO_PASSWORD)
    for cam in result.cameras:
        for i, rec in enumerate(cam.recordings):
            want = EXPECTED[(cam.name, i)]
            corpus.recordings.append(
                CorpusRecording(
                    cam.name,
                    cam.device_id,
                    rec.recording_id,
                    want["sound_from"],
                    rec.recovered,
                    rec.prerecord_covered or 0.0,
                    SPECS[cam.name]["size"],
                )
            )
    if len(corpus.recordings) != len(EXPECTED):
        raise RuntimeError(f"the shift made {len(corpus.recordings)} recordings: {result}")
    return corpus


class Browser:
    """A back-office session over HTTP (cookies, CSRF) with the standard library."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def _csrf(self, page: str) -> str:
        m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if m is None:
            raise AssertionError("no CSRF token on the page")
        return m.group(1)

    def get(self, path: str, timeout: float = 60) -> tuple[int, bytes, str]:
        try:
            with self.opener.open(self.url + path, timeout=timeout) as r:
                return r.status, r.read(), r.geturl()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.geturl()

    def post(self, path: str, form: dict[str, str], page: str) -> tuple[int, bytes, str]:
        data = urllib.parse.urlencode({**form, "csrfmiddlewaretoken": self._csrf(page)}).encode()
        req = urllib.request.Request(
            self.url + path, data=data, headers={"Referer": self.url + path}
        )
        try:
            with self.opener.open(req, timeout=120) as r:
                return r.status, r.read(), r.geturl()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.geturl()

    def sign_in(self, user: str, password: str) -> None:
        _, page, _ = self.get("/login/")
        status, body, _ = self.post(
            "/login/", {"username": user, "password": password}, page.decode()
        )
        # Signed in: the page has the sign-out form (whichever language it is in).
        if status != 200 or b'action="/logout/"' not in body:
            raise AssertionError(f"sign-in as {user} failed: {status} {body[:300]!r}")
