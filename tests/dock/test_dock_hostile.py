"""Hostile cameras: names, sizes and counts from a camera never reach outside its place.

Each test docks a real camera (real keys, sealed recordings, the real control server on
a pty, or its real volume) that lies the way someone holding a registered camera could:
unsafe names over serial and on the volume, sizes other than the signed ones, an
endless event log, more files than a session takes. The dock must refuse each by name,
write nothing outside its spool and store, delete nothing, keep going with the good
recordings, and say exactly what stayed on the camera.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from dock_support import Dock, decrypt_from_store, register
from fake_camera import FakeCamera
from hostile_support import HostileServer, Lies, tree
from rich.console import Console

from crypto.names import NameRefused, check_file_name, check_recording_id
from dock.cli import main as dock_main
from dock.daemon import DockDaemon
from dock.daemon_config import DaemonConfig
from dock.ingest import CameraIngest, DockContext
from dock.ledger import QUARANTINED, RELEASED, Ledger
from dock.names import ListingBounds, display_path
from dock.slots import Slot
from store import FileStore, object_key

SITE = "test-site"
GiB = 1 << 30
# Each one is a name a camera could list; none may become a path.
BAD_IDS = [
    "../../../../../escaped",  # from the spool folder up to the test's own folder
    "a/b",
    "nul\x00id",
    "r" * 300,
    "ctl\x1b[2Jid",
    "..",
    "-dash",
    "\u202eevil",
]


def context(tmp_path: Path, ledger: Ledger, dock_keys: Any, **kw: Any) -> DockContext:
    return DockContext(
        store=FileStore(tmp_path / "store"),
        ledger=ledger,
        dock_key=dock_keys.dock,
        site=SITE,
        spool_root=tmp_path / "spool",
        **kw,
    )


def ingest(docks: Dock, slot: str, ctx: DockContext) -> Any:
    return CameraIngest(Slot(slot, docks.slots / slot), ctx).run()


def store_files(store_root: Path) -> set[str]:
    return {str(p.relative_to(store_root)) for p in store_root.rglob("*") if p.is_file()}


def assert_only_good_recordings_stored(ctx: DockContext, cam: FakeCamera, good: list[str]) -> None:
    """Every key, and every file of the store's folder, belongs to a good recording."""
    keys = set(ctx.store.list())
    prefix = f"{SITE}/{cam.device_id}/"
    for key in keys:
        rest = key.removeprefix("quarantine/")
        assert rest.startswith(prefix), key
        assert rest[len(prefix) :].split("/")[0] in [*good, "events"], key
    root = Path(ctx.store.url.removeprefix("file://"))
    for rel in store_files(root):
        top = rel.split("/")[0]
        if top in (".staging", ".holds", ".bodycam-store"):
            assert "escaped" not in rel and ".." not in rel.split("/"), rel
            continue
        assert rel in keys, f"{rel} is in the store folder but is not a stored key"


# --- the grammar --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, reason",
    [
        ("../x", "path separator"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("..", "'..'"),
        ("x..y", "'..'"),
        ("nul\x00", "NUL"),
        ("bell\x07", "control"),
        ("del\x7f", "control"),
        ("r" * 65, "65 characters"),
        ("", "empty"),
        ("-dash", "start with a letter or digit"),
        (".hidden", "start with a letter or digit"),
        ("caf\u00e9", "outside"),
        ("\u202eevil", "outside"),
        ("sp ace", "outside"),
        (7, "not a string"),
        (None, "not a string"),
    ],
)
def test_a_bad_recording_id_is_refused_with_its_reason(name: Any, reason: str) -> None:
    with pytest.raises(NameRefused) as exc:
        check_recording_id(name)
    assert reason in exc.value.reason
    assert "\x00" not in str(exc.value) and "\x1b" not in str(exc.value)
    with pytest.raises(ValueError):  # the store's keys take the same grammar
        object_key(SITE, "BC-1A2B3C4D", name, "seg-000000.bcs", "0" * 64)


def test_the_format_names_are_accepted_and_nothing_else() -> None:
    assert check_recording_id("20261122T181500Z-0a1b") == "20261122T181500Z-0a1b"
    for name in (
        "recording.hdr",
        "manifest.bcm",
        "seg-000000.bcs",
        "seg-099999.bcs",
        "seg-000003.bcs.part",
        "manifest.bcm.part",
        "recording.hdr.part",
    ):
        assert check_file_name(name) == name
    for name in (
        "seg-1.bcs",
        "seg-0000000.bcs",
        "notes.txt",
        "recording.hdr.bak",
        "seg-000000.bcs/../x",
        "events.jsonl",
        "seg-000000.bcs\x00",
    ):
        with pytest.raises(NameRefused):
            check_file_name(name)
    # shown escaped and short: a name cannot forge a log line or fill a screen
    assert display_path("ctl\x1b[2J\nx") == "recordings/'ctl\\x1b[2J\\nx'"
    assert len(display_path("r" * 5000)) < 100


# --- serial: names ------------------------------------------------------------------------


def test_serial_camera_listing_unsafe_names_gets_them_refused_by_name_and_the_rest_ingested(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam(transfer="serial")
    good = [cam.record(2), cam.record(1)]
    register(ledger, cam)
    real = {
        n: (cam.recordings / good[0] / n).read_bytes()
        for n in ("recording.hdr", "manifest.bcm", "seg-000000.bcs")
    }
    lies = Lies()
    for bad in BAD_IDS:
        for name, data in real.items():
            lies.entries.append((bad, name, len(data)))
            lies.files[f"recordings/{bad}/{name}"] = data  # served, should anyone ask
    bad_files = [
        "../../recording.hdr",
        "seg-000000.bcs\x00.txt",
        "x" * 300,
        "notes.txt",
        "seg-000000.bcs/../../manifest.bcm",
    ]
    for name in bad_files:
        lies.entries.append((good[1], name, 10))
    bad_sizes = {"seg-000008.bcs": -1, "seg-000009.bcs": "2 GiB"}
    for name, size in bad_sizes.items():
        lies.entries.append((good[1], name, size))
    lies.entries.append((good[1], None, 1))  # not even a string
    # decoys where the escaping names point: must survive untouched
    decoy = tmp_path / "escaped"
    decoy.mkdir()
    (decoy / "recording.hdr").write_bytes(b"not yours")
    (decoy / "manifest.bcm").write_bytes(b"not yours either")
    server = HostileServer(cam, lies)
    docks.dock(cam, "slot-1", volume=False, server=server)
    ctx = context(tmp_path, ledger, dock_keys)
    ctx.spool_dir()  # the spool exists before, as in a running dock
    watched = {d: tree(tmp_path / d) for d in ("escaped", "slots")}
    outside_before = sorted(p.name for p in tmp_path.iterdir())

    report = ingest(docks, "slot-1", ctx)

    # the good recordings went all the way: stored, verified, released
    assert cam.segment_files() == []
    for rec in good:
        assert (
            decrypt_from_store(ctx.store, SITE, cam, rec, tmp_path / "out") == cam.plaintexts[rec]
        )
    assert {s.state for s in ledger.segments(cam.device_id)} == {RELEASED}
    assert {s.recording_id for s in ledger.segments(cam.device_id)} == set(good)
    assert report.recordings == 2 and report.recordings_done == 2 and report.released == 3
    # every bad name refused by name, and the camera is not called released
    assert not report.ok and not report.released_camera
    summary = report.summary()
    assert "camera released" not in summary
    n_bad = len(BAD_IDS) + len(bad_files) + len(bad_sizes) + 1
    assert f"{n_bad} other file(s) left on the camera" in summary
    for bad in BAD_IDS:
        assert display_path(bad) in report.left
    for name in bad_files:
        assert display_path(good[1], name) in report.left
    assert "'nul\\x00id'" in summary and "'a/b'" in summary and "'ctl\\x1b[2Jid'" in summary
    assert "\x00" not in summary and "\x1b" not in summary and "\u202e" not in summary
    assert "contains a path separator" in report.left["recordings/'a/b'"]
    assert "300 characters" in report.left[display_path("r" * 300)]
    for name in bad_sizes:
        assert report.left[display_path(good[1], name)] == "size refused: not a byte count 0..2^53"
    assert (
        report.left[f"recordings/{good[1]}/<NoneType>"]
        == "file name refused: not a string but NoneType"
    )
    # the dock never asked for a refused path, so nothing of it was read or written
    assert set(server.read_paths) <= {
        f"recordings/{r}/{n}"
        for r in good
        for n in ("recording.hdr", "manifest.bcm", "seg-000000.bcs", "seg-000001.bcs")
    }
    assert {d: tree(tmp_path / d) for d in watched} == watched
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({*outside_before, "out", "store"})
    spool = ctx.spool_dir()
    assert [p for p in spool.rglob("*") if p.is_file()] == []
    assert {str(p.relative_to(spool)) for p in spool.rglob("*")} <= {
        SITE,
        f"{SITE}/{cam.device_id}",
    }
    assert_only_good_recordings_stored(ctx, cam, good)
    assert list(ctx.store.list("quarantine/")) == []


# --- mass storage: names ------------------------------------------------------------------


def test_volume_with_unsafe_names_reports_every_file_left_and_deletes_nothing(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam()
    good = cam.record(2)
    other = cam.record(1)
    register(ledger, cam)
    recs = cam.recordings
    # a whole valid recording under a name the format does not allow
    shutil.copytree(recs / good, recs / "..x")
    (recs / "ctl\x01name").mkdir()
    (recs / "ctl\x01name" / "recording.hdr").write_bytes(b"h")
    (recs / ("L" * 200)).mkdir()
    (recs / ("L" * 200) / "seg-000000.bcs").write_bytes(b"s")
    (recs / "-dash").mkdir()
    (recs / "-dash" / "manifest.bcm").write_bytes(b"m")
    # a folder that leads out of the volume, to a recording the dock must not take
    outside = tmp_path / "outside"
    shutil.copytree(recs / good, outside / "rec")
    os.symlink(outside / "rec", recs / "20261122T999999Z-link")
    os.symlink(outside / "rec" / "seg-000000.bcs", recs / other / "seg-000007.bcs")
    (recs / "stray.txt").write_bytes(b"stray")
    (recs / other / "notes.txt").write_bytes(b"officer's note")
    (cam.volume / "autorun.inf").write_bytes(b"[autorun]")
    (cam.volume / "events" / "extra.log").write_bytes(b"x")
    odd = {
        "recordings/'..x'": "name refused: contains '..'",
        "recordings/'ctl\\x01name'": "name refused: contains a control character",
        display_path("L" * 200): "name refused: 200 characters, at most 64 allowed",
        "recordings/'-dash'": "name refused: does not start with a letter or digit",
        "recordings/20261122T999999Z-link": "a symbolic link, not a recording folder: not followed",
        f"recordings/{other}/seg-000007.bcs": "a symbolic link: not taken",
        "recordings/stray.txt": "not a recording folder",
        f"recordings/{other}/notes.txt": "file name refused: not a file the recording "
        "format defines (recording.hdr, manifest.bcm, "
        "seg-NNNNNN.bcs)",
        "autorun.inf": "not part of a camera volume",
        "events/extra.log": "not part of a camera volume",
    }
    before_odd = tree(recs / "..x") | tree(outside)
    docks.dock(cam, "slot-1")
    ctx = context(tmp_path, ledger, dock_keys)

    report = ingest(docks, "slot-1", ctx)

    # the good recordings: stored, released; the one with a stray note keeps its folder
    assert sorted(
        p.relative_to(recs).as_posix()
        for p in recs.glob("*/seg-*.bcs")
        if not p.is_symlink() and not p.parent.is_symlink()
    ) == ["..x/seg-000000.bcs", "..x/seg-000001.bcs", f"{'L' * 200}/seg-000000.bcs"]
    assert (recs / other / "seg-000007.bcs").is_symlink()
    for rec in (good, other):
        assert (
            decrypt_from_store(ctx.store, SITE, cam, rec, tmp_path / "out") == cam.plaintexts[rec]
        )
    assert {s.state for s in ledger.segments(cam.device_id)} == {RELEASED}
    # every odd file or folder is still there, named in the report with why
    assert tree(recs / "..x") | tree(outside) == before_odd
    assert (recs / "stray.txt").read_bytes() == b"stray"
    assert (cam.volume / "autorun.inf").exists() and (recs / other / "notes.txt").exists()
    left = dict(report.left)
    for name in ("manifest.bcm", "recording.hdr"):  # the folder the camera had to keep
        assert "the camera does not remove" in left.pop(f"recordings/{other}/{name}")
    assert left == odd, left
    assert not report.ok and not report.released_camera
    summary = report.summary()
    assert "camera released" not in summary and "12 other file(s) left" in summary
    for path in odd:
        assert path in summary
    assert_only_good_recordings_stored(ctx, cam, [good, other])


# --- sizes --------------------------------------------------------------------------------


@pytest.mark.parametrize("lie", ["listed", "read"])
def test_a_segment_larger_than_signed_is_refused_without_copying_more_than_signed(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any, lie: str
) -> None:
    cam: FakeCamera = make_cam(transfer="serial")
    rec = cam.record(3, size=100_000)
    register(ledger, cam)
    rel = f"recordings/{rec}/seg-000001.bcs"
    signed = (cam.volume / rel).stat().st_size
    real = (cam.volume / rel).read_bytes()
    lies = Lies()
    if lie == "listed":  # LIST_RECORDINGS and READ both claim 2 GiB
        lies.listed_sizes[rel] = 2 * GiB
    lies.read_sizes[rel] = 2 * GiB  # READ says 2 GiB and serves filler past the real end
    server = HostileServer(cam, lies)
    docks.dock(cam, "slot-1", volume=False, server=server)
    ctx = context(tmp_path, ledger, dock_keys)

    report = ingest(docks, "slot-1", ctx)

    assert server.read_paths[rel] <= signed  # never more than the manifest signs
    states = {s.name: s.state for s in ledger.segments(cam.device_id)}
    assert states == {
        "seg-000000.bcs": RELEASED,
        "seg-000001.bcs": QUARANTINED,
        "seg-000002.bcs": RELEASED,
    }
    assert (cam.volume / rel).read_bytes() == real  # kept on the camera, unchanged
    (quarantined,) = report.quarantined
    expected = (
        f"the camera lists {2 * GiB} bytes, the signed manifest {signed} (the first "
        f"{signed} of {2 * GiB} bytes kept as evidence)"
        if lie == "listed"
        else f"the camera reports {2 * GiB} bytes, the signed manifest lists {signed}"
    )
    assert quarantined == f"{rec}/seg-000001.bcs: {expected}"
    assert not report.ok and "1 segment(s) kept on the camera" in report.summary()
    # the dock's folders hold no more than the signed bytes of that file
    largest = max(p.stat().st_size for p in tmp_path.joinpath("store").rglob("*") if p.is_file())
    assert largest <= signed


def test_event_log_offload_reads_at_most_its_limit_and_resumes(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam(transfer="serial")
    register(ledger, cam)
    limit = 200_000
    server = HostileServer(cam, Lies(event_log_size=2 * GiB, event_line=100))
    docks.dock(cam, "slot-1", volume=False, server=server)
    ctx = context(tmp_path, ledger, dock_keys, event_log_piece=limit)

    first = ingest(docks, "slot-1", ctx)

    assert server.event_bytes == limit  # read up to the limit, not the 2 GiB claimed
    cut = limit // 100 * 100  # whole lines only
    assert ledger.events_offset(cam.device_id) == cut
    (key,) = [k for k in ctx.store.list() if "/events/" in k]
    piece = ctx.store.get_bytes(key)
    assert len(piece) == cut and piece.endswith(b"\n")
    assert any("more remains" in n for n in first.notes)

    second = ingest(docks, "slot-1", ctx)
    assert server.event_bytes == 2 * limit
    assert ledger.events_offset(cam.device_id) == 2 * cut
    assert len([k for k in ctx.store.list() if "/events/" in k]) == 2
    assert any("more remains" in n for n in second.notes)


def test_an_event_log_line_longer_than_the_limit_is_reported_not_offloaded(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam(transfer="serial")
    register(ledger, cam)
    server = HostileServer(cam, Lies(event_log_size=GiB, event_line=10 * 100_000))
    docks.dock(cam, "slot-1", volume=False, server=server)
    ctx = context(tmp_path, ledger, dock_keys, event_log_piece=100_000)
    report = ingest(docks, "slot-1", ctx)
    assert server.event_bytes == 100_000
    assert ledger.events_offset(cam.device_id) == 0
    assert [k for k in ctx.store.list() if "/events/" in k] == []
    assert any("no whole line in 100000 bytes" in n for n in report.notes)


# --- counts -------------------------------------------------------------------------------


def test_a_recording_listing_more_files_than_a_recording_holds_is_refused_alone(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam(transfer="serial")
    good = cam.record(2)
    register(ledger, cam)
    lies = Lies(entries=[("20261122T999999Z-many", f"seg-{i:06d}.bcs", 100) for i in range(50)])
    server = HostileServer(cam, lies)
    docks.dock(cam, "slot-1", volume=False, server=server)
    ctx = context(
        tmp_path, ledger, dock_keys, listing_bounds=ListingBounds(max_files_per_recording=20)
    )
    report = ingest(docks, "slot-1", ctx)
    assert report.left == {
        "recordings/20261122T999999Z-many": (
            "lists more than 20 files, more than a recording can hold"
        )
    }
    assert cam.segment_files() == [] and report.recordings == 1
    assert decrypt_from_store(ctx.store, SITE, cam, good, tmp_path / "out") == cam.plaintexts[good]
    assert not any("many" in p for p in server.read_paths)


@pytest.mark.parametrize("transfer", ["serial", "mass-storage"])
def test_a_camera_listing_more_than_a_session_takes_is_refused_and_keeps_everything(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any, transfer: str
) -> None:
    cam: FakeCamera = make_cam(transfer=transfer)
    cam.record(2)
    register(ledger, cam)
    if transfer == "serial":
        server: Any = HostileServer(
            cam,
            Lies(
                entries=[(f"20261122T9999{i:02d}Z-many", "seg-000000.bcs", 100) for i in range(40)]
            ),
        )
        docks.dock(cam, "slot-1", volume=False, server=server)
    else:
        for i in range(40):
            (cam.recordings / f"20261122T9999{i:02d}Z-many").mkdir()
        docks.dock(cam, "slot-1")
    ctx = context(tmp_path, ledger, dock_keys, listing_bounds=ListingBounds(max_files=30))
    report = ingest(docks, "slot-1", ctx)
    assert not report.ok and report.errors
    assert "more than 30" in report.errors[0] and "nothing is taken" in report.errors[0]
    assert len(cam.segment_files()) == 2
    assert [k for k in ctx.store.list() if "/events/" not in k] == []
    assert ledger.segments() == []


# --- the daemon and what the operator sees --------------------------------------------------


def test_daemon_survives_a_hostile_camera_and_every_note_reaches_summary_ledger_and_status(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    ledger: Ledger,
    dock_keys: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import dataclasses

    honest: FakeCamera = make_cam("honest")
    honest.record(1)
    register(ledger, honest)
    hostile: FakeCamera = make_cam("hostile", transfer="serial")
    hostile_rec = hostile.record(1)
    register(ledger, hostile)
    lies = Lies(entries=[("../../../../../escaped", "recording.hdr", 10), ("a/b", "x", 1)])
    docks.dock(hostile, "slot-2", volume=False, server=HostileServer(hostile, lies))
    # an impostor presenting the honest camera's registered id with its own key
    impostor: FakeCamera = make_cam("impostor")
    impostor.device_id = honest.device_id
    impostor.record(1)
    docks.dock(impostor, "slot-1")
    cfg = DaemonConfig(
        slots=docks.slots,
        store_url=f"file://{tmp_path}/store",
        ledger_path=ledger.path,
        settle=0.0,
        site=SITE,
        once=True,
        live=False,
    )
    out = io.StringIO()
    screen = Console(file=io.StringIO(), width=4000, force_terminal=False)  # no folding
    result = DockDaemon(
        dataclasses.replace(cfg, live=True),
        store=FileStore(tmp_path / "store"),
        ledger=ledger,
        dock_key=dock_keys.dock,
        out=out,
        console=screen,
    ).run()
    assert result.exit_code == 1
    # the live view's last frame carries the notes in the slot's message
    frame = screen.file.getvalue().split("bodycam dock - ")[-1]  # type: ignore[attr-defined]
    assert "'a/b': name refused" in frame and "camera clock" in frame
    lines = {line.split(":")[0]: line for line in out.getvalue().splitlines()}
    hostile_line = lines[hostile.device_id]
    assert hostile_line.startswith(
        f"{hostile.device_id}: 1 of 1 recordings stored; "
        "2 other file(s) left on the camera; notes: "
    )
    assert "camera clock" in hostile_line
    assert "left on the camera: recordings/'../../../../../escaped'" in hostile_line
    assert "left on the camera: recordings/'a/b': name refused" in hostile_line
    assert "differs from the registered" in lines[honest.device_id]
    assert hostile.segment_files() == [] and len(impostor.segment_files()) == 1
    assert not (tmp_path / "escaped").exists()

    # the real camera docks after the impostor: both stay visible
    docks.undock("slot-1")
    docks.undock("slot-2")
    docks.dock(honest, "slot-1")
    out = io.StringIO()
    assert (
        DockDaemon(
            cfg,
            store=FileStore(tmp_path / "store"),
            ledger=ledger,
            dock_key=dock_keys.dock,
            out=out,
        )
        .run()
        .exit_code
        == 0
    )
    assert honest.segment_files() == []

    assert dock_main(["status", "--json", "--ledger", str(ledger.path)]) == 0
    status = json.loads(capsys.readouterr().out)
    cams = {c["device_id"]: c for c in status["cameras"]}
    assert cams[honest.device_id]["ok"] == 1
    notes = cams[hostile.device_id]["notes"]
    assert any(n.startswith("camera clock") for n in notes)
    assert "left on the camera: recordings/'a/b': name refused: contains a path separator" in notes
    assert cams[hostile.device_id]["summary"] == hostile_line
    (refused,) = status["refused"]
    assert refused["device_id"] == honest.device_id and refused["slot"] == "slot-1"
    assert "differs from the registered" in refused["refused"]
    assert dock_main(["status", "--ledger", str(ledger.path)]) == 0
    text = capsys.readouterr().out
    assert "refused dockings" in text and f"{honest.device_id} in slot slot-1" in text
    assert "recordings/'a/b': name refused" in text
    assert hostile_rec  # its recording was stored and released above


def test_thousands_of_refused_names_keep_the_summary_line_bounded(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam(transfer="serial")
    good = cam.record(1)
    register(ledger, cam)
    lies = Lies(entries=[(f"../{i:04d}", "recording.hdr", 10) for i in range(2000)])
    docks.dock(cam, "slot-1", volume=False, server=HostileServer(cam, lies))
    ctx = context(tmp_path, ledger, dock_keys)
    report = ingest(docks, "slot-1", ctx)
    assert len(report.left) == 2000  # every one counted and kept apart
    assert report.notes[-1] == "1968 more file(s) left on the camera (named in the dock's log)"
    assert len(report.summary()) < 6000
    assert cam.segment_files() == [] and report.recordings_done == 1
    assert decrypt_from_store(ctx.store, SITE, cam, good, tmp_path / "out") == cam.plaintexts[good]


def test_quarantine_evidence_is_bounded_per_docking(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    ledger: Ledger,
    dock_keys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dock.ingest_quarantine

    budget = 8000
    monkeypatch.setattr(dock.ingest_quarantine, "MAX_EVIDENCE_PER_SESSION", budget)
    cam: FakeCamera = make_cam()
    recs = [cam.record(3) for _ in range(3)]
    register(ledger, cam)
    for rec in recs:
        (cam.recordings / rec / "manifest.bcm").unlink()  # nothing says how long files may be
    before = tree(cam.recordings)
    docks.dock(cam, "slot-1")
    ctx = context(tmp_path, ledger, dock_keys)
    report = ingest(docks, "slot-1", ctx)
    assert sorted(report.quarantined) == sorted(
        f"{rec}: recording.hdr or manifest.bcm missing: the recording cannot be verified"
        for rec in recs
    )
    evidence = [k for k in ctx.store.list("quarantine/") if ".reason.json" not in k]
    # of each recording at most its header and first segment; all of it within the budget
    assert 2 <= len(evidence) <= 4
    assert sum(len(ctx.store.get_bytes(k)) for k in evidence) <= budget
    reasons = [
        json.loads(ctx.store.get_bytes(k))
        for k in ctx.store.list("quarantine/")
        if ".reason.json" in k
    ]
    assert all("2 more file(s)" in json.dumps(r) for r in reasons)
    assert any("used up its quarantine allowance" in n for n in report.notes)
    assert tree(cam.recordings) == before  # all of it still on the camera


def test_re_seating_a_forged_volume_cannot_fill_the_quarantine(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    ledger: Ledger,
    dock_keys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Volume-only docking knows a camera by its DEVICE.json, which anyone can copy: a
    volume with that file and forged recordings, seated again and again with new ones,
    stays within the camera's daily quarantine allowance, and the operator hears of it."""
    import dock.ingest_quarantine

    allowance = 30_000
    monkeypatch.setattr(dock.ingest_quarantine, "MAX_EVIDENCE_PER_CAMERA_DAY", allowance)
    cam: FakeCamera = make_cam()
    forger: FakeCamera = make_cam("forger")  # its own key: its manifests are not cam's
    register(ledger, cam)
    docks.dock(cam, "slot-1", serial=False)
    ctx = context(tmp_path, ledger, dock_keys)
    notes: list[str] = []
    for _ in range(8):
        forged = forger.record(3)
        (forger.recordings / forged).rename(cam.recordings / forged)
        report = ingest(docks, "slot-1", ctx)
        assert any("manifest does not verify" in q for q in report.quarantined)
        notes += report.notes
    evidence = [k for k in ctx.store.list("quarantine/") if ".reason.json" not in k]
    assert sum(len(ctx.store.get_bytes(k)) for k in evidence) <= allowance
    assert any("used up its quarantine allowance" in n for n in notes)
    # everything stays on the volume, and every forged recording is quarantined in the ledger
    assert len(list(cam.recordings.iterdir())) == 8
    assert len(ledger.status()["quarantined"]) >= 8
