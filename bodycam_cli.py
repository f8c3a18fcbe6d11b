"""The `bodycam` command: one entry point for integrators, officers, dock operators and CI.

Each package registers its own subcommands through an `add_subcommands(subparsers)`
function in its `cli` module; this module only assembles them, runs the chosen
handler and turns every error into one line on stderr with a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from crypto.timestamps import log_to_stderr

log = logging.getLogger("bodycam")

# (module, function) pairs that add top-level command groups, in help order.
_COMMAND_PROVIDERS: tuple[tuple[str, str], ...] = (
    ("crypto.cli", "add_subcommands"),  # keys
    ("formats.profile_cli", "add_subcommands"),  # profile validate
    ("dock.profile_cli", "add_subcommands"),  # profile sign/flash/read
    ("sim.cli", "add_subcommands"),  # device run, sim shift
    ("dock.cli", "add_subcommands"),  # dock run/status/register
    ("vault.cli", "add_subcommands"),  # vault verify/decrypt/...
)


def _demo(args: argparse.Namespace) -> int:
    from sim.demo import run_demo

    return run_demo(out_dir=args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bodycam",
        description="Body-worn camera simulator and docking-station ingest.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name, func_name in _COMMAND_PROVIDERS:
        getattr(importlib.import_module(module_name), func_name)(sub)
    demo = sub.add_parser("demo", help="run a whole shift end to end on embedded defaults")
    demo.add_argument("--out", default="demo-out", help="where the shift's files go")
    demo.set_defaults(func=_demo)
    return parser


def _one_line(exc: BaseException) -> str:
    """What went wrong, in words a user can act on: a file error names the file."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def _reader_went_away() -> int:
    """`bodycam ... | head`: the reader closed the pipe; end quietly, as `cat` would."""
    # Python would flush stdout again at exit and print a second BrokenPipeError.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except BrokenPipeError:  # also from argparse printing --help into a closed pipe
        return _reader_went_away()


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_to_stderr(logging.INFO if args.verbose else logging.WARNING)
    func: Callable[[argparse.Namespace], Any] | None = getattr(args, "func", None)
    if func is None:
        parser.error(f"'{args.command}' needs a subcommand")
    try:
        result = func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        return _reader_went_away()
    except KeyboardInterrupt:
        print("bodycam: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for the user; BODYCAM_DEBUG=1 shows the traceback
        if os.environ.get("BODYCAM_DEBUG"):
            raise
        message = _one_line(exc)
        print(f"bodycam: error: {message}".splitlines()[0], file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
