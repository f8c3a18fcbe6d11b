"""`bodycam sim shift` and `bodycam device run`: the simulator's commands.

`add_subcommands(subparsers)` adds both command groups to the top-level CLI.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def add_subcommands(subparsers: Any) -> None:
    """Register `sim shift` and `device run`."""
    sim = subparsers.add_parser("sim", help="run scripted shifts in fast-forward")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="COMMAND")
    sim_sub.required = True
    shift = sim_sub.add_parser(
        "shift",
        help="run a scripted shift (TOML scenario) and print what was recorded",
        description="Run every camera of SCENARIO through its events (power on, record, "
        "stop, power cut, dock) and print a table of the sealed recordings. Site keys are "
        "created in OUT/site-keys unless --keys names a directory that has them.",
    )
    shift.add_argument("scenario", type=Path, metavar="SCENARIO", help="scenario TOML file")
    shift.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    shift.add_argument(
        "--speed",
        choices=("max", "realtime"),
        default="max",
        help="max: fast-forward (default); realtime: wall-clock time",
    )
    shift.add_argument("--keys", type=Path, metavar="DIR", help="site key folder to use")
    shift.add_argument(
        "--slots",
        type=Path,
        metavar="DIR",
        help="dock slots folder: a docked camera appears there with its volume and serial "
        "port (watch it with `bodycam dock run --slots DIR --store URL`; use --speed realtime "
        "for that: the final table counts what that dock already took)",
    )
    shift.add_argument(
        "--dock-store",
        metavar="URL",
        help="at the end of the shift, run the dock once over the docked cameras into this "
        "store (file:///path or s3://...); needs no --slots (OUT/dock/slots is used)",
    )
    shift.add_argument("--json", action="store_true", help="print the summary as JSON")
    shift.set_defaults(func=cmd_shift)

    device = subparsers.add_parser("device", help="run an emulated camera")
    device_sub = device.add_subparsers(dest="device_command", metavar="COMMAND")
    device_sub.required = True
    run = device_sub.add_parser(
        "run",
        help="an emulated camera in the terminal (r record, s stop, d dock, q quit)",
        description="Boot a camera with PROFILE in HOME (provisioned on first use) and run "
        "it in real time; a profile flashed into HOME wins over PROFILE (the first line "
        "says which one runs). Keys: r record, s stop, d dock/undock, q quit. When stdin is "
        "not a terminal, commands are read one per line (also 'wait SECONDS'). SIGTERM or "
        "SIGHUP (closing the terminal) cuts the power: the next boot recovers.",
    )
    run.add_argument("--profile", type=Path, required=True, metavar="FILE", help="profile TOML")
    run.add_argument("--home", type=Path, required=True, metavar="DIR", help="camera home")
    run.add_argument(
        "--slots",
        type=Path,
        metavar="DIR",
        help="dock slots folder: docking publishes the volume and serial port there",
    )
    run.add_argument("--slot-name", metavar="NAME", help="slot name (default: the device id)")
    run.add_argument(
        "--no-serial", action="store_true", help="do not serve the control channel when docked"
    )
    run.set_defaults(func=cmd_device_run)
    provision = device_sub.add_parser(
        "provision",
        help="pin the integrator key a camera trusts for flashed profiles",
        description="Install the integrator's public key in the profile store of the camera "
        "in HOME (created if new, as at the factory). A camera accepts flashed profiles only "
        "once this is done, and only signed by this key; a different key, once provisioned, "
        "is refused.",
    )
    provision.add_argument("--home", type=Path, required=True, metavar="DIR", help="camera home")
    provision.add_argument(
        "--integrator-key",
        type=Path,
        required=True,
        metavar="FILE",
        help="the integrator's public key (integrator.pub from `bodycam keys init`)",
    )
    provision.set_defaults(func=cmd_device_provision)


def cmd_shift(args: argparse.Namespace) -> int:
    from sim.docking import ingest_docked
    from sim.report import print_summary
    from sim.shift import run_shift

    def progress(message: str) -> None:
        if args.speed == "realtime":  # someone is watching the wall clock: say where it is
            print(f"shift {message}", file=sys.stderr, flush=True)
        else:
            log.info("%s", message)

    slots: Path | None = args.slots
    control_factory = None
    at_end = None
    dock_slots: Path = slots or args.out / "dock" / "slots"
    if args.dock_store is not None:
        slots = dock_slots
    if slots is not None:
        from firmware.control import CameraControlServer

        control_factory = CameraControlServer
    if args.dock_store is not None:
        from store import open_store

        open_store(args.dock_store)  # a bad URL fails before the shift, not after it
        docked = []
        keys_dir = args.keys or args.out / "site-keys"

        def at_end(cameras: dict[str, Any]) -> None:
            docked.append(
                ingest_docked(
                    cameras,
                    dock_slots,
                    args.out / "dock" / "ledger.sqlite",
                    args.dock_store,
                    keys_dir,
                    out=sys.stderr,
                )
            )

    result = run_shift(
        args.scenario,
        args.out,
        speed=args.speed,
        keys_dir=args.keys,
        slots=slots,
        control_factory=control_factory,
        progress=progress,
        at_end=at_end,
    )
    if args.json:
        import json

        print(json.dumps(result.as_dict(), indent=2))
    else:
        print_summary(result, file=sys.stdout)
    if args.dock_store is not None:
        if not docked:
            raise RuntimeError("the shift ended before the dock ran")
        return docked[0].exit_code
    return 0


def cmd_device_provision(args: argparse.Namespace) -> int:
    from crypto.keys import fingerprint, load_public_key, public_key_kind
    from firmware.camera import PROFILES_DIR
    from firmware.profile_store import ProfileStore

    path: Path = args.integrator_key
    kind = public_key_kind(path)
    if kind is not None and kind != "integrator":
        raise ValueError(f"{path} is a {kind} key; pass the integrator's public key")
    public = load_public_key(path)
    store = ProfileStore(args.home / PROFILES_DIR)
    if store.provision_integrator(public):
        print(
            f"{args.home}: integrator key {fingerprint(public)} provisioned; "
            "profiles signed with it can now be flashed"
        )
    else:
        print(f"{args.home}: integrator key {fingerprint(public)} was already provisioned")
    return 0


def cmd_device_run(args: argparse.Namespace) -> int:
    from firmware.camera import Camera
    from formats.profile import parse_profile
    from sim.board import SimBoard
    from sim.clock import RealClock
    from sim.terminal import run_device

    path: Path = args.profile
    if args.slot_name is not None:
        from crypto.names import check_component

        # A slot is one folder in --slots: a name with a separator would publish the
        # camera somewhere else (or nowhere the dock looks).
        check_component(args.slot_name, "--slot-name")
    if args.slots is not None and args.slots.exists() and not args.slots.is_dir():
        raise NotADirectoryError(f"--slots {args.slots} is not a folder")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise OSError(f"{path}: {exc.strerror or exc}") from None
    profile = parse_profile(raw, source=str(path))
    for line in profile.prerecord_defaults() + profile.placeholder_key_warnings():
        print(f"{path}: {line}", file=sys.stderr)
    control_factory = None
    if not args.no_serial:
        from firmware.control import CameraControlServer

        control_factory = CameraControlServer
    camera = Camera(
        args.home, profile, SimBoard(RealClock()), profile_raw=raw, control_factory=control_factory
    )
    slot_name = args.slot_name
    if args.slots is not None and not slot_name:
        from firmware.identity import load_or_provision

        slot_name = load_or_provision(args.home, model=Camera.model)[0].device_id
    if args.slots is not None:
        from sim.docking import remove_dead_slots

        for gone in remove_dead_slots(args.slots):
            print(
                f"removed dock slot {gone}: its camera is gone (killed while docked)",
                file=sys.stderr,
            )
    return run_device(
        camera,
        stdin_fd=sys.stdin.fileno(),
        out=sys.stdout,
        slots=args.slots,
        slot_name=slot_name,
        profile_path=path,
    )
