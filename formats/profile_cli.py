"""`bodycam profile validate FILE`: check a profile before it is signed and flashed.

Exit 0 with a one-line summary on stdout, or every problem (file, field, value,
allowed range) one per line on stderr and exit 1. A file that cannot be read is an
OSError, which the top-level CLI prints in one line.

`add_subcommands(subparsers)` finds or creates the top-level `profile` group, so the
signing and flashing commands (dock.profile_cli, on the host) can share it in either order.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from formats.profile import ProfileError, load_profile

log = logging.getLogger(__name__)


def add_subcommands(subparsers: Any) -> None:
    """Add `profile validate` to the top-level subparsers of the `bodycam` command."""
    validate = profile_actions(subparsers).add_parser(
        "validate",
        help="check a profile: exit 0 and a summary, or every error naming the field",
        description="Validate a TOML configuration profile. Prints a one-line summary and "
        "exits 0, or prints every error (file, field, value and what is allowed) and exits 1.",
    )
    validate.add_argument("file", type=Path, metavar="FILE", help="profile TOML")
    validate.set_defaults(func=cmd_validate)


def profile_actions(subparsers: Any) -> Any:
    """The subparsers of the top-level `profile` group, creating the group if needed."""
    group = subparsers.choices.get("profile")
    if group is None:
        group = subparsers.add_parser(
            "profile", help="validate, sign, flash and read configuration profiles"
        )
    return _subparsers_of(group)


def _subparsers_of(parser: argparse.ArgumentParser) -> Any:
    # argparse has no public accessor for a parser's existing subparsers action.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    sub = parser.add_subparsers(dest="profile_command", metavar="ACTION")
    sub.required = True
    return sub


def cmd_validate(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        profile = load_profile(path)
    except ProfileError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        count = len(exc.errors)
        print(f"{path}: not valid ({count} error{'s' if count != 1 else ''})", file=sys.stderr)
        return 1
    print(f"{path}: valid: {profile.summary()}")
    for line in profile.prerecord_defaults() + profile.placeholder_key_warnings():
        print(f"{path}: {line}", file=sys.stderr)
    return 0
