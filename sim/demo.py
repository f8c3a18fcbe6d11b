"""`make demo`: a whole shift end to end on embedded defaults.

Two cameras (the Heusden scenario: 30 s pre-record, three incidents, one of them cut
short by a power cut) film in fast-forward and seal everything on their volumes. At the
end of the shift both go into the dock: the dock daemon authenticates each over its
serial control channel, verifies and copies every segment into a local file store,
releases it, and the cameras delete what is safely stored. Then the back office (in
``back-office``) catalogues the shift, drafts the officers' reports and gets a user for
every role; as its users would, the cluster manager decrypts every recording to an MP4
(ffprobe says what each is) and the privacy officer hands one over to the prosecutor as
a signed export package, which `verify-export` then proves against the originals.

Everything goes into one folder (default ``demo-out``), made afresh on each run.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable

    from dock.daemon import DaemonResult
    from firmware.camera import Camera
    from sim.report import RecordingResult, ShiftResult
    from vault.web.seed import BackOffice

log = logging.getLogger(__name__)

SCENARIO = Path(__file__).resolve().parent / "scenarios" / "heusden.toml"
SITE = "heusden"
MARKER = ".bodycam-demo"


class DemoError(RuntimeError):
    """The demo could not run or its result does not hold up."""


def prepare_out(out: Path) -> None:
    """Make `out` empty: a previous demo folder is replaced, any other folder refused."""
    if out.exists():
        if not out.is_dir():
            raise DemoError(f"{out} exists and is not a folder; pass --out with a new path")
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise DemoError(
                f"{out} is not empty and was not made by the demo; pass --out with a new path"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by `bodycam demo`; replaced on the next run\n")


def run_demo(out_dir: str | Path = "demo-out", *, file: TextIO | None = None) -> int:
    """Run the demonstration; returns the process exit code."""
    from firmware.control import CameraControlServer
    from sim.docking import ingest_docked
    from sim.report import print_summary
    from sim.shift import run_shift

    started = time.perf_counter()
    say = file or sys.stdout
    out = Path(out_dir).resolve()
    prepare_out(out)
    slots = out / "dock" / "slots"
    ledger_path = out / "dock" / "ledger.sqlite"
    store_dir = out / "store"
    keys_dir = out / "site-keys"
    docked: list[DaemonResult] = []

    def heading(text: str) -> None:
        print(f"\n== {text}", file=say, flush=True)

    heading(f"Shift: {SCENARIO.name} in fast-forward (two cameras, three incidents)")

    def at_end(cameras: dict[str, Camera]) -> None:
        heading("Dock: both cameras docked; ingest into the local store")
        docked.append(
            ingest_docked(
                cameras, slots, ledger_path, f"file://{store_dir}", keys_dir, site=SITE, out=say
            )
        )

    result = run_shift(
        SCENARIO,
        out / "shift",
        keys_dir=keys_dir,
        slots=slots,
        control_factory=CameraControlServer,
        progress=lambda line: print(f"  {line}", file=say, flush=True),
        at_end=at_end,
    )
    heading("What the cameras recorded and sealed during the shift (now in the store)")
    print_summary(result, file=say)
    if not docked:
        raise DemoError("the shift ended before the dock ran")
    report = docked[0]
    if report.exit_code != 0:
        lines = "; ".join(r.summary() for r in report.reports)
        raise DemoError(f"the dock did not store everything: {lines}")
    _check_cameras_emptied(result, report)

    heading("Back office: the shift catalogued, reports drafted, a user for every role")
    from vault.web.seed import BackOffice, BackOfficeCommandFailed, seed_demo

    home = out / "back-office"
    if seed_demo(
        home=home,
        store_url=f"file://{store_dir}",
        site=SITE,
        keys_dir=keys_dir,
        file=say,
        cameras=[(c.name, c.device_id, c.device_public) for c in result.cameras],
    ):
        raise DemoError("the back office could not be seeded with the shift")
    try:
        _through_the_back_office(BackOffice(home), result, out, keys_dir, say, heading)
    except BackOfficeCommandFailed as exc:
        raise DemoError(str(exc)) from None
    heading(f"Done in {time.perf_counter() - started:.1f} s; everything is in {out}")
    return 0


def _through_the_back_office(
    back_office: BackOffice,
    result: ShiftResult,
    out: Path,
    keys_dir: Path,
    say: TextIO,
    heading: Callable[[str], None],
) -> None:
    """Every recording decrypted to MP4 as its users would, one handed over and proven."""
    heading("Back office: every recording decrypted to MP4 (cees, cluster manager)")
    vault_dir = out / "vault"
    vault_dir.mkdir()
    for recording in result.recordings:
        ref = f"{result.camera(recording.camera).device_id}/{recording.recording_id}"
        mp4 = vault_dir / f"{recording.recording_id}.mp4"
        back_office.run(
            "decrypt", ref, "--out", str(mp4), "--purpose", "criminal_investigation", user="cees"
        )
        print(f"  {ref} ({recording.camera}) -> {mp4.relative_to(out)}", file=say)
        _ffprobe(mp4, say)
    heading("Back office: one recording handed over to the prosecutor (priya, privacy officer)")
    handed = _pick_recording(result)
    ref = f"{result.camera(handed.camera).device_id}/{handed.recording_id}"
    package = vault_dir / "export-OM-DEMO-1.zip"
    back_office.run("export", ref, "--out", str(package), "--reference", "OM-DEMO-1", user="priya")
    print(
        f"  {ref}: package {package.relative_to(out)} (signed; prosecution hold placed)", file=say
    )
    proof = back_office.run(
        "verify-export", str(package), "--vault-key", str(keys_dir / "vault.key"), user="priya"
    )
    for line in proof.splitlines():
        print(f"    {line}", file=say)


def _check_cameras_emptied(result: ShiftResult, report: DaemonResult) -> None:
    stored = sum(r.stored for r in report.reports)
    held = sum(r.segments for r in result.recordings)
    if stored != held:
        raise DemoError(f"the cameras held {held} segments but the dock stored {stored}")
    for cam in result.cameras:
        left = sorted(p.name for p in (cam.volume / "recordings").glob("*/seg-*"))
        if left:
            raise DemoError(f"{cam.name} still holds {', '.join(left)} after the dock")


def _pick_recording(result: ShiftResult) -> RecordingResult:
    """The first complete recording with sound: incident 1 on boa-1."""
    complete = [r for r in result.recordings if r.complete and not r.recovered]
    if not complete:
        raise DemoError("the shift made no complete recording")
    return complete[0]


def _ffprobe(path: Path, say: TextIO) -> None:
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        raise DemoError("ffprobe is not installed (Debian: apt-get install ffmpeg)")
    proc = subprocess.run(
        [ffprobe, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise DemoError(f"ffprobe refused {path}: {proc.stderr.strip() or proc.returncode}")
    info = json.loads(proc.stdout)
    fmt = info.get("format", {})
    print(
        f"  ffprobe: {fmt.get('format_long_name', fmt.get('format_name'))}, "
        f"{float(fmt.get('duration', 0)):.1f} s, {int(fmt.get('size', 0))} bytes",
        file=say,
    )
    for stream in info.get("streams", []):
        if stream.get("codec_type") == "video":
            detail = (
                f"{stream.get('width')}x{stream.get('height')} "
                f"{stream.get('avg_frame_rate')} fps, {stream.get('nb_frames', '?')} frames"
            )
        else:
            detail = f"{stream.get('sample_rate')} Hz, {stream.get('channels')} channel(s)"
        print(
            f"    stream {stream.get('index')}: {stream.get('codec_type')} "
            f"{stream.get('codec_name')} ({stream.get('profile', '-')}), {detail}",
            file=say,
        )
