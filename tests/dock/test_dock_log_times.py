"""The dock's times in UTC with `Z` (crypto/timestamps.py): every log line, text and
--json-logs, and `dock status`, though the machine's zone is Amsterdam.

Through the real CLI (`bodycam_cli.main`) in this process, the process's zone set to
Europe/Amsterdam as a dock installed in a Dutch town hall would have it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_zone import local_zone

from bodycam_cli import main as bodycam
from dock.ledger import Ledger

LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")


@pytest.fixture(autouse=True)
def _amsterdam_and_logging_back() -> Iterator[None]:
    """`dock run` sets up the root logger for its process; give the next test it back."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with local_zone("Europe/Amsterdam"):
        yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def site(tmp_path: Path, dock_keys: Any) -> Path:
    (tmp_path / "slots").mkdir()
    (tmp_path / "keys").mkdir()
    dock_keys.dock.save(tmp_path / "keys" / "dock.key")
    (tmp_path / "state").mkdir()
    return tmp_path


def run_once(site: Path, *extra: str) -> int:
    return bodycam(
        [
            "dock",
            "run",
            "--slots",
            str(site / "slots"),
            "--store",
            f"file://{site}/store",
            "--create",
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
    )


def near_now(text: str) -> None:
    """`text` (ISO 8601 without the zone) read as UTC is now, not an hour off."""
    at = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    assert abs(at.timestamp() - time.time()) < 120, text


def test_text_log_lines_carry_utc_with_z(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_once(site) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert any("dock started" in line for line in lines), lines
    for line in lines:
        m = LOG_TIME.match(line)
        assert m, line
        near_now(m.group(1))


def test_json_log_lines_carry_utc_with_z(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_once(site, "--json-logs") == 0
    docs = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert any(d["message"].startswith("dock started") for d in docs), docs
    for d in docs:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", d["time"]), d
        near_now(d["time"][:-1])


def test_dock_status_writes_an_old_heartbeat_in_utc_with_z(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_once(site) == 0
    ledger = site / "state" / "ledger.sqlite"
    winter = dt.datetime(2026, 1, 15, 13, 4, 5, tzinfo=dt.UTC).timestamp()  # 14:04 in Amsterdam
    with Ledger(ledger) as db:
        db.set_daemon(heartbeat_utc=winter)
    capsys.readouterr()
    assert bodycam(["dock", "status", "--ledger", str(ledger)]) == 0
    out = capsys.readouterr().out
    assert "heartbeat 2026-01-15T13:04:05Z)" in out, out
