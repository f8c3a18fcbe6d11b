"""The shipped systemd unit starts a dock that takes the cameras the back office registered.

The unit's `ExecStart` is read the way systemd reads it (continued lines, `Environment=`
defaults, `${VAR}` as one word), every /etc, /var, /srv and /run path is moved into the
test's folder, and the dock runs with exactly those arguments against a store holding
the back office's signed camera registry.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from dock_support import Dock

from crypto.keys import SigningKey, write_public_key
from formats.registry import publish_registry
from store import FileStore

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "dock" / "bodycam-dock.service"
MOVED = ("/etc/", "/var/", "/srv/", "/run/")


def unit_settings(text: str) -> list[tuple[str, str]]:
    """(key, value) of every setting, continued lines joined, comments dropped."""
    settings: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith(("#", ";", "["))):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        key, _, value = (pending + line).partition("=")
        settings.append((key.strip(), value.strip()))
        pending = ""
    return settings


def unit_environment(settings: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for key, value in settings:
        if key == "Environment":
            for word in shlex.split(value):
                name, _, val = word.partition("=")
                env[name] = val
    return env


def expand(word: str, env: dict[str, str]) -> list[str]:
    """systemd: `${VAR}` is one argument (even when empty), `$VAR` splits on whitespace."""
    whole = re.fullmatch(r"\$\{(\w+)\}", word)
    if whole:
        return [env.get(whole.group(1), "")]
    bare = re.fullmatch(r"\$(\w+)", word)
    if bare:
        return env.get(bare.group(1), "").split()
    return [re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), word)]


def moved(arg: str, base: Path) -> str:
    """An /etc, /var, /srv or /run path (also in a file:// URL) moved under `base`."""
    for scheme in ("", "file://"):
        for prefix in MOVED:
            if arg.startswith(scheme + prefix):
                return f"{scheme}{base}{arg[len(scheme) :]}"
    return arg


def exec_start(base: Path, overrides: dict[str, str] | None = None) -> list[str]:
    """The unit's ExecStart as systemd would run it, with its system paths under `base`."""
    settings = unit_settings(UNIT.read_text())
    env = {**unit_environment(settings), **(overrides or {})}
    (line,) = [value for key, value in settings if key == "ExecStart"]
    argv = [arg for word in shlex.split(line) for arg in expand(word, env)]
    program = Path(argv[0])
    assert program.parts[:4] == ("/", "opt", "bodycam", ".venv"), argv[0]
    # /opt/bodycam/.venv/bin/bodycam: this checkout's installed `bodycam`
    return [str(Path(sys.executable).parent / program.name)] + [moved(a, base) for a in argv[1:]]


def test_the_unit_parser_reads_what_systemd_reads(tmp_path: Path) -> None:
    argv = exec_start(tmp_path)
    assert argv[1:3] == ["dock", "run"]
    pairs = dict(zip(argv[3::2], argv[4::2], strict=False))
    assert pairs["--slots"] == f"{tmp_path}/run/bodycam/slots"
    assert pairs["--store"] == f"file://{tmp_path}/srv/bodycam/store"
    assert pairs["--registry-key"] == f"{tmp_path}/etc/bodycam/keys/registry.pub"
    assert expand("${NONE}", {}) == [""] and expand("$A", {"A": "x y"}) == ["x", "y"]


@pytest.fixture
def installed(tmp_path: Path, dock_keys: Any) -> dict[str, Any]:
    """What the unit's install comment asks for, under tmp_path; and a signed registry."""
    base = tmp_path / "root"
    keys = base / "etc" / "bodycam" / "keys"
    keys.mkdir(parents=True)
    (base / "etc" / "bodycam" / "profiles").mkdir()
    dock_keys.dock.save(keys / "dock.key")
    registry = SigningKey.generate(kind="registry")
    write_public_key(keys / "registry.pub", registry.public_bytes(), "registry")
    (base / "var" / "lib" / "bodycam-dock").mkdir(parents=True)  # StateDirectory=
    (base / "run" / "bodycam" / "slots").mkdir(parents=True)  # RuntimeDirectory=
    (base / "srv" / "bodycam").mkdir(parents=True)  # the store's disk, mounted
    store = FileStore(base / "srv" / "bodycam" / "store")  # `dock run --create` once
    store.check()
    return {"base": base, "registry": registry, "store": store}


def run_unit(
    base: Path, docks: Dock, cam: Any, until: str, overrides: dict[str, str] | None = None
) -> str:
    """Start the dock as the unit does, wait for `until` on its output, stop it (SIGTERM)."""
    docks.dock(cam, "slot-1")
    out_path, err_path = base / "dock.out", base / "dock.err"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            exec_start(base, overrides), cwd=base, env=env, stdout=out, stderr=err
        )
    try:
        deadline = time.monotonic() + 60
        while until not in out_path.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, err_path.read_text()
            time.sleep(0.1)  # polling the daemon's output
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, err_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = out_path.read_text()
    assert until in output, output + err_path.read_text()
    return output


def test_the_shipped_unit_takes_a_camera_the_back_office_registered(
    installed: dict[str, Any], make_cam: Any
) -> None:
    cam = make_cam()
    cam.record(1)
    entry = {"device_id": cam.device_id, "public_key": cam.public_key.hex(), "model": cam.model}
    publish_registry(
        installed["store"], installed["registry"], version=1, site="s", cameras=[entry], now=1.0
    )
    docks = Dock(installed["base"] / "run" / "bodycam" / "slots")
    try:
        run_unit(
            installed["base"],
            docks,
            cam,
            f"{cam.device_id}: all 1 recording stored, camera released",
        )
    finally:
        docks.close()
    assert cam.segment_files() == []


def test_without_a_registry_key_the_refusal_says_so(
    installed: dict[str, Any], make_cam: Any
) -> None:
    """BODYCAM_REGISTRY_KEY= (a dock without a back office): the refusal names the cause."""
    cam = make_cam()
    cam.record(1)
    docks = Dock(installed["base"] / "run" / "bodycam" / "slots")
    try:
        output = run_unit(
            installed["base"],
            docks,
            cam,
            f"{cam.device_id}: refused: camera {cam.device_id} is not registered",
            overrides={"BODYCAM_REGISTRY_KEY": ""},
        )
    finally:
        docks.close()
    assert "this dock runs without a registry key" in output
    assert "--registry-key FILE" in output and "bodycam vault camera add" not in output
    assert len(cam.segment_files()) == 1
