"""The `bodycam` command itself: usage errors, one-line errors, every command's help."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bodycam_cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def _leaf_commands() -> list[list[str]]:
    """Every runnable command path, e.g. ["dock", "run"], read from the parser."""
    import argparse

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> list[list[str]]:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return [path]
        found: list[list[str]] = []
        for name, child in subs[0].choices.items():
            found += walk(child, [*path, name])
        return found

    return walk(build_parser(), [])


def test_the_design_s_commands_are_all_there() -> None:
    commands = {" ".join(c) for c in _leaf_commands()}
    expected = {
        "keys init",
        "profile validate",
        "profile sign",
        "profile flash",
        "profile read",
        "device run",
        "sim shift",
        "dock run",
        "dock status",
        "dock register",
        "vault verify",
        "vault decrypt",
        "demo",
    }
    assert expected <= commands, expected - commands


@pytest.mark.parametrize("command", [" ".join(c) for c in _leaf_commands()])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*command.split(), "--help"])
    assert exc.value.code == 0
    assert "usage: bodycam" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [[], ["nonsense"], ["vault"], ["keys", "init"], ["dock", "run", "--max-uploads", "many"]],
    ids=["nothing", "unknown", "no-subcommand", "missing-argument", "bad-number"],
)
def test_usage_errors_exit_2_naming_the_problem(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--max-uploads", "many"],
            "argument --max-uploads: must be a whole number from 1 to 64, got many",
        ),
        (["--max-slots", "0"], "argument --max-slots: must be from 1 to 64, got 0"),
        (["--settle", "soon"], "argument --settle: must be a number of seconds, got soon"),
        (["--settle", "7200"], "argument --settle: must be from 0 to 3600 seconds, got 7200"),
    ],
    ids=["word", "zero-slots", "word-seconds", "too-many-seconds"],
)
def test_dock_run_numbers_are_refused_with_their_range(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["dock", "run", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.endswith(f"error: {message}\n"), err


def test_a_missing_file_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent.toml"
    assert main(["profile", "validate", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err == f"bodycam: error: {missing}: No such file or directory\n"


def test_errors_from_a_real_process_are_one_line_without_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bodycam_cli",
            "vault",
            "decrypt",
            str(tmp_path),
            "--key",
            str(tmp_path / "vault.key"),
            "--out",
            str(tmp_path / "out.ts"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bodycam: error:"), done.stderr
    assert "vault.key" in lines[0]
    assert not (tmp_path / "out.ts").exists()


def test_vault_verify_names_a_path_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nothing"
    assert main(["vault", "verify", str(missing)]) == 1
    assert capsys.readouterr().out == f"FAILED {missing}: no such file or folder\n"


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["keys", "show", "{keys}/vault.pub", "{keys}/dock.pub"], 128 + signal.SIGPIPE),
        (["keys", "init", "{keys}-2"], 128 + signal.SIGPIPE),
        # argparse itself ignores a failed write of its help text and exits 0.
        (["--help"], 0),
        (["dock", "--help"], 0),
    ],
    ids=["keys-show", "keys-init", "help", "group-help"],
)
def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(
    tmp_path: Path, args: list[str], status: int
) -> None:
    """`bodycam ... | head`: no BrokenPipeError traceback, no error line."""
    keys = tmp_path / "keys"
    assert main(["keys", "init", str(keys)]) == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line is written
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bodycam_cli", *[a.format(keys=keys) for a in args]],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == status
