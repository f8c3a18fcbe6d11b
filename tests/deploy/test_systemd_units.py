"""The shipped systemd units: hardened to a low exposure, and wired to their mounts."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dock", "firmware", "store", "vault", "sim")
UNITS = sorted(unit for package in PACKAGES for unit in (ROOT / package).rglob("*.service"))
MAX_EXPOSURE = 2.0


def _exposure(unit: Path) -> float:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
    assert match, f"systemd-analyze printed no exposure for {unit}:\n{done.stdout}{done.stderr}"
    return float(match.group(1))


def test_units_are_shipped() -> None:
    assert ROOT / "dock" / "bodycam-dock.service" in UNITS
    assert ROOT / "vault" / "systemd" / "bodycam-vault-purge.service" in UNITS
    assert ROOT / "vault" / "web" / "systemd" / "bodycam-vault-web.service" in UNITS


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_every_unit_needs_the_store_mounted(unit: Path) -> None:
    """An unmounted store disk stops the unit instead of letting it work on an empty root."""
    text = unit.read_text()
    assert re.search(r"^RequiresMountsFor=.*/srv/bodycam/store", text, re.M), unit.name


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_exposure_is_low(unit: Path) -> None:
    exposure = _exposure(unit)
    assert exposure <= MAX_EXPOSURE, f"{unit.name}: exposure {exposure} > {MAX_EXPOSURE}"


def test_dock_unit_needs_its_store_mounted_and_makes_its_slots() -> None:
    text = (ROOT / "dock" / "bodycam-dock.service").read_text()
    assert re.search(r"^RequiresMountsFor=.*/srv/bodycam/store", text, re.M)
    assert re.search(r"^RuntimeDirectory=.*bodycam/slots", text, re.M)
    assert "BODYCAM_SLOTS=/run/bodycam/slots" in text
    for setting in (
        "SystemCallFilter=",
        "RestrictAddressFamilies=",
        "ProtectClock=yes",
        "MemoryDenyWriteExecute=yes",
        "DevicePolicy=closed",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
    ):
        assert setting in text, setting


def test_weakened_unit_is_caught(tmp_path: Path) -> None:
    """The exposure check can fail: the same unit without its hardening scores high."""
    text = (ROOT / "dock" / "bodycam-dock.service").read_text()
    kept = [
        line
        for line in text.splitlines()
        if not re.match(
            r"(Protect|Restrict|SystemCall|Device|Private|Memory|Capability"
            r"|NoNewPrivileges|LockPersonality|RemoveIPC|Ambient)",
            line,
        )
    ]
    weak = tmp_path / "bodycam-dock.service"
    weak.write_text("\n".join(kept) + "\n")
    assert _exposure(weak) > MAX_EXPOSURE
