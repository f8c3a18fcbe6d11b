"""What a shift left on the cameras: results per recording and camera, and the summary table.

`camera_result` reads a camera's volume after (or during) a shift: every recording
verified with the camera's public key, its start, duration and pre-roll from the
camera's signed event log (which survives a power cut, memory does not).
`ShiftResult.as_dict()` is OUT/shift-summary.json; `print_summary` renders the table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from crypto.timestamps import utc_text

if TYPE_CHECKING:
    from firmware.camera import Camera

log = logging.getLogger(__name__)


@dataclass
class RecordingResult:
    camera: str
    recording_id: str
    path: Path
    started_utc: float | None
    duration_seconds: float | None
    prerecord_configured: float | None
    prerecord_covered: float | None
    segments: int
    bytes: int
    complete: bool
    recovered: bool
    stop_reason: str
    # Segments a dock already stored and released (the camera deleted them): counted in
    # `segments`, from the camera's signed `segment_released` events.
    docked_segments: int = 0

    @property
    def taken_by_dock(self) -> bool:
        """Every segment went to the dock and the camera removed the recording's folder."""
        return (
            self.docked_segments > 0
            and self.docked_segments == self.segments
            and not self.path.exists()
        )

    @property
    def prerecord_short(self) -> bool:
        if self.prerecord_configured is None or self.prerecord_covered is None:
            return False
        return self.prerecord_covered + 1e-6 < self.prerecord_configured

    def as_dict(self) -> dict[str, Any]:
        return {
            "camera": self.camera,
            "recording_id": self.recording_id,
            "path": str(self.path),
            "started_utc": self.started_utc,
            "duration_seconds": self.duration_seconds,
            "prerecord_configured": self.prerecord_configured,
            "prerecord_covered": self.prerecord_covered,
            "prerecord_short": self.prerecord_short,
            "segments": self.segments,
            "bytes": self.bytes,
            "complete": self.complete,
            "recovered": self.recovered,
            "stop_reason": self.stop_reason,
            "docked_segments": self.docked_segments,
        }


@dataclass
class CameraResult:
    name: str
    device_id: str
    device_public: bytes
    home: Path
    profile_name: str
    prerecord_seconds: int
    recordings: list[RecordingResult] = field(default_factory=list)
    events_logged: int = 0
    refused: list[str] = field(default_factory=list)

    @property
    def volume(self) -> Path:
        return self.home / "volume"


@dataclass
class ShiftResult:
    scenario: str
    out: Path
    keys_dir: Path
    simulated_seconds: float
    wall_seconds: float
    cameras: list[CameraResult]

    @property
    def recordings(self) -> list[RecordingResult]:
        return [r for c in self.cameras for r in c.recordings]

    @property
    def docked_segments(self) -> int:
        return sum(r.docked_segments for r in self.recordings)

    def camera(self, name: str) -> CameraResult:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "out": str(self.out),
            "keys_dir": str(self.keys_dir),
            "simulated_seconds": self.simulated_seconds,
            "wall_seconds": round(self.wall_seconds, 3),
            "cameras": [
                {
                    "name": c.name,
                    "device_id": c.device_id,
                    "device_public": c.device_public.hex(),
                    "home": str(c.home),
                    "profile": c.profile_name,
                    "prerecord_seconds": c.prerecord_seconds,
                    "events_logged": c.events_logged,
                    "refused": c.refused,
                    "recordings": [r.as_dict() for r in c.recordings],
                }
                for c in self.cameras
            ],
        }


def camera_result(name: str, cam: Camera, refused: list[str]) -> CameraResult:
    """What `cam` recorded in the shift: what its volume holds and what a dock already took."""
    from formats.eventlog import events_path, verify_event_log

    identity = cam.identity
    profile = cam.profile
    result = CameraResult(
        name=name,
        device_id=identity.device_id,
        device_public=identity.public_key,
        home=cam.home,
        profile_name=str(profile.profile.name),
        prerecord_seconds=int(profile.prerecord.seconds),
        refused=list(refused),
    )
    # What the camera logged is the record: it survives a power cut, memory does not,
    # and it still names the recordings a dock took off the camera during the shift.
    starts: dict[str, tuple[float, dict[str, Any]]] = {}
    stops: dict[str, dict[str, Any]] = {}
    released: dict[str, set[str]] = {}
    log_path = events_path(cam.volume)
    if log_path.exists():
        report = verify_event_log(log_path, identity.public_key)
        result.events_logged = report.count
        for event in report.of_kind("record_start"):
            starts[str(event.fields.get("recording_id"))] = (event.utc, event.fields)
        for event in report.of_kind("record_stop"):
            stops[str(event.fields.get("recording_id"))] = event.fields
        for event in report.of_kind("segment_released"):
            released.setdefault(str(event.fields.get("recording_id")), set()).add(
                str(event.fields.get("segment"))
            )
    root = cam.recordings_root
    on_volume = sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []
    gone = sorted(set(released) - {p.name for p in on_volume})
    for rec_dir in [*on_volume, *(root / rec_id for rec_id in gone)]:
        rec_id = rec_dir.name
        taken = released.get(rec_id, set())
        segments, size, complete, recovered_segment = _held(rec_dir, identity.public_key, taken)
        started, start = starts.get(rec_id, (None, {}))
        stop = stops.get(rec_id)
        duration = stop.get("duration_seconds") if stop else None
        result.recordings.append(
            RecordingResult(
                camera=name,
                recording_id=rec_id,
                path=rec_dir,
                started_utc=started,
                duration_seconds=float(duration) if duration is not None else None,
                prerecord_configured=_number(start.get("prerecord_configured")),
                prerecord_covered=_number(start.get("prerecord_covered")),
                segments=segments,
                bytes=size,
                complete=complete,
                recovered=stop is None or recovered_segment,
                stop_reason=str(stop.get("reason")) if stop else "power cut (recovered at boot)",
                docked_segments=len(taken),
            )
        )
    return result


def _held(rec_dir: Path, device_public: bytes, taken: set[str]) -> tuple[int, int, bool, bool]:
    """(segments, bytes, complete, any segment recovered) of one recording.

    Segments the camera released to a dock are counted from its event log; every other
    listed segment must be on the volume and verify. A folder the camera removed (all
    of it released, which it does only for a finished recording) is complete.
    """
    from crypto.verify import verify_manifest, verify_recording, verify_segment_file

    if not rec_dir.exists():
        return len(taken), 0, True, False
    if not taken:
        verified = verify_recording(rec_dir, device_public)
        listed = list(verified.segments)
        return (
            len(listed),
            sum(int(s.size) for s in listed),
            bool(verified.complete),
            any(bool(s.recovered) for s in listed),
        )
    manifest = verify_manifest(rec_dir, device_public)
    for entry in manifest.segments:
        if entry.name in taken and not (rec_dir / entry.name).exists():
            continue
        verify_segment_file(rec_dir / entry.name, entry, manifest)
    listed = list(manifest.segments)
    count = len({e.name for e in listed} | taken)
    return (
        count,
        sum(int(s.size) for s in listed),
        bool(manifest.complete),
        any(bool(s.recovered) for s in listed),
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def print_summary(result: ShiftResult, file: TextIO | None = None) -> None:
    """A table of every recording: duration, pre-roll covered, segments, bytes, status."""
    from rich.console import Console
    from rich.table import Table

    # Wide enough that the longest status ("taken by the dock") stays on its row's line.
    console = Console(file=file, width=140)
    taken = sum(1 for r in result.recordings if r.taken_by_dock)
    title = f"Shift {result.scenario}: {len(result.recordings)} recordings"
    if result.docked_segments:
        title += (
            f" ({result.docked_segments} segments already taken by the dock, {taken} of them whole)"
        )
    table = Table(title=title)
    table.add_column("camera")
    table.add_column("recording", no_wrap=True)
    table.add_column("start", no_wrap=True)
    table.add_column("duration", justify="right")
    table.add_column("pre-roll", justify="right", no_wrap=True)
    table.add_column("segments", justify="right")
    table.add_column("bytes", justify="right")
    table.add_column("status")
    for cam in result.cameras:
        if not cam.recordings:
            table.add_row(cam.name, "-", "-", "-", "-", "0", "0", "no recordings")
        for rec in cam.recordings:
            start = utc_text(round(rec.started_utc)) if rec.started_utc is not None else "-"
            duration = f"{rec.duration_seconds:.1f} s" if rec.duration_seconds is not None else "-"
            if rec.prerecord_covered is None:
                preroll = "-"
            else:
                preroll = f"{rec.prerecord_covered:.1f}/{rec.prerecord_configured or 0:.0f} s"
                if rec.prerecord_short:
                    preroll += " short"
            status = "sealed" if rec.complete else "incomplete"
            if rec.recovered:
                status += ", recovered"
            if rec.taken_by_dock:
                status = "taken by the dock"
            elif rec.docked_segments:
                status += f", dock took {rec.docked_segments}/{rec.segments}"
            table.add_row(
                cam.name,
                rec.recording_id,
                start,
                duration,
                preroll,
                str(rec.segments),
                f"{rec.bytes:,}" if rec.bytes or not rec.taken_by_dock else "-",
                status,
            )
    console.print(table)
    for cam in result.cameras:
        console.print(
            f"{cam.name} ({cam.device_id}): event log verified, {cam.events_logged} events; "
            f"volume {cam.volume}"
        )
        for line in cam.refused:
            console.print(f"  refused: {line}")
    speedup = result.simulated_seconds / max(result.wall_seconds, 1e-9)
    console.print(
        f"site keys: {result.keys_dir}; simulated {result.simulated_seconds:.0f} s in "
        f"{result.wall_seconds:.1f} s ({speedup:.1f}x real time)"
    )
