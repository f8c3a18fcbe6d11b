"""Hostile cameras: names and sizes at and beyond every bound, over both transfer modes.

A registered camera that lies in its listing (serial) or holds odd folders on its
volume (mass storage) must not make the dock write, read or delete anything outside
its own place in the spool and the store, nor crash it; the bad name is refused and
reported, the good recordings are stored and released as usual.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from dock_support import Dock, register
from fake_camera import FakeCamera
from fault_support import check_cameras, segment_shas

from dock.ingest import CameraIngest, DockContext
from dock.ledger import Ledger
from dock.slots import Slot
from firmware.control import CameraControlServer
from sim.pty import PtySerialPort
from store import FileStore

SITE = "rel"

# Recording ids and file names a camera may send; each one escapes or breaks a bound.
BAD_NAMES = [
    "../escape",
    "..",
    ".",
    "a/b",
    "/abs",
    "x" * 129,
    "",
    "a\x00b",
    "a\nb",
    "a\x7fb",
    "..hidden",
    "ok/../../up",
    "\\windows",
    "\u202eevil",
    "-dash",
    "R" + "x" * 64,
]
GOOD_AT_BOUND = "R" + "x" * 63  # 64 characters: the longest recording id the format allows


class LyingListing(CameraControlServer):
    """Serves the camera, but adds one entry with a hostile name to its listing."""

    def __init__(self, services: Any, bad: str, where: str, size: int = 1000) -> None:
        super().__init__(services, PtySerialPort())
        self.bad, self.where, self.size = bad, where, size

    def _list_recordings(self, fields: Any, blob: bytes) -> tuple[dict[str, Any], bytes]:
        page, data = super()._list_recordings(fields, blob)
        if not fields.text("after", 2 * 128 + 1, default=""):
            files = list(page["files"])
            good = files[0]["recording"] if files else "20261122T181501Z-0000"
            if self.where == "recording":
                files.append({"recording": self.bad, "name": "seg-000000.bcs", "size": self.size})
            else:
                files.append({"recording": good, "name": self.bad, "size": self.size})
            # the dock checks that a listing only moves forward: keep the camera's order
            files.sort(key=lambda f: f"{f['recording']}/{f['name']}")
            page = {**page, "files": files}
        return page, data


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _dock_with(docks: Dock, server: CameraControlServer, slot: str) -> None:
    path = server.start()
    docks.servers[slot] = server
    tmp = docks.slots / f".{slot}.tmp"
    tmp.mkdir()
    os.symlink(path, tmp / "serial")
    os.rename(tmp, docks.slots / slot)


def test_serial_listing_with_hostile_names_is_refused_and_the_rest_ingested(
    tmp_path: Path, docks: Dock, make_cam: Any, site_keys: Any, tally: Any
) -> None:
    cam: FakeCamera = make_cam("cam-h", transfer="serial")
    ledger = Ledger(tmp_path / "state" / "ledger.sqlite")
    register(ledger, cam)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "recording.hdr").write_bytes(b"keep me")  # _clean_spool must not reach it
    store = FileStore(tmp_path / "store")
    ctx = DockContext(
        store=store,
        ledger=ledger,
        dock_key=site_keys.dock,
        site=SITE,
        spool_root=tmp_path / "spool",
        link_timeout=0.5,
    )
    problems: list[str] = []
    shas: dict[Any, str] = {}
    try:
        # an honest docking first: the folders it makes are the dock's own
        cam.record(1, size=5000)
        shas.update(segment_shas(cam))
        docks.dock(cam, "slot-honest", volume=False)
        assert CameraIngest(Slot("slot-honest", docks.slots / "slot-honest"), ctx).run().ok
        docks.undock("slot-honest")
        for i, bad in enumerate(BAD_NAMES):
            for where in ("recording", "file"):
                cam.record(2, size=5000)
                shas.update(segment_shas(cam))
                before = _tree(tmp_path)
                slot = f"slot-{i}-{where}"
                _dock_with(docks, LyingListing(cam, bad, where), slot)
                tally.bad_inputs += 1
                try:
                    report = CameraIngest(Slot(slot, docks.slots / slot), ctx).run()
                except Exception as exc:  # in the daemon: an "internal error" with a traceback
                    problems.append(
                        f"{bad!r} as a {where} name crashed the session: "
                        f"{type(exc).__name__}: {exc}"
                    )
                    continue
                finally:
                    docks.undock(slot)
                text = " ".join([report.summary(), *report.notes, *report.errors])
                # anything new must lie in this camera's own place (spool, store, ledger)
                escaped = {
                    p
                    for p in _tree(tmp_path) - before
                    if not p.startswith(("state/", "cameras/"))
                    and cam.device_id not in Path(p).parts
                }
                check = check_cameras([cam], shas, ledger.path, store, SITE)
                tally.checked(check.segments, len(check.lost), len(check.false_releases))
                if "refused" not in text:
                    problems.append(f"{bad!r} as a {where} name not reported refused: {text}")
                if escaped:
                    problems.append(f"{bad!r} as a {where} name wrote outside: {sorted(escaped)}")
                if (outside / "recording.hdr").read_bytes() != b"keep me":
                    problems.append(f"{bad!r} as a {where} name: a file outside was changed")
                if check.false_releases:
                    problems.append(f"{bad!r}: released without a copy {check.false_releases}")
                if check.on_camera:
                    problems.append(
                        f"{bad!r} as a {where} name stopped the good recordings: {text}"
                    )
    finally:
        ledger.close()
    assert not problems, "\n".join(problems)


def test_claimed_size_beyond_the_manifest_is_refused_before_copying(
    tmp_path: Path, docks: Dock, make_cam: Any, site_keys: Any, tally: Any
) -> None:
    cam: FakeCamera = make_cam("cam-s", transfer="serial")
    ledger = Ledger(tmp_path / "state" / "ledger.sqlite")
    register(ledger, cam)
    rec = cam.record(1, size=5000)
    seg = cam.recordings / rec / "seg-000000.bcs"
    real = seg.stat().st_size
    # the file grows on the camera after the manifest was signed: 40x what it lists
    with open(seg, "ab") as f:
        f.write(os.urandom(real * 40))
    try:
        ctx = DockContext(
            store=FileStore(tmp_path / "store"),
            ledger=ledger,
            dock_key=site_keys.dock,
            site=SITE,
            spool_root=tmp_path / "spool",
        )
        docks.dock(cam, "slot-1", volume=False)
        ingest = CameraIngest(Slot("slot-1", docks.slots / "slot-1"), ctx)
        tally.bad_inputs += 1
        report = ingest.run()
        assert report.quarantined and seg.exists(), report.summary()
        assert ingest.progress.bytes_done <= real, "copied more than the manifest allows"
    finally:
        ledger.close()


def test_volume_folder_with_a_refused_name_is_reported_not_released(
    tmp_path: Path, docks: Dock, make_cam: Any, site_keys: Any, tally: Any
) -> None:
    cam: FakeCamera = make_cam("cam-v")
    ledger = Ledger(tmp_path / "state" / "ledger.sqlite")
    register(ledger, cam)
    cam.record(1, size=5000)
    odd = cam.recordings / "..x"
    odd.mkdir()
    (odd / "seg-000000.bcs").write_bytes(os.urandom(100))
    try:
        ctx = DockContext(
            store=FileStore(tmp_path / "store"),
            ledger=ledger,
            dock_key=site_keys.dock,
            site=SITE,
            spool_root=tmp_path / "spool",
        )
        docks.dock(cam, "slot-1")
        tally.bad_inputs += 1
        report = CameraIngest(Slot("slot-1", docks.slots / "slot-1"), ctx).run()
        text = " ".join([report.summary(), *report.notes, *report.errors])
        assert "camera released" not in report.summary(), text
        assert "..x" in text, text
    finally:
        ledger.close()


def test_names_at_the_bound_are_ingested(
    tmp_path: Path, docks: Dock, make_cam: Any, site_keys: Any, tally: Any
) -> None:
    """A 64-character recording id is valid (FORMAT.md str8): refused would lose footage."""
    from crypto.seal import RecordingSealer

    cam: FakeCamera = make_cam("cam-b", transfer="serial")
    ledger = Ledger(tmp_path / "state" / "ledger.sqlite")
    register(ledger, cam)
    sealer = RecordingSealer(
        cam.recordings / GOOD_AT_BOUND,
        cam.device_id,
        GOOD_AT_BOUND,
        cam.device_key,
        [cam.vault.public_bytes()],
        cam.clock.now(),
        chunk_size=1024,
    )
    seg = sealer.begin_segment(0, "video/mp2t", 0, cam.clock.now())
    seg.write(os.urandom(3000))
    seg.close()
    sealer.finish(cam.clock.now() + 10)
    cam.segment_names[GOOD_AT_BOUND] = ["seg-000000.bcs"]
    shas = segment_shas(cam)
    try:
        store = FileStore(tmp_path / "store")
        ctx = DockContext(
            store=store,
            ledger=ledger,
            dock_key=site_keys.dock,
            site=SITE,
            spool_root=tmp_path / "spool",
        )
        docks.dock(cam, "slot-1", volume=False)
        tally.bad_inputs += 1
        report = CameraIngest(Slot("slot-1", docks.slots / "slot-1"), ctx).run()
        assert report.ok, report.summary()
        check = check_cameras([cam], shas, ledger.path, store, SITE)
        tally.checked(check.segments, len(check.lost), len(check.false_releases))
        assert check.on_camera == 0 and not check.lost and not check.false_releases
    finally:
        ledger.close()


class EndlessEventLog(CameraControlServer):
    """Claims an event log of 2^50 bytes and sends lines for as long as it is asked.

    It stops (answers empty) after `cap` bytes, so a dock without a bound costs the test
    a bounded time; what counts is how much the dock asked for.
    """

    def __init__(self, services: Any, cap: int) -> None:
        super().__init__(services, PtySerialPort())
        self.cap = cap
        self.served = 0

    def _event_log(self, fields: Any, blob: bytes) -> tuple[dict[str, Any], bytes]:
        from formats.protocol import MAX_DATA

        length = fields.integer("length", 1, MAX_DATA)
        if self.served >= self.cap:
            return {"size": 1 << 50}, b""
        line = b'{"kind":"noise"}\n'
        data = (line * (length // len(line) + 1))[:length]
        self.served += len(data)
        return {"size": 1 << 50}, data


def test_event_log_offload_reads_at_most_its_limit(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    site_keys: Any,
    tally: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from formats.protocol import MAX_DATA

    # the dock's limit per docking (64 MiB), made small so the test moves little data: the
    # module's constant, or the context's setting where the dock has one
    limit = 1 << 20
    monkeypatch.setattr("dock.ingest.MAX_EVENT_LOG_PIECE", limit)
    setting = (
        {"event_log_piece": limit} if "event_log_piece" in DockContext.__dataclass_fields__ else {}
    )
    cam: FakeCamera = make_cam("cam-e", transfer="serial")
    ledger = Ledger(tmp_path / "state" / "ledger.sqlite")
    register(ledger, cam)
    cam.record(1, size=5000)
    server = EndlessEventLog(cam, cap=2 * limit)
    try:
        ctx = DockContext(
            store=FileStore(tmp_path / "store"),
            ledger=ledger,
            dock_key=site_keys.dock,
            site=SITE,
            spool_root=tmp_path / "spool",
            **setting,
        )
        _dock_with(docks, server, "slot-1")
        tally.bad_inputs += 1
        report = CameraIngest(Slot("slot-1", docks.slots / "slot-1"), ctx).run()
        assert cam.segment_files() == [], report.summary()  # the footage still goes
        assert server.served <= limit + MAX_DATA, (
            f"the dock read {server.served} bytes of event log, its limit is {limit}"
        )
    finally:
        ledger.close()


def test_listing_across_page_bounds_is_ingested_whole(
    tmp_path: Path, docks: Dock, make_cam: Any, site_keys: Any, tally: Any
) -> None:
    """More files than one LIST_RECORDINGS page holds: every one is taken, none twice."""
    from formats.protocol import LIST_PAGE_ENTRIES

    cam: FakeCamera = make_cam("cam-p", transfer="serial")
    ledger = Ledger(tmp_path / "state" / "ledger.sqlite")
    register(ledger, cam)
    per = 3  # segments per recording; with header and manifest 5 files each
    for _ in range(LIST_PAGE_ENTRIES // (per + 2) + 1):
        cam.record(per, size=600, chunk=256)
    shas = segment_shas(cam)
    assert len(shas) + 2 * len(cam.plaintexts) > LIST_PAGE_ENTRIES
    try:
        store = FileStore(tmp_path / "store")
        ctx = DockContext(
            store=store,
            ledger=ledger,
            dock_key=site_keys.dock,
            site=SITE,
            spool_root=tmp_path / "spool",
        )
        docks.dock(cam, "slot-1", volume=False)
        tally.bad_inputs += 1
        report = CameraIngest(Slot("slot-1", docks.slots / "slot-1"), ctx).run()
        assert report.ok and report.stored == len(shas), report.summary()
        check = check_cameras([cam], shas, ledger.path, store, SITE)
        tally.checked(check.segments, len(check.lost), len(check.false_releases))
        assert check.on_camera == 0 and not check.lost and not check.false_releases
    finally:
        ledger.close()


@pytest.mark.parametrize("mode", ["mass-storage", "serial"])
@pytest.mark.parametrize("which", ["recording.hdr", "manifest.bcm"])
def test_header_or_manifest_beyond_its_bound_is_refused_and_the_rest_ingested(
    tmp_path: Path, docks: Dock, make_cam: Any, site_keys: Any, tally: Any, mode: str, which: str
) -> None:
    from crypto.format import MANIFEST_MAX_SIZE, REC_HEADER_MAX

    cam: FakeCamera = make_cam("cam-z", transfer=mode)
    ledger = Ledger(tmp_path / "state" / "ledger.sqlite")
    register(ledger, cam)
    good = cam.record(2, size=5000)
    bad = cam.record(2, size=5000)
    bound = REC_HEADER_MAX if which == "recording.hdr" else MANIFEST_MAX_SIZE
    (cam.recordings / bad / which).write_bytes(os.urandom(bound + 1))
    try:
        store = FileStore(tmp_path / "store")
        ctx = DockContext(
            store=store,
            ledger=ledger,
            dock_key=site_keys.dock,
            site=SITE,
            spool_root=tmp_path / "spool",
        )
        docks.dock(cam, "slot-1", volume=mode != "serial")
        tally.bad_inputs += 1
        report = CameraIngest(Slot("slot-1", docks.slots / "slot-1"), ctx).run()
        assert not report.ok and "camera released" not in report.summary(), report.summary()
        on_camera = {p.parent.name for p in cam.segment_files()}
        assert on_camera == {bad}, report.summary()  # the bad one stays, as evidence
        assert not (cam.recordings / good).exists()
        spooled = [p for p in (tmp_path / "spool").rglob(which) if p.stat().st_size > bound]
        assert spooled == []  # never taken in whole
    finally:
        ledger.close()
