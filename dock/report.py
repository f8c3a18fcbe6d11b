"""The outcome of one docking (`CameraReport`) and its one-line summary for the operator."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CameraReport:
    """The outcome of one docking, and its one-line summary for the operator."""

    slot: str
    device_id: str | None = None
    recordings: int = 0
    recordings_done: int = 0  # every listed segment durable (and released when possible)
    # Finished recordings whose signed manifest lists no segment: no footage, nothing to
    # store (their header and manifest are), and no release removes them from the camera.
    empty: int = 0
    stored: int = 0  # segments stored in this session
    released: int = 0  # segments released in this session
    kept: int = 0  # segments left on the camera
    quarantined: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refused: str | None = None
    store_problem: str | None = None
    aborted: str | None = None
    released_camera: bool = False
    # Files left on the camera besides kept segments (display path -> why): refused
    # names, odd files, unsealed leftovers. Each is in `notes` as well.
    left: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            not (
                self.quarantined
                or self.errors
                or self.refused
                or self.store_problem
                or self.aborted
                or self.left
            )
            and self.kept == 0
        )

    def summary(self) -> str:
        """One line: the outcome, then every note the session made."""
        who = self.device_id or f"slot {self.slot}"
        notes = f"; notes: {'; '.join(self.notes)}" if self.notes else ""
        if self.refused:
            return f"{who}: refused: {self.refused}{notes}"
        if self.ok:
            if self.recordings == 0:
                return f"{who}: no recordings on the camera{notes}"
            return f"{who}: {self._stored(everything=True)}, camera released{notes}"
        parts = [self._stored()]
        if self.released_camera:
            parts[0] += ", camera released"
        if self.aborted:
            parts.append(self.aborted)
        if self.store_problem:
            parts.append(self.store_problem)
        parts.extend(f"quarantined {q}" for q in self.quarantined)
        parts.extend(self.errors)
        if self.kept:
            parts.append(f"{self.kept} segment(s) kept on the camera")
        if self.left:
            parts.append(f"{len(self.left)} other file(s) left on the camera")
        return f"{who}: " + "; ".join(parts) + notes

    def _stored(self, *, everything: bool = False) -> str:
        """How many recordings were stored; those without footage (nothing to store) apart."""
        footage = self.recordings - self.empty
        said = []
        if everything and footage:
            said.append(f"all {footage} {'recording' if footage == 1 else 'recordings'} stored")
        elif footage or not self.empty:
            said.append(f"{self.recordings_done} of {footage} recordings stored")
        if self.empty:
            noun = "recording" if self.empty == 1 else "recordings"
            said.append(f"{self.empty} {noun} without footage (no segment to store)")
        return ", ".join(said)
