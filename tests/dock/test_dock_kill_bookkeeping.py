"""kill -9 of a real `python -m dock run`: stored objects never change, the bookkeeping ends exact.

Each test kills the dock process at a named point (`BODYCAM_DOCK_FAULT`, read by the
test wrapper dock_fault_child.py: the process SIGKILLs itself there, as `kill -9` would)
or plants exactly the state such a kill leaves, restarts it, and checks what a kill must
never break: an object under its final name keeps its inode, bytes and mode; the ledger
ends with every segment the camera deleted as released; nothing is uploaded twice; no
temporary file outlives the restart; `dock status` tells a dead daemon from a live one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dock_support import Dock, decrypt_from_store, register
from fake_camera import FakeCamera
from fault_support import CHILD, FAULT_ENV
from s3_support import WeedServer, s3_client

from dock.daemon import DockDaemon
from dock.daemon_config import DaemonConfig
from dock.ledger import RELEASED, STORED, Ledger
from store import FileStore, S3Store, StoreIntegrityError, open_store, split_name

ROOT = Path(__file__).resolve().parents[2]
SITE = "kill"
BUCKET = "bodycam-tests"


# --- running the dock as its own process ---------------------------------------------------


def start_dock(
    tmp_path: Path,
    slots: Path,
    store_url: str,
    *,
    tag: str,
    once: bool = True,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        str(CHILD),  # `python -m dock` with the test-only fault hooks installed
        "run",
        "--slots",
        str(slots),
        "--store",
        store_url,
        "--ledger",
        str(ledger_path(tmp_path)),
        "--keys",
        str(tmp_path / "keys"),
        "--site",
        SITE,
        "--settle",
        "0",
        "--no-live",
        "--json-logs",
        "--state",
        str(tmp_path / "state"),
        "--create",
    ]
    if once:
        cmd.append("--once")
    full_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    full_env.pop(FAULT_ENV, None)
    full_env.update(env or {})
    with (
        open(tmp_path / f"dock-{tag}.out", "wb") as out,
        open(tmp_path / f"dock-{tag}.err", "wb") as err,
    ):
        return subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=out, stderr=err)


def finish(proc: subprocess.Popen[bytes], tmp_path: Path, tag: str, timeout: float = 90) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(
            f"dock did not finish: {(tmp_path / f'dock-{tag}.err').read_text()}"
        ) from None


def run_killed(
    tmp_path: Path, slots: Path, url: str, fault: str, env: dict[str, str] | None = None
) -> None:
    proc = start_dock(tmp_path, slots, url, tag="killed", env={FAULT_ENV: fault, **(env or {})})
    code = finish(proc, tmp_path, "killed")
    assert code == -signal.SIGKILL, (tmp_path / "dock-killed.err").read_text()
    assert (
        f"killing the dock at {fault.split(':')[0]}" in (tmp_path / "dock-killed.err").read_text()
    )


def run_clean(
    tmp_path: Path, slots: Path, url: str, tag: str = "resumed", env: dict[str, str] | None = None
) -> str:
    proc = start_dock(tmp_path, slots, url, tag=tag, env=env)
    assert finish(proc, tmp_path, tag) == 0, (tmp_path / f"dock-{tag}.err").read_text()
    return (tmp_path / f"dock-{tag}.out").read_text()


def released_line(out: str) -> str:
    """A dock's summary line without its notes (the test cameras' clocks are months behind)."""
    assert out.count("\n") == 1, out
    return out.rstrip("\n").split("; notes: ")[0]


def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ledger.sqlite"


def setup(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    ledger: Ledger,
    dock_keys: Any,
    recordings: int = 2,
    segments: int = 2,
    size: int = 6000,
) -> FakeCamera:
    (tmp_path / "keys").mkdir()
    dock_keys.dock.save(tmp_path / "keys" / "dock.key")
    cam: FakeCamera = make_cam()
    for _ in range(recordings):
        cam.record(segments, size=size)
    register(ledger, cam)
    docks.dock(cam, "slot-1")
    return cam


def segment_states(tmp_path: Path, cam: FakeCamera) -> dict[tuple[str, str], str]:
    with Ledger(ledger_path(tmp_path), readonly=True) as led:
        return {(s.recording_id, s.name): s.state for s in led.segments(cam.device_id)}


def objects(root: Path) -> dict[str, os.stat_result]:
    """Every object under its final name in a file store (staging and holds excluded)."""
    store = FileStore(root)
    return {key: (root / key).lstat() for key in store.list()}


def fingerprint(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode)


def assert_objects_sound(root: Path) -> None:
    """Each object: bytes hash to its name, read-only, one name only, nothing in staging."""
    store = FileStore(root)
    for key, st in objects(root).items():
        assert store.verified(key) is not None, key
        assert stat.S_IMODE(st.st_mode) == 0o444, f"{key} is {oct(st.st_mode)}"
        assert st.st_nlink == 1, f"{key} has {st.st_nlink} names"
    staging = root / ".staging"
    assert [p.name for p in staging.iterdir() if p.name != "spool"] == []
    assert [p for p in (staging / "spool").rglob("*") if p.is_file()] == []


# --- stored objects never change ---------------------------------------------------------


def test_kill_between_link_and_unlink_never_changes_a_stored_object(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam = setup(tmp_path, docks, make_cam, ledger, dock_keys, size=200_000)
    root = tmp_path / "store"
    url = f"file://{root}"
    # links: header (1), manifest (2), first segment (3) of the first recording
    run_killed(tmp_path, docks.slots, url, "store-linked:3")
    after_kill = objects(root)
    seg_keys = [k for k in after_kill if "/seg-" in k]
    assert len(seg_keys) == 1  # killed with the first segment named, its staging name alive
    assert after_kill[seg_keys[0]].st_nlink == 2
    left = [p for p in (root / ".staging").iterdir() if p.name.startswith("w-")]
    assert len(left) == 1  # the killed writer's staging folder
    # no spool name is another name of a stored object
    stored_inodes = {st.st_ino for st in after_kill.values()}
    spool_inodes = {
        p.lstat().st_ino for p in (root / ".staging" / "spool").rglob("*") if p.is_file()
    }
    assert not stored_inodes & spool_inodes

    out = run_clean(tmp_path, docks.slots, url)
    assert released_line(out) == f"{cam.device_id}: all 2 recordings stored, camera released"
    final = objects(root)
    for key, st in after_kill.items():  # every object named before the kill is untouched
        assert fingerprint(final[key]) == fingerprint(st), key
    assert_objects_sound(root)
    assert cam.segment_files() == []
    assert set(segment_states(tmp_path, cam).values()) == {RELEASED}
    store = FileStore(root)
    for rec, plain in cam.plaintexts.items():
        assert decrypt_from_store(store, SITE, cam, rec, tmp_path / "out") == plain


def test_a_spool_name_linked_to_a_stored_object_is_dropped_not_written_through(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    """What an earlier dock version left after this kill: the `.part` as a second name."""
    cam = setup(
        tmp_path, docks, make_cam, ledger, dock_keys, recordings=1, segments=3, size=200_000
    )
    root = tmp_path / "store"
    url = f"file://{root}"
    run_killed(tmp_path, docks.slots, url, "after-store:1")  # stored, ledger not yet
    (key,) = [k for k in objects(root) if "/seg-" in k]
    rec = key.split("/")[2]
    part = root / ".staging" / "spool" / SITE / cam.device_id / rec / f"{split_name(key)[0]}.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    os.link(root / key, part)
    before = fingerprint((root / key).lstat())
    digest = FileStore(root).verified(key)
    assert digest is not None

    out = run_clean(tmp_path, docks.slots, url)
    assert released_line(out) == f"{cam.device_id}: all 1 recording stored, camera released"
    assert fingerprint((root / key).lstat()) == before
    assert not part.exists()
    assert_objects_sound(root)
    assert (
        decrypt_from_store(FileStore(root), SITE, cam, rec, tmp_path / "out") == cam.plaintexts[rec]
    )


def test_a_damaged_object_under_its_final_name_is_set_aside_and_stored_again(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam = setup(tmp_path, docks, make_cam, ledger, dock_keys, recordings=1, segments=2)
    root = tmp_path / "store"
    url = f"file://{root}"
    run_killed(tmp_path, docks.slots, url, "after-ledger:1")  # stored + recorded, not released
    # A recording's segments are recorded together (one ledger transaction): both are
    # stored and recorded at the kill; the first is damaged.
    key = sorted(k for k in objects(root) if "/seg-" in k)[0]
    assert segment_states(tmp_path, cam)[(key.split("/")[2], split_name(key)[0])] == STORED
    damaged = root / key
    damaged.chmod(0o644)
    rot = damaged.read_bytes()
    rot = bytes([rot[0] ^ 0xFF]) + rot[1:]
    damaged.write_bytes(rot)

    out = run_clean(tmp_path, docks.slots, url)
    assert released_line(out) == f"{cam.device_id}: all 1 recording stored, camera released"
    assert_objects_sound(root)  # the name holds the right bytes again
    store = FileStore(root)
    aside = [k for k in store.list("quarantine/") if ".reason.json." not in k]
    assert len(aside) == 1 and store.get_bytes(aside[0]) == rot and store.legal_hold(aside[0])
    rec = key.split("/")[2]
    assert decrypt_from_store(store, SITE, cam, rec, tmp_path / "out") == cam.plaintexts[rec]


# --- the ledger ends exact -----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_kill_after_the_last_release_of_a_recording_still_ends_released(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    ledger: Ledger,
    dock_keys: Any,
    weed: WeedServer,
    aws_env: dict[str, str],
    backend: str,
) -> None:
    cam = setup(tmp_path, docks, make_cam, ledger, dock_keys)
    first, second = sorted(cam.plaintexts)
    url = (
        f"file://{tmp_path}/store"
        if backend == "file"
        else f"s3://{BUCKET}/{tmp_path.name}?endpoint={weed.endpoint}&region=us-east-1"
    )
    # releases go in order: the second is the last segment of the first recording
    run_killed(tmp_path, docks.slots, url, "after-release:2")
    assert not (cam.recordings / first).exists()  # the camera removed the whole folder
    states = segment_states(tmp_path, cam)
    assert states[(first, "seg-000001.bcs")] == STORED  # the window the kill hit

    out = run_clean(tmp_path, docks.slots, url)
    assert released_line(out) == f"{cam.device_id}: all 1 recording stored, camera released"
    states = segment_states(tmp_path, cam)
    assert states == {
        (rec, f"seg-{i:06d}.bcs"): RELEASED for rec in (first, second) for i in range(2)
    }
    with Ledger(ledger_path(tmp_path), readonly=True) as led:
        settled = led.segment(cam.device_id, first, "seg-000001.bcs")
        assert led.counts() == {RELEASED: 4}
    assert settled is not None
    store = open_store(url)
    try:
        for rec, plain in cam.plaintexts.items():
            assert decrypt_from_store(store, SITE, cam, rec, tmp_path / "out") == plain
    finally:
        store.close()


# --- S3: one version per object, whatever the timing -----------------------------------------


class _LateArrival(S3Store):
    """An S3Store whose first HEAD for a key happens just before another client's PUT lands.

    The other client is a second S3Store on the same server: the PUT of a dock killed
    before it read the reply, committing after the next run's HEAD answered 404.
    """

    def __init__(self, *a: Any, late_put: Callable[[str], object], **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._late_put = late_put
        self.heads: list[str] = []

    def _head(self, key: str) -> dict[str, Any] | None:
        seen = super()._head(key)
        if not self.heads:  # once: the first HEAD of the test
            self.heads.append(key)
            assert seen is None
            self._late_put(key)  # lands after our HEAD said 404
        return seen


def test_s3_put_after_a_stale_404_keeps_one_version_and_other_bytes_are_refused(
    tmp_path: Path, weed: WeedServer, aws_env: dict[str, str]
) -> None:
    prefix = f"late-{tmp_path.name}"
    data = os.urandom(50_000)
    sha = hashlib.sha256(data).hexdigest()
    key = f"{SITE}/BC-00000000/20261122T181500Z-0001/seg-000000.bcs.{sha}"
    killed = S3Store(BUCKET, prefix, endpoint_url=weed.endpoint, region="us-east-1")
    src = tmp_path / "seg.part"
    src.write_bytes(data)
    store = _LateArrival(
        BUCKET,
        prefix,
        endpoint_url=weed.endpoint,
        region="us-east-1",
        late_put=lambda k: killed.put_file(k, src, sha256=sha, size=len(data)),
    )
    receipt = store.put_file(key, src, sha256=sha, size=len(data))
    assert receipt.already_present and receipt.sha256 == sha and store.heads == [key]
    client = s3_client(weed.endpoint)
    try:
        versions = client.list_object_versions(Bucket=BUCKET, Prefix=prefix + "/")
        assert [v["Key"] for v in versions.get("Versions", [])] == [f"{prefix}/{key}"]

        # other bytes under a content-addressed name (of equal length): never success
        other = os.urandom(len(data))
        bad_key = key.replace("0001/", "0002/")
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/{bad_key}", Body=other)
        with pytest.raises(StoreIntegrityError):
            store.put_file(bad_key, src, sha256=sha, size=len(data))
        versions = client.list_object_versions(Bucket=BUCKET, Prefix=f"{prefix}/{bad_key}")
        assert len(versions.get("Versions", [])) == 1  # ours was not added on top
    finally:
        client.close()
        store.close()
        killed.close()


def test_s3_kill_after_an_event_log_piece_stores_no_overlap_and_leaves_no_temp_file(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    ledger: Ledger,
    dock_keys: Any,
    weed: WeedServer,
    aws_env: dict[str, str],
) -> None:
    cam = setup(tmp_path, docks, make_cam, ledger, dock_keys, recordings=1, segments=2)
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = {"TMPDIR": str(tmpdir)}
    prefix = f"events-{tmp_path.name}"
    url = f"s3://{BUCKET}/{prefix}?endpoint={weed.endpoint}&region=us-east-1"
    run_killed(tmp_path, docks.slots, url, "events-stored:1", env=env)
    assert list(tmpdir.iterdir()) == []  # small objects go up from memory
    legacy = tmpdir / "bytes-0123456789abcdef.tmp"  # what an earlier version left
    legacy.write_bytes(b"header")
    cam.event_log.append("button_press", button="record")  # the log grows meanwhile

    run_clean(tmp_path, docks.slots, url, env=env)
    assert not legacy.exists()
    client = s3_client(weed.endpoint)
    try:
        listed = client.list_object_versions(Bucket=BUCKET, Prefix=f"{prefix}/")
        keys = [v["Key"][len(prefix) + 1 :] for v in listed.get("Versions", [])]
    finally:
        client.close()
    assert len(keys) == len(set(keys))
    pieces = sorted(
        (int(n.split("-")[1]), int(n.split("-")[2].split(".")[0]), k)
        for k in keys
        if "/events/" in k
        for n in [split_name(k)[0]]
    )
    assert len(pieces) == 2  # the piece stored before the kill, adopted; then the rest
    assert pieces[0][0] == 0 and pieces[0][1] == pieces[1][0]  # contiguous, no overlap
    store = open_store(url)
    try:
        stored_log = b"".join(store.get_bytes(k) for _, _, k in pieces)
    finally:
        store.close()
    log = (cam.volume / "events" / "events.jsonl").read_bytes()
    assert log.startswith(stored_log) and b"button_press" in stored_log
    with Ledger(ledger_path(tmp_path), readonly=True) as led:
        assert led.events_offset(cam.device_id) == pieces[1][1]


# --- dock status ------------------------------------------------------------------------------


def status_of(tmp_path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "dock", "status", "--json", "--ledger", str(ledger_path(tmp_path))],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=60,
        check=True,
    )
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_status_says_not_running_the_moment_the_dock_is_killed(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    url = f"file://{tmp_path}/store"
    (tmp_path / "keys").mkdir()
    dock_keys.dock.save(tmp_path / "keys" / "dock.key")
    proc = start_dock(tmp_path, docks.slots, url, tag="live", once=False)
    try:
        for _ in range(1500):  # until the daemon has written its row (bounded)
            row = ledger.daemon()
            if row is not None and row["pid"] == proc.pid:
                break
            assert proc.poll() is None, (tmp_path / "dock-live.err").read_text()
            time.sleep(0.02)  # waiting for a state, not asserting a speed
        assert status_of(tmp_path)["daemon_state"] == "running"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert finish(proc, tmp_path, "live") == 0
    assert status_of(tmp_path)["daemon_state"] == "not running"

    cam: FakeCamera = make_cam()
    cam.record(2)
    register(ledger, cam)
    docks.dock(cam, "slot-1")
    run_killed(tmp_path, docks.slots, url, "after-store:1")
    row = ledger.daemon()
    assert row is not None and row["stopped_utc"] is None and row["pid"] != proc.pid
    assert status_of(tmp_path)["daemon_state"] == "not running"  # heartbeat is seconds old
    text = subprocess.run(
        [sys.executable, "-m", "dock", "status", "--ledger", str(ledger_path(tmp_path))],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert text.startswith("dock daemon: not running (pid ")


def test_store_state_is_ok_again_at_the_first_successful_upload(
    tmp_path: Path, docks: Dock, make_cam: Any, ledger: Ledger, dock_keys: Any
) -> None:
    cam: FakeCamera = make_cam()
    cam.record(2)
    register(ledger, cam)
    docks.dock(cam, "slot-1")
    nas = tmp_path / "nas"
    seen: list[str] = []

    class Watched(FileStore):
        """The real file store; notes what status said right after each stored object."""

        def put_file(self, *a: Any, **kw: Any) -> Any:
            stored = super().put_file(*a, **kw)
            row = ledger.daemon()
            seen.append(row["store_state"] if row else "?")
            return stored

    store = Watched(nas / "bodycam", create=False)
    checks: list[int] = []
    real_check = store.check

    def check_then_mount() -> None:
        checks.append(1)
        if len(checks) == 2:
            (nas / "bodycam").mkdir(parents=True)  # the disk is back for the second try
            FileStore(nas / "bodycam").check()  # the store made at first start, marker and all
        real_check()

    store.check = check_then_mount  # type: ignore[method-assign]
    cfg = DaemonConfig(
        slots=docks.slots,
        store_url=f"file://{nas}/bodycam",
        ledger_path=ledger.path,
        settle=0.0,
        site=SITE,
        live=False,
        once=True,
        retry_base=0.0,
        once_attempts=3,
    )
    out = io.StringIO()
    result = DockDaemon(cfg, store=store, ledger=ledger, dock_key=dock_keys.dock, out=out).run()
    assert result.exit_code == 0, out.getvalue()
    first = out.getvalue().splitlines()[0]
    assert "store problem" in first  # the first session met the outage
    assert seen and seen[0] == "ok", seen  # cleared by the first success, not the session end


def test_s3_other_bytes_under_a_segments_name_quarantine_it_and_keep_it_on_the_camera(
    tmp_path: Path,
    docks: Dock,
    make_cam: Any,
    ledger: Ledger,
    dock_keys: Any,
    weed: WeedServer,
    aws_env: dict[str, str],
) -> None:
    from dock.ingest import CameraIngest, DockContext
    from dock.ledger import QUARANTINED
    from dock.slots import Slot
    from store import object_key

    cam: FakeCamera = make_cam()
    rec = cam.record(2)
    register(ledger, cam)
    docks.dock(cam, "slot-1")
    seg0 = cam.recordings / rec / "seg-000000.bcs"
    good = seg0.read_bytes()
    key = object_key(SITE, cam.device_id, rec, seg0.name, hashlib.sha256(good).hexdigest())
    prefix = f"clash-{tmp_path.name}"
    client = s3_client(weed.endpoint)
    store = open_store(f"s3://{BUCKET}/{prefix}?endpoint={weed.endpoint}&region=us-east-1")
    try:
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/{key}", Body=os.urandom(len(good)))
        ctx = DockContext(
            store=store,
            ledger=ledger,
            dock_key=dock_keys.dock,
            site=SITE,
            spool_root=tmp_path / "spool",
        )
        report = CameraIngest(Slot("slot-1", docks.slots / "slot-1"), ctx).run()
        assert not report.ok
        assert any(
            q.startswith(f"{rec}/seg-000000.bcs: store integrity") for q in report.quarantined
        ), report.summary()
        assert seg0.exists()  # never released
        held = ledger.segment(cam.device_id, rec, seg0.name)
        assert held is not None and held.state == QUARANTINED
        assert store.get_bytes(f"quarantine/{key}") == good  # our verified copy is kept
        assert store.legal_hold(f"quarantine/{key}")
        versions = client.list_object_versions(Bucket=BUCKET, Prefix=f"{prefix}/{key}")
        assert len(versions.get("Versions", [])) == 1  # nothing added on top
        # the other segment went its normal way
        other = ledger.segment(cam.device_id, rec, "seg-000001.bcs")
        assert other is not None and other.state == RELEASED
    finally:
        client.close()
        store.close()
