"""The shipped systemd units run real `bodycam vault` commands, the purge daily."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from bodycam_cli import build_parser

UNITS = Path(__file__).parents[2] / "vault" / "systemd"


def _values(path: Path, key: str) -> list[str]:
    text = path.read_text().replace("\\\n", " ")
    return [
        line.split("=", 1)[1].strip() for line in text.splitlines() if line.startswith(f"{key}=")
    ]


@pytest.mark.parametrize("service", sorted(p.name for p in UNITS.glob("*.service")))
def test_every_exec_start_is_a_valid_bodycam_command(service: str) -> None:
    commands = _values(UNITS / service, "ExecStart")
    assert commands
    for command in commands:
        argv = shlex.split(command)
        assert argv[0].endswith("/bodycam")
        args = build_parser().parse_args(argv[1:])
        assert args.command == "vault" and args.credentials  # runs as the scheduler account


def test_the_purge_timer_runs_daily_and_catches_up() -> None:
    timer = UNITS / "bodycam-vault-purge.timer"
    assert _values(timer, "OnCalendar") == ["*-*-* 03:15:00"]
    assert _values(timer, "Persistent") == ["true"]
    assert _values(timer, "Unit") == ["bodycam-vault-purge.service"]
    purge = _values(UNITS / "bodycam-vault-purge.service", "ExecStart")
    assert any(" vault purge " in c for c in purge)


def test_production_settings_pass_the_deploy_check(db: str) -> None:
    from django.core.management import call_command

    call_command("check", deploy=True, fail_level="WARNING")
