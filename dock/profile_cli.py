"""`bodycam profile sign|flash|read`: the integrator's commands for signed profiles.

They run on the host and talk to a camera through the host-side client, the
dock's link (dock.link.CameraLink); `profile validate` needs no camera and stays
with the profile model (formats.profile_cli).

`add_profile_commands(profile_subparsers)` adds the three commands to the
`profile` command group (where `profile validate` lives too);
`add_subcommands(subparsers)` finds or creates that group first.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from formats.profile_cli import profile_actions
from formats.profile_sign import (
    ProfileSignatureError,
    read_profile_file,
    read_signature_file,
    short_key,
    sign_profile_file,
    signature_path,
    verify_signed_profile,
)

if TYPE_CHECKING:
    from crypto.keys import SigningKey
    from dock.link import CameraLink, HelloInfo

log = logging.getLogger(__name__)

DOCK_KEY_ENV = "BODYCAM_DOCK_KEY"


def add_profile_commands(profile_subparsers: Any) -> None:
    """Add `sign`, `flash` and `read` to the `profile` group's subparsers object."""
    sign = profile_subparsers.add_parser(
        "sign",
        help="sign a profile with the integrator key (writes FILE.sig)",
        description="Validate FILE and write FILE.sig, the integrator's Ed25519 signature over "
        "its bytes, name and version. Cameras refuse unsigned or wrongly signed profiles.",
    )
    sign.add_argument("file", type=Path, metavar="FILE", help="profile TOML")
    sign.add_argument("--key", required=True, type=Path, metavar="KEY", help="integrator key")
    sign.set_defaults(func=cmd_sign)

    flash = profile_subparsers.add_parser(
        "flash",
        help="flash a signed profile onto a camera over serial (A/B, verified read-back)",
        description="Validate FILE and FILE.sig locally, authenticate to the camera, send the "
        "profile in chunks; the camera writes its inactive slot, verifies signature and hash, "
        "switches atomically, and the read-back must match. The new profile takes effect at "
        "the camera's next standby.",
    )
    flash.add_argument("file", type=Path, metavar="FILE", help="profile TOML (signed: FILE.sig)")
    _add_link_arguments(flash)
    flash.add_argument("--sig", type=Path, metavar="SIG", help="signature file (FILE.sig)")
    flash.set_defaults(func=cmd_flash)

    read = profile_subparsers.add_parser(
        "read",
        help="print a camera's active profile, its version and signer",
    )
    _add_link_arguments(read)
    read.add_argument("--out", type=Path, metavar="FILE", help="also write the profile here")
    read.set_defaults(func=cmd_read)


def add_subcommands(subparsers: Any) -> None:
    """Add the commands to the top-level `profile` group, creating the group if needed."""
    add_profile_commands(profile_actions(subparsers))


def _add_link_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--port",
        required=True,
        metavar="PORT",
        help="camera serial port: a path (/dev/pts/5) or pyserial URL",
    )
    p.add_argument(
        "--dock-key",
        type=Path,
        metavar="KEY",
        help=f"dock key trusted by the camera's profile (default: ${DOCK_KEY_ENV})",
    )
    p.add_argument(
        "--device-public",
        metavar="HEX|FILE",
        help="the camera's registered device public key (64 hex or a file: its "
        "DEVICE.json from provisioning, or the key the back office's registry lists); "
        "without it the key the camera announces is used",
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=2.0,
        metavar="SECONDS",
        help="per-attempt reply timeout (default 2)",
    )


def _seconds(text: str) -> float:
    """--timeout: a number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        # argparse puts "argument --timeout: " before this
        raise argparse.ArgumentTypeError(
            f"must be more than 0 and at most 3600 seconds, got {text}"
        )
    return value


# --- handlers --------------------------------------------------------------------------


INTEGRATOR_KIND = "integrator"


def cmd_sign(args: argparse.Namespace) -> int:
    from crypto.keys import SigningKey

    key = SigningKey.load(args.key)
    if key.kind != INTEGRATOR_KIND:
        raise ValueError(
            f"{args.key} is a {key.kind} key; profiles are signed with the integrator key "
            "(integrator.key from `bodycam keys init DIR`)"
        )
    out = sign_profile_file(args.file, key)
    data = read_profile_file(args.file)
    verified = verify_signed_profile(
        data, out.read_bytes(), trusted_signers=None, source=str(args.file)
    )
    sig = verified.signature
    print(
        f"signed {args.file}: profile {sig.name!r} version {sig.version}, "
        f"signer {sig.signer.hex()} -> {out}"
    )
    return 0


def _load_dock_key(path: Path | None) -> SigningKey:
    from crypto.keys import SigningKey

    if path is None:
        env = os.environ.get(DOCK_KEY_ENV)
        if not env:
            raise ValueError(
                "talking to a camera needs a dock key its profile trusts: "
                f"pass --dock-key KEY (or set {DOCK_KEY_ENV})"
            )
        path = Path(env)
    return SigningKey.load(path)


def _device_public(text: str | None) -> bytes | None:
    if text is None:
        return None
    candidate = Path(text)
    if candidate.exists():
        from crypto.keys import load_public_key

        return bytes(load_public_key(candidate))
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"--device-public {text!r} is neither a key file nor 64 hex characters")
    return raw


@contextmanager
def _session(args: argparse.Namespace) -> Iterator[tuple[CameraLink, HelloInfo]]:
    """An authenticated CameraLink for the command's --port."""
    from dock.link import CameraLink  # imported when used: `bodycam --help` stays quick

    dock_key = _load_dock_key(args.dock_key)
    expected = _device_public(args.device_public)
    with CameraLink(args.port, timeout=args.timeout, client_name="bodycam-profile") as link:
        hello = link.hello()
        if expected is None:
            print(
                f"note: trusting the device key camera {hello.device_id} announces "
                f"({short_key(hello.device_public)}); to check it, pass --device-public "
                "with its registered key: the DEVICE.json saved when the camera was "
                "provisioned, or the 64-hex public_key of its entry in the back office's "
                "camera registry",
                file=sys.stderr,
            )
            expected = hello.device_public
        link.auth(dock_key, expected)
        yield link, hello


def cmd_flash(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    data = read_profile_file(args.file)
    sig_path = args.sig or signature_path(args.file)
    sig_file = read_signature_file(sig_path)
    # Local checks first: a profile the camera would refuse is not worth a transfer.
    try:
        verified = verify_signed_profile(
            data, sig_file, trusted_signers=None, source=str(args.file)
        )
    except ProfileSignatureError as exc:
        raise ProfileSignatureError(f"{sig_path}: {exc.reason}") from None
    sig = verified.signature
    console = Console(stderr=True)
    with _session(args) as (link, hello):
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(f"flashing {sig.name} v{sig.version}", total=len(data))

            def report(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            info = link.profile_flash(data, sig_file, progress=report)
    print(
        f"flashed profile {info.name!r} version {info.version} to {hello.device_id} "
        f"(slot {info.slot}, signer {info.signer.hex() if info.signer else 'none'}); "
        "read-back matches; it takes effect at the camera's next standby"
    )
    return 0


def cmd_read(args: argparse.Namespace) -> int:
    with _session(args) as (link, hello):
        info = link.profile_read()
    signer = info.signer.hex() if info.signer else "unsigned (the camera's built-in profile)"
    print(f"camera:   {hello.device_id} ({hello.model}, firmware {hello.firmware})")
    print(f"profile:  {info.name}")
    print(f"version:  {info.version}")
    print(f"signer:   {signer}")
    print(f"sha256:   {info.sha256}")
    print(f"slot:     {info.slot or '-'}")
    if args.out is not None:
        args.out.write_bytes(info.data or b"")
        print(f"written:  {args.out}")
    print()
    sys.stdout.write((info.data or b"").decode("utf-8", "replace"))
    return 0
