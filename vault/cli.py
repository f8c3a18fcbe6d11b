"""`bodycam vault ...`: the back office on the command line.

`verify` and `decrypt` take either a recording in the store (`RECORDING_ID` or
`DEVICE_ID/RECORDING_ID`: an authenticated, audited back-office command that checks
origin against the coordinator's registry, see vault/backoffice_cli.py) or a local
recording folder (a path: an offline check of a camera volume or a rebuilt folder,
with the camera's public key from --device-key or DEVICE.json two levels up; this is
no origin check). `decrypt` output appears under the requested name only when the
whole recording decrypted and verified, so a bad key or tampered input never leaves
partial plaintext behind. Every other subcommand is in vault/backoffice_cli.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from pathlib import Path
from typing import Any

from crypto.device_info import VOLUME_INFO_FILE as DEVICE_INFO
from crypto.device_info import read_device_info
from crypto.errors import FormatError, KeyFileError
from crypto.format import MANIFEST_NAME
from crypto.keys import VaultKey, check_ed25519_public, load_public_key
from crypto.open import decrypt_recording
from crypto.verify import VerifiedRecording, verify_manifest, verify_recording

log = logging.getLogger(__name__)


class DeviceKeyError(ValueError):
    """No usable device public key for a recording."""


def parse_device_key(text: str) -> bytes:
    """--device-key: 64 hex digits, or a file (public key file, device.json, bare hex)."""
    if re.fullmatch(r"[0-9a-fA-F]{64}", text.strip()):
        return check_ed25519_public(bytes.fromhex(text.strip()), "--device-key")
    path = Path(text)
    if not path.exists():
        raise DeviceKeyError(f"--device-key {text!r} is neither 64 hex digits nor a file")
    return check_ed25519_public(load_public_key(path), f"device key in {path}")


def device_info_for(recording_dir: Path) -> tuple[bytes, str | None, Path] | None:
    """(public key, device id, file) from DEVICE.json two levels up, if there is one."""
    path = recording_dir.resolve().parent.parent / DEVICE_INFO
    if not path.is_file():
        return None
    try:
        # The recording's signatures are checked with this key and its own device id
        # is compared with this one, so the id need not be the one the key derives.
        info = read_device_info(path, check_id=False)
        public = check_ed25519_public(bytes.fromhex(info["public_key"]), f"public_key in {path}")
    except ValueError as exc:
        raise DeviceKeyError(str(exc)) from None
    return public, info["device_id"], path


def _device_key(recording_dir: Path, given: bytes | None) -> tuple[bytes, str | None]:
    """The key to verify with, and the device id DEVICE.json says it belongs to."""
    if given is not None:
        return given, None
    info = device_info_for(recording_dir)
    if info is None:
        raise DeviceKeyError(
            f"no device public key for {recording_dir}: pass --device-key HEX_OR_FILE (no "
            f"{DEVICE_INFO} two levels up)"
        )
    return info[0], info[1]


def _check_device_id(vr: VerifiedRecording, expected: str | None) -> None:
    if expected is not None and vr.device_id != expected:
        raise DeviceKeyError(
            f"recording {vr.recording_id} names device {vr.device_id}, but {DEVICE_INFO} "
            f"describes {expected}"
        )


def _expand(paths: list[Path]) -> list[Path]:
    """Recording folders: each PATH itself, or the recordings inside it."""
    out: list[Path] = []
    for p in paths:
        if (p / MANIFEST_NAME).exists() or not p.is_dir():
            out.append(p)
            continue
        children = sorted(c for c in p.iterdir() if c.is_dir() and (c / MANIFEST_NAME).exists())
        out.extend(children or [p])
    return out


def _summary(vr: VerifiedRecording) -> str:
    state = "complete" if vr.complete else "NOT FINISHED (no end entry)"
    if vr.recovered:
        recovered = [f"{e.name} ({e.chunks} chunks)" for e in vr.segments if e.recovered]
        state += ", closed by power-cut recovery"
        if recovered:
            state += f", recovered {', '.join(recovered)}"
    size = sum(e.size for e in vr.segments)
    return (
        f"{vr.recording_id} device {vr.device_id}: {len(vr.segments)} segments, "
        f"{size} bytes, {state}"
    )


def cmd_verify(args: argparse.Namespace) -> int:
    from vault.backoffice_cli import _run, cmd_verify_store, is_local_path

    if args.paths and not any(is_local_path(str(p)) for p in args.paths):
        return _run(args, cmd_verify_store)
    given = parse_device_key(args.device_key) if args.device_key else None
    failed = 0
    for folder in _expand(list(args.paths)):
        if not folder.exists():
            failed += 1
            print(f"FAILED {folder}: no such file or folder")
            continue
        try:
            public, expected_id = _device_key(folder, given)
            vr = verify_recording(folder, public)
            _check_device_id(vr, expected_id)
        except (FormatError, KeyFileError, DeviceKeyError, OSError) as exc:
            failed += 1
            print(f"FAILED {folder}: {type(exc).__name__}: {exc}")
            continue
        if not vr.complete:
            failed += 1
        print(f"{'OK' if vr.complete else 'INCOMPLETE'} {folder}: {_summary(vr)}")
    return 1 if failed else 0


def _open_output(out: Path) -> tuple[int, Path]:
    tmp = out.with_name(f".{out.name}.{os.urandom(4).hex()}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    return fd, tmp


def cmd_decrypt(args: argparse.Namespace) -> int:
    from vault.backoffice_cli import _run, cmd_decrypt_store, is_local_path

    if not is_local_path(str(args.recording_dir)):
        return _run(args, cmd_decrypt_store)
    if args.key is None:
        args.parser.error("decrypting a local folder needs --key VAULT_KEY")
    if args.purpose == "access_request":
        # No policy allows a copy for an access request (viewing only); offline too.
        from vault.errors import PermissionRefused

        raise PermissionRefused("an access request is viewing only: no copy is made")
    folder: Path = args.recording_dir
    out: Path = args.out
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    vault = VaultKey.load(args.key)
    given = parse_device_key(args.device_key) if args.device_key else None
    public, expected_id = _device_key(folder, given)
    vr = verify_manifest(folder, public)
    _check_device_id(vr, expected_id)
    fd, tmp = _open_output(out)
    try:
        with os.fdopen(fd, "wb") as f:
            total = decrypt_recording(
                folder, vault, public, f, require_complete=not args.allow_incomplete
            )
            f.flush()
            os.fsync(f.fileno())
        if out.suffix.lower() == ".mp4":  # a real MP4 when the name says so (remuxed, 0600)
            from vault.media import remux_to_mp4

            fd2, mp4 = _open_output(out)
            os.close(fd2)
            try:
                remux_to_mp4(tmp, mp4, name=vr.recording_id)
            except BaseException:
                mp4.unlink(missing_ok=True)
                raise
            finally:
                tmp.unlink(missing_ok=True)
            tmp = mp4
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    print(f"decrypted {vr.recording_id}: {len(vr.segments)} segments, {total} bytes -> {out}")
    return 0


def add_subcommands(subparsers: Any) -> None:
    from vault.backoffice_cli import _auth_parent, add_backoffice_commands

    vault = subparsers.add_parser(
        "vault", help="back office: catalog, holds, retention, audit, registry, verify and decrypt"
    )
    sub = vault.add_subparsers(dest="vault_command", metavar="SUBCOMMAND")
    sub.required = True
    auth = [_auth_parent()]
    verify = sub.add_parser(
        "verify",
        help="verify recordings: in the store (origin against the registry) or a local folder",
        description="Verify each recording: RECORDING_ID or DEVICE_ID/RECORDING_ID in the "
        "store (as a back-office user, against the coordinator's registry), or a local "
        "recording folder (or every recording inside a folder): signed manifest, segment "
        "hashes, order and completeness. Exit 0 only if all verify and are complete.",
        parents=auth,
    )
    verify.add_argument("paths", metavar="RECORDING_OR_PATH", nargs="+", type=Path)
    verify.add_argument(
        "--device-key",
        metavar="HEX_OR_FILE",
        help=f"camera public key (default: {DEVICE_INFO} two levels up)",
    )
    verify.set_defaults(func=cmd_verify)
    decrypt = sub.add_parser(
        "decrypt",
        help="decrypt a recording into one media file (.mp4: MP4, .ts: MPEG-TS)",
        description="Verify and decrypt a recording with the vault private key: one in the "
        "store (as a back-office user, with a --purpose that the policy allows a copy for) "
        "or a local folder. Output appears only when everything verified (written to a "
        "temporary file first).",
        parents=auth,
    )
    decrypt.add_argument("recording_dir", metavar="RECORDING_OR_DIR", type=Path)
    decrypt.add_argument(
        "--key",
        metavar="VAULT_KEY",
        type=Path,
        default=None,
        help="vault private key file (vault.key; store: default from site.toml)",
    )
    decrypt.add_argument(
        "--purpose",
        default=None,
        help="why a copy is made (store recordings; e.g. criminal_investigation)",
    )
    decrypt.add_argument("--out", metavar="FILE", type=Path, required=True)
    decrypt.add_argument(
        "--device-key",
        metavar="HEX_OR_FILE",
        help=f"camera public key (default: {DEVICE_INFO} two levels up)",
    )
    decrypt.add_argument(
        "--allow-incomplete", action="store_true", help="decrypt a recording that has no end entry"
    )
    decrypt.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    decrypt.set_defaults(func=cmd_decrypt, parser=decrypt)
    add_backoffice_commands(sub)
    from vault.export.cli import add_export_commands

    add_export_commands(sub)
    from vault.web.serve import add_web_commands

    add_web_commands(sub)
