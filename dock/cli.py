"""`bodycam dock ...`: run the ingest daemon, show its status, register cameras.

```
bodycam dock run --slots DIR --store URL [--ledger PATH] [--keys DIR] [--once]
                 [--json-logs] [--max-uploads N] [--max-slots N] [--site NAME]
                 [--profiles DIR] [--state DIR] [--settle S] [--rescan S] [--create]
bodycam dock status [--ledger PATH] [--json]
bodycam dock register DEVICE_PUBKEY --role coordinator [--by NAME] [--ledger PATH]
bodycam dock unregister DEVICE_ID --role coordinator [--by NAME] [--ledger PATH]
```

With a back office, the coordinator registers cameras there (`bodycam vault camera
add`); the back office publishes a signed registry into the store and `dock run
--registry-key FILE` applies it to the ledger, which then serves as the dock's cache
(offline, the last good copy). `register`/`unregister` edit that cache directly, for a
dock without a back office.

The ledger defaults to `$BODYCAM_DOCK_LEDGER`, else
`$XDG_STATE_HOME/bodycam-dock/ledger.sqlite` (`~/.local/state/...`), the same for all
four commands. A running daemon leaves a note of its ledger (dock/preflight.py), so
`status`, `register` and `unregister` without --ledger act on a dock started with
another --ledger, or name the --ledger to pass. `dock run` checks its folders and
store first and creates none of them without --create.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import shlex
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from crypto.timestamps import utc_text
from dock.ledger import ROLES, Ledger
from dock.preflight import default_ledger, resolve_ledger


def _ledger_for(args: argparse.Namespace, command: str) -> Path:
    """The ledger a command acts on (dock/preflight.py: the rule all dock commands share)."""
    path, note = resolve_ledger(args.ledger, command)
    if note is not None:
        print(f"bodycam: {note}", file=sys.stderr)
    return path


def _no_ledger(path: Path, command: str) -> str:
    from dock.preflight import running_docks

    running = running_docks()
    if running:
        where = "; ".join(
            f"`bodycam dock {command} --ledger {d.ledger}` (pid {d.pid})" for d in running
        )
        return f"no dock ledger at {path}; a dock runs with another one: {where}"
    return (
        f"no dock ledger at {path} and no dock running: start one with `bodycam dock run "
        "--slots DIR --store URL` (add --create the first time), or pass --ledger PATH "
        "(or set BODYCAM_DOCK_LEDGER) naming the ledger your dock uses"
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 1 to 64, got {text}"
        ) from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"must be from 1 to 64, got {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text}") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be from 0 to 3600 seconds, got {text}")
    return value


def _registry_key(text: str) -> Path | None:
    """--registry-key FILE; an empty value (the unit's BODYCAM_REGISTRY_KEY= ) means none."""
    return Path(text) if text else None


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `dock run|status|register|unregister` on the top-level `bodycam` parser."""
    dock = subparsers.add_parser(
        "dock",
        help="the docking-station ingest daemon",
        description="Ingest docked cameras into storage with proof.",
    )
    sub = dock.add_subparsers(dest="dock_command", metavar="COMMAND")
    sub.required = True
    ledger_help = f"the dock's SQLite ledger (default {default_ledger()})"

    run = sub.add_parser("run", help="watch the slots and ingest every docked camera")
    run.add_argument("--slots", required=True, type=Path, help="the slots root to watch")
    run.add_argument(
        "--store", required=True, help="file:///path or s3://bucket/prefix?endpoint=URL&region=R"
    )
    run.add_argument("--ledger", type=Path, default=None, help=ledger_help)
    run.add_argument(
        "--keys",
        type=Path,
        default=None,
        help="site key folder with dock.key (bodycam keys init); default $BODYCAM_DOCK_KEYS",
    )
    run.add_argument(
        "--once",
        action="store_true",
        help="ingest the cameras docked now, then exit (1 if any was not clean)",
    )
    run.add_argument("--json-logs", action="store_true", help="log JSON lines to stderr")
    run.add_argument(
        "--max-uploads",
        type=_positive_int,
        default=2,
        help="uploads in flight across all slots (default 2)",
    )
    run.add_argument(
        "--max-slots", type=_positive_int, default=8, help="cameras ingested at once (default 8)"
    )
    run.add_argument("--site", default="default", help="site name in the store layout")
    run.add_argument(
        "--profiles",
        type=Path,
        default=None,
        help="staged profiles: DEVICE_ID.toml + DEVICE_ID.toml.sig are flashed",
    )
    run.add_argument(
        "--state",
        type=Path,
        default=None,
        help="spool folder for S3 stores (default: next to the ledger)",
    )
    run.add_argument(
        "--settle",
        type=_seconds,
        default=1.0,
        help="seconds a new slot must stay unchanged before ingest (default 1)",
    )
    run.add_argument(
        "--rescan",
        type=_seconds,
        default=5.0,
        help="seconds between full rescans of the slots root (default 5)",
    )
    run.add_argument("--no-live", action="store_true", help="no live progress table")
    run.add_argument(
        "--create",
        action="store_true",
        help="first start: make a missing store root (a new store), ledger "
        "folder, spool folder and slots root; without it the dock refuses "
        "to start when one is missing (an unmounted disk)",
    )
    run.add_argument(
        "--registry-key",
        type=_registry_key,
        default=None,
        metavar="FILE",
        help="the back office's registry public key (its HOME/registry.pub): take the "
        "camera registry the back office publishes in the store (cached in the ledger); "
        "without it only cameras added with `bodycam dock register` are taken",
    )
    run.add_argument(
        "--on-docked",
        default=None,
        metavar="COMMAND",
        help="run COMMAND (split like a shell would, run without one) after a docking "
        'stored footage, e.g. "bodycam vault sync --credentials FILE"; one at a time, '
        "$BODYCAM_DOCKED_DEVICES names the cameras",
    )
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="what the dock is doing (read from its ledger)")
    status.add_argument("--ledger", type=Path, default=None, help=ledger_help)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)

    reg = sub.add_parser("register", help="add a camera to the dock's registry (coordinator)")
    reg.add_argument(
        "device_pubkey",
        metavar="DEVICE_PUBKEY",
        help="the camera's DEVICE.json (on its volume) or its public key in hex",
    )
    reg.add_argument(
        "--role",
        required=True,
        help=f"your role; only 'coordinator' may add cameras ({', '.join(ROLES)})",
    )
    reg.add_argument("--by", default=None, help="who registers (default: the login name)")
    reg.add_argument("--ledger", type=Path, default=None, help=ledger_help)
    reg.set_defaults(func=cmd_register)

    unreg = sub.add_parser("unregister", help="remove a camera from the registry (coordinator)")
    unreg.add_argument("device_id", metavar="DEVICE_ID")
    unreg.add_argument("--role", required=True, help="your role; only 'coordinator'")
    unreg.add_argument("--by", default=None, help="who removes it (default: the login name)")
    unreg.add_argument("--ledger", type=Path, default=None, help=ledger_help)
    unreg.set_defaults(func=cmd_unregister)


# --- run ------------------------------------------------------------------------------------


def _command(text: str | None) -> tuple[str, ...]:
    """--on-docked: words as a shell would split them; an empty command is refused."""
    if text is None:
        return ()
    try:
        words = tuple(shlex.split(text))
    except ValueError as exc:
        raise ValueError(f"--on-docked {text!r}: {exc}") from None
    if not words:
        raise ValueError("--on-docked needs a command")
    return words


def cmd_run(args: argparse.Namespace) -> int:
    from dock.daemon import DockDaemon
    from dock.daemon_config import DaemonConfig
    from dock.logs import configure_logging
    from dock.preflight import check_start, store_url_for_run

    ledger = args.ledger or default_ledger()
    store_url = store_url_for_run(args.store, create=args.create)
    configure_logging(args.json_logs)  # first: what --create makes is logged
    check_start(
        slots=args.slots,
        store_url=store_url,
        ledger=ledger,
        state=args.state,
        profiles=args.profiles,
        keys=args.keys,
        create=args.create,
        registry_key=args.registry_key,
    )
    config = DaemonConfig(
        slots=args.slots,
        store_url=store_url,
        ledger_path=ledger,
        keys_dir=args.keys,
        state_dir=args.state,
        profiles_dir=args.profiles,
        site=args.site,
        once=args.once,
        max_uploads=args.max_uploads,
        max_slots=args.max_slots,
        settle=args.settle,
        rescan_interval=args.rescan,
        live=False if (args.no_live or args.json_logs) else None,
        registry_key=args.registry_key,
        create_store=args.create,
        announce=True,
        on_docked=_command(args.on_docked),
    )
    daemon = DockDaemon(config)
    signalled: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signalled.append(signum)
        daemon.request_stop()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        result = daemon.run()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        daemon.store.close()
        daemon.ledger.close()
    if signalled:
        return 0  # asked to stop: stopped cleanly, the rest resumes at the next start
    return result.exit_code if args.once else 0


# --- status ---------------------------------------------------------------------------------


def _ago(utc: float | None, now: float) -> str:
    if utc is None:
        return "never"
    seconds = max(0.0, now - utc)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return utc_text(utc)


def cmd_status(args: argparse.Namespace) -> int:
    from dock.daemon_status import daemon_state, progress_cells

    path = _ledger_for(args, "status")
    if not path.exists():
        raise FileNotFoundError(_no_ledger(path, "status"))
    with Ledger(path, readonly=True) as ledger:
        status = ledger.status()
    now = time.time()
    daemon = status["daemon"]
    state = daemon_state(path, daemon, now)
    status["daemon_state"] = state
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0
    if daemon is None:
        print("dock daemon: never started with this ledger")
    else:
        print(
            f"dock daemon: {state} (pid {daemon.get('pid')}, heartbeat "
            f"{_ago(daemon.get('heartbeat_utc'), now)}), store {daemon.get('store')}"
        )
        if daemon.get("store_state") != "ok":
            print(
                f"  store {daemon.get('store_state')}: {daemon.get('store_message')}; "
                "everything stays on the cameras until it is back"
            )
    slots = status["slots"]
    print(
        "slots (slot, device, recording, state, bytes, rate, ETA, message):"
        if slots
        else "slots: none docked"
    )
    for slot in slots:
        cells = progress_cells(slot)
        print("  " + "  ".join(c for c in cells[:7]) + (f"  {cells[7]}" if cells[7] else ""))
    cameras = status["cameras"]
    if cameras:
        print("cameras (last docking):")
        for cam in cameras:
            mark = "ok " if cam["ok"] else "!! "
            print(f"  {mark}{_ago(cam['ended_utc'], now):>16}  {cam['summary']}")
    refused = status.get("refused") or []
    if refused:
        print("refused dockings (newest first; footage stayed on the camera):")
        for r in refused:
            who = r["device_id"] or f"slot {r['slot']}"
            print(
                f"  !! {_ago(r['ended_utc'], now):>16}  {who} in slot {r['slot']}: {r['refused']}"
            )
    counts = status["segments"]
    if counts:
        print("segments: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    if status["quarantined"]:
        print("quarantined (kept on the camera and in the store's quarantine/):")
        for q in status["quarantined"]:
            where = f"{q['device_id']}/{q['recording_id']}" + (
                f"/{q['segment']}" if q["segment"] else ""
            )
            print(f"  {where}: {q['reason']}")
    print(f"registered cameras: {len(status['registered'])}")
    return 0


# --- registry -------------------------------------------------------------------------------


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return f"uid-{os.getuid()}"


def read_device_pubkey(spec: str) -> tuple[str, bytes, str]:
    """(device id, public key, model) from a DEVICE.json / key file path or a hex key."""
    from crypto.device_info import device_id_for, read_device_info

    text = spec.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text) and not Path(spec).exists():
        public = bytes.fromhex(text)
        return device_id_for(public), public, ""
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(
            f"{spec}: neither a file nor 64 hex digits (pass the camera's "
            "volume/DEVICE.json or its public key)"
        )
    with open(path, "rb") as f:
        raw = f.read(65537)  # a key file or DEVICE.json is small; never read a big file whole
    try:
        doc = json.loads(raw) if len(raw) <= 65536 else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict) and "device_id" in doc:
        info = read_device_info(path)  # checks the id belongs to the key
        return info["device_id"], bytes.fromhex(info["public_key"]), info["model"]
    from crypto.keys import load_public_key

    public = load_public_key(path)
    return device_id_for(public), public, ""


def cmd_register(args: argparse.Namespace) -> int:
    from dock.ledger import check_role

    check_role(args.role, "add")  # before reading anything
    device_id, public, model = read_device_pubkey(args.device_pubkey)
    path = _writable_ledger(args, "register")
    new = not path.exists()
    with Ledger(path) as ledger:
        record = ledger.register_device(
            device_id, public, model=model, registered_by=_who(args.by), role=args.role
        )
    where = f"a new ledger {path} (no dock has run on it yet)" if new else path
    print(
        f"registered camera {record.device_id} (key {record.public_key.hex()[:16]}..., "
        f"by {record.registered_by}) in {where}"
    )
    return 0


def _writable_ledger(args: argparse.Namespace, command: str) -> Path:
    """The ledger register/unregister write; its folder is never made here."""
    path = _ledger_for(args, command)
    if path.is_dir():
        raise IsADirectoryError(f"--ledger {path}: is a folder; pass the ledger file")
    if not path.parent.is_dir():
        raise FileNotFoundError(_no_ledger(path, command))
    return path


def cmd_unregister(args: argparse.Namespace) -> int:
    path = _writable_ledger(args, "unregister")
    if not path.exists():
        raise FileNotFoundError(_no_ledger(path, "unregister"))
    with Ledger(path) as ledger:
        ledger.remove_device(args.device_id, removed_by=_who(args.by), role=args.role)
    print(f"removed camera {args.device_id}: the dock refuses it from now on")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m dock ...`: the dock commands without the rest of `bodycam`."""
    parser = argparse.ArgumentParser(prog="python -m")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_subcommands(sub)
    args = parser.parse_args(["dock", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line, as the bodycam CLI does
        if os.environ.get("BODYCAM_DEBUG"):
            raise
        print(f"bodycam: error: {exc}".splitlines()[0], file=sys.stderr)
        return 1
