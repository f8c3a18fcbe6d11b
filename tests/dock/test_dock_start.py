"""`bodycam dock run` at start-up, and the one ledger every dock command finds.

Through the real CLI (`bodycam_cli.main`, or a `python -m dock run` process for a
running daemon): each refusal is one line naming the option and the path, exits 1,
and leaves nothing created behind.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bodycam_cli import main as bodycam

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _keep_logging() -> Any:
    """`dock run` sets up the root logger for its process; give the next test it back."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def tree(path: Path) -> list[str]:
    """Every path under `path` (to prove a refusal created nothing)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert bodycam(argv) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def site(tmp_path: Path, dock_keys: Any) -> Path:
    """Slots root, keys and a ledger folder that exist; no store yet."""
    (tmp_path / "slots").mkdir()
    (tmp_path / "keys").mkdir()
    dock_keys.dock.save(tmp_path / "keys" / "dock.key")
    (tmp_path / "state").mkdir()
    return tmp_path


def run_args(site: Path, store: str, *extra: str) -> list[str]:
    return [
        "dock",
        "run",
        "--slots",
        str(site / "slots"),
        "--store",
        store,
        "--ledger",
        str(site / "state" / "ledger.sqlite"),
        "--keys",
        str(site / "keys"),
        "--once",
        "--no-live",
        "--settle",
        "0",
        *extra,
    ]


def test_slots_given_as_a_file_says_it_is_not_a_folder(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (site / "slots.txt").write_text("x")
    args = run_args(site, f"file://{site}/store", "--create")
    args[args.index("--slots") + 1] = str(site / "slots.txt")
    before = tree(site)
    line = refused(args, capsys)
    assert (
        line == f"bodycam: error: --slots {site / 'slots.txt'}: is a file, not a folder "
        "(the slots root)"
    )
    assert tree(site) == before


def test_a_missing_store_root_is_never_created_without_create(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree(site)
    line = refused(run_args(site, f"file://{site}/disk/store"), capsys)
    assert f"--store {site / 'disk' / 'store'}: the store's root folder does not exist" in line
    assert "pass --create" in line
    assert tree(site) == before  # no store root, no ledger, no lock


def test_an_empty_mount_point_is_not_taken_for_a_store(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (site / "mnt").mkdir()  # what an unmounted disk leaves: an empty folder
    before = tree(site)
    line = refused(run_args(site, f"file://{site}/mnt"), capsys)
    assert "is not a bodycam store (no .bodycam-store)" in line and "mounted" in line
    assert tree(site) == before


def test_create_makes_a_new_store_and_ledger_folder(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = run_args(site, f"file://{site}/new/store", "--create")
    args[args.index("--ledger") + 1] = str(site / "fresh" / "ledger.sqlite")
    assert bodycam(args) == 0
    assert (site / "new" / "store" / ".bodycam-store").is_file()
    assert (site / "fresh" / "ledger.sqlite").is_file()
    capsys.readouterr()
    # the next start needs no --create: the store is there and marked
    args.remove("--create")
    assert bodycam(args) == 0


def test_a_missing_ledger_folder_is_refused_and_not_created(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (site / "store").mkdir()
    (site / "store" / ".bodycam-store").write_text("{}\n")
    args = run_args(site, f"file://{site}/store")
    ledger = site / "disk" / "ledger.sqlite"
    args[args.index("--ledger") + 1] = str(ledger)
    before = tree(site)
    line = refused(args, capsys)
    assert line == (
        f"bodycam: error: --ledger {ledger}: its folder {ledger.parent} does not "
        "exist (is its disk mounted?); pass --create to make it, or --ledger PATH "
        "for the ledger you use"
    )
    assert tree(site) == before


def test_a_ledger_that_is_not_a_database_is_named(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (site / "store").mkdir()
    (site / "store" / ".bodycam-store").write_text("{}\n")
    ledger = site / "state" / "ledger.sqlite"
    ledger.write_bytes(b"this is not sqlite" * 100)
    line = refused(run_args(site, f"file://{site}/store"), capsys)
    assert line.startswith(f"bodycam: error: --ledger {ledger}: not a usable dock ledger")
    # the library names the file too, where sqlite alone would not
    from dock.ledger import Ledger, LedgerError

    with pytest.raises(LedgerError, match=str(ledger)):
        Ledger(ledger)
    folder = site / "ro"
    folder.mkdir()
    with pytest.raises(LedgerError, match=f"dock ledger {folder}: unable to open"):
        Ledger(folder, readonly=False)


def test_profiles_given_as_a_file_and_missing_profiles_are_refused(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (site / "profiles.toml").write_text("")
    line = refused(
        run_args(
            site, f"file://{site}/store", "--create", "--profiles", str(site / "profiles.toml")
        ),
        capsys,
    )
    assert line == (
        f"bodycam: error: --profiles {site / 'profiles.toml'}: is a file, not a "
        "folder (the staged profiles folder)"
    )
    line = refused(
        run_args(site, f"file://{site}/store", "--create", "--profiles", str(site / "nothing")),
        capsys,
    )
    assert f"--profiles {site / 'nothing'}: the staged profiles folder does not exist" in line
    assert not (site / "nothing").exists() and not (site / "store").exists()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_s3_without_credentials_is_refused_in_one_line(
    site: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(site / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(site / "none"))
    before = tree(site)
    url = f"s3://footage/dock?endpoint=http://127.0.0.1:{closed_port()}&region=us-east-1"
    line = refused(run_args(site, url), capsys)
    assert line.startswith("bodycam: error: --store s3://footage/dock: no S3 credentials")
    assert "AWS_ACCESS_KEY_ID" in line
    assert tree(site) == before


def test_s3_unreachable_endpoint_is_refused_in_one_line(
    site: Path, capsys: pytest.CaptureFixture[str], aws_env: dict[str, str]
) -> None:
    port = closed_port()
    before = tree(site)
    url = f"s3://footage/dock?endpoint=http://127.0.0.1:{port}&region=us-east-1"
    line = refused(run_args(site, url), capsys)
    assert line.startswith("bodycam: error: --store s3://footage/dock: ")
    assert f"127.0.0.1:{port}" in line and "unreachable" in line
    assert tree(site) == before


def test_a_missing_bucket_is_created_only_with_create(
    site: Path, capsys: pytest.CaptureFixture[str], aws_env: dict[str, str], weed: Any
) -> None:
    url = f"s3://fresh-{os.getpid()}-{time.monotonic_ns() % 10**6}?endpoint={weed.endpoint}"
    line = refused(run_args(site, url), capsys)
    assert "does not exist; create it with Object Lock enabled" in line
    assert not (site / "state" / "ledger.sqlite").exists()
    assert bodycam(run_args(site, url, "--create")) == 0


# --- the back office's registry key -------------------------------------------------------


@pytest.fixture
def registry_site(site: Path, dock_keys: Any) -> dict[str, Any]:
    """A store holding a registry signed by the back office; its registry.pub; site keys."""
    from crypto.keys import SigningKey, write_public_key
    from formats.registry import publish_registry
    from store import FileStore

    registry = SigningKey.generate(kind="registry")
    write_public_key(site / "registry.pub", registry.public_bytes(), "registry")
    registry.save(site / "registry.key")
    write_public_key(site / "keys" / "dock.pub", dock_keys.dock.public_bytes(), "dock")
    write_public_key(site / "integrator.pub", dock_keys.integrator.public_bytes(), "integrator")
    store = FileStore(site / "store")
    publish_registry(store, registry, version=1, site="s", cameras=[], now=1.0)
    return {"url": f"file://{site}/store", "store": store, "registry": registry}


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("keys/dock.pub", "is a dock's public key (kind dock)"),
        ("integrator.pub", "is the integrator's public key (kind integrator)"),
        ("keys/dock.key", "is a dock's private key (kind dock)"),
    ],
)
def test_a_key_of_another_kind_is_refused_at_start(
    site: Path,
    registry_site: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    name: str,
    what: str,
) -> None:
    before = tree(site)
    line = refused(run_args(site, registry_site["url"], "--registry-key", str(site / name)), capsys)
    assert line == (
        f"bodycam: error: --registry-key {site / name}: {what}, not the back office's "
        "registry key (kind registry); pass the back office's HOME/registry.pub"
    )
    assert tree(site) == before  # refused before a ledger was made


def test_a_cameras_device_json_or_the_private_key_is_refused_at_start(
    site: Path, registry_site: dict[str, Any], capsys: pytest.CaptureFixture[str], make_cam: Any
) -> None:
    cam = make_cam()
    device_json = cam.volume / "DEVICE.json"
    line = refused(run_args(site, registry_site["url"], "--registry-key", str(device_json)), capsys)
    assert f"--registry-key {device_json}: is camera {cam.device_id}'s DEVICE.json" in line
    key = site / "registry.key"
    line = refused(run_args(site, registry_site["url"], "--registry-key", str(key)), capsys)
    assert line == (
        f"bodycam: error: --registry-key {key}: is the back office's private registry key, "
        "which stays in the back office; pass its public half, the back office's "
        "HOME/registry.pub"
    )
    missing = site / "nowhere.pub"
    line = refused(run_args(site, registry_site["url"], "--registry-key", str(missing)), capsys)
    assert line == (
        f"bodycam: error: --registry-key {missing}: does not exist; copy the back office's "
        "HOME/registry.pub there"
    )


def test_a_registry_key_that_verifies_no_published_registry_is_refused(
    site: Path, registry_site: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Another back office's registry key (right kind, wrong key) verifies nothing: exit 1."""
    from crypto.keys import SigningKey, write_public_key

    other = site / "other-registry.pub"
    write_public_key(other, SigningKey.generate(kind="registry").public_bytes(), "registry")
    line = refused(run_args(site, registry_site["url"], "--registry-key", str(other)), capsys)
    assert line.startswith(
        f"bodycam: error: --registry-key {other}: the camera registry in the store "
        "(registry/cameras-0000000001.json."
    )
    assert line.endswith("is signed by another key; pass the back office's HOME/registry.pub")
    assert line.count(str(other)) == 1
    # the back office's own key starts the dock
    assert (
        bodycam(run_args(site, registry_site["url"], "--registry-key", str(site / "registry.pub")))
        == 0
    )


def test_a_forged_newer_registry_is_logged_once_by_name_and_the_good_one_kept(
    site: Path, registry_site: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    from crypto.keys import SigningKey
    from formats.registry import latest_registry, publish_registry

    forged, _ = publish_registry(
        registry_site["store"], SigningKey.generate(), version=2, site="s", cameras=[], now=2.0
    )
    with caplog.at_level("ERROR", logger="formats.registry"):
        reg, problem = latest_registry(
            registry_site["store"], registry_site["registry"].public_bytes()
        )
    assert reg is not None and reg.version == 1 and problem and forged in problem
    (record,) = [r.getMessage() for r in caplog.records]
    assert record.count(forged) == 1 and "signature does not verify" in record


# --- one ledger for every command ---------------------------------------------------------


def start_daemon(site: Path, ledger: Path) -> subprocess.Popen[bytes]:
    (site / "store").mkdir(exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "dock",
        "run",
        "--slots",
        str(site / "slots"),
        "--store",
        f"file://{site}/store",
        "--ledger",
        str(ledger),
        "--keys",
        str(site / "keys"),
        "--no-live",
        "--create",
        "--rescan",
        "0.2",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(site / "dock.err", "wb") as err:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)


def wait_running(proc: subprocess.Popen[bytes], site: Path) -> None:
    from dock.preflight import running_docks

    for _ in range(400):  # bounded: 20 s
        if running_docks():
            return
        assert proc.poll() is None, (site / "dock.err").read_text()
        time.sleep(0.05)
    raise AssertionError("the dock never announced itself: " + (site / "dock.err").read_text())


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_status_and_register_find_a_dock_started_with_another_ledger(
    site: Path, capsys: pytest.CaptureFixture[str], make_cam: Any
) -> None:
    ledger = site / "elsewhere" / "ledger.sqlite"
    proc = start_daemon(site, ledger)
    try:
        wait_running(proc, site)
        assert bodycam(["dock", "status"]) == 0
        out, err = capsys.readouterr()
        assert f"uses --ledger {ledger}" in err
        assert "dock daemon: running" in out
        cam = make_cam()
        assert (
            bodycam(["dock", "register", str(cam.volume / "DEVICE.json"), "--role", "coordinator"])
            == 0
        )
        out, err = capsys.readouterr()
        assert f"in {ledger}" in out and f"--ledger {ledger}" in err
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
            ids = [r[0] for r in db.execute("SELECT device_id FROM devices")]
        assert ids == [cam.device_id]  # the running dock's ledger, not the default one
        from dock.preflight import default_ledger

        assert not default_ledger().exists()
        # a wrong --ledger is answered with the one the running dock uses
        wrong = site / "wrong.sqlite"
        line = refused(["dock", "status", "--ledger", str(wrong)], capsys)
        assert line.startswith(f"bodycam: error: no dock ledger at {wrong}; a dock runs")
        assert f"`bodycam dock status --ledger {ledger}`" in line
        assert not wrong.exists()
    finally:
        stop(proc)
    # stopped: nothing runs, the default ledger is absent, and status says what to pass
    line = refused(["dock", "status"], capsys)
    assert "no dock running" in line and "--ledger PATH" in line and "--create" in line


def test_two_running_docks_name_each_ledger_to_pass(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = site / "a" / "ledger.sqlite", site / "b" / "ledger.sqlite"
    one = start_daemon(site, first)
    try:
        wait_running(one, site)
        two = start_daemon(site, second)
        try:
            from dock.preflight import running_docks

            for _ in range(400):
                if len(running_docks()) == 2:
                    break
                assert two.poll() is None, (site / "dock.err").read_text()
                time.sleep(0.05)
            line = refused(["dock", "status"], capsys)
            assert "2 docks are running" in line
            assert f"`bodycam dock status --ledger {first}`" in line
            assert f"`bodycam dock status --ledger {second}`" in line
        finally:
            stop(two)
    finally:
        stop(one)


def test_register_never_creates_a_ledger_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_cam: Any
) -> None:
    cam = make_cam()
    ledger = tmp_path / "unmounted" / "ledger.sqlite"
    line = refused(
        [
            "dock",
            "register",
            str(cam.volume / "DEVICE.json"),
            "--role",
            "coordinator",
            "--ledger",
            str(ledger),
        ],
        capsys,
    )
    assert f"no dock ledger at {ledger}" in line and "--create" in line
    assert not ledger.parent.exists()
