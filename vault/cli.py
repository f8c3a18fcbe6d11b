"""`bodycam vault verify|decrypt`: check sealed recordings and open them in the back office.

`verify` needs only the camera's public key (from DEVICE.json on the volume, or
--device-key). `decrypt` needs the vault private key; its output appears under
the requested name only when the whole recording decrypted and verified, so a
bad key or tampered input never leaves partial plaintext behind.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from crypto.errors import FormatError, KeyFileError
from crypto.format import MANIFEST_NAME
from crypto.keys import VaultKey, check_ed25519_public, load_public_key
from crypto.open import decrypt_recording
from crypto.verify import VerifiedRecording, verify_manifest, verify_recording

log = logging.getLogger(__name__)

DEVICE_INFO = "DEVICE.json"
_MAX_DEVICE_INFO = 64 * 1024


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
    if path.stat().st_size > _MAX_DEVICE_INFO:
        raise DeviceKeyError(f"{path} is too large to be a device description")
    try:
        doc = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DeviceKeyError(f"{path} is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("public_key"), str):
        raise DeviceKeyError(f"{path} has no 'public_key'")
    try:
        public = check_ed25519_public(bytes.fromhex(doc["public_key"]), f"public_key in {path}")
    except ValueError as exc:
        raise DeviceKeyError(str(exc)) from None
    device_id = doc.get("device_id") if isinstance(doc.get("device_id"), str) else None
    return public, device_id, path


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
    return (f"{vr.recording_id} device {vr.device_id}: {len(vr.segments)} segments, "
            f"{size} bytes, {state}")


def cmd_verify(args: argparse.Namespace) -> int:
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
            total = decrypt_recording(folder, vault, public, f,
                                      require_complete=not args.allow_incomplete)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    print(f"decrypted {vr.recording_id}: {len(vr.segments)} segments, {total} bytes -> {out}")
    return 0


def add_subcommands(subparsers: Any) -> None:
    vault = subparsers.add_parser("vault", help="back office: verify and decrypt recordings")
    sub = vault.add_subparsers(dest="vault_command", metavar="SUBCOMMAND")
    sub.required = True
    verify = sub.add_parser(
        "verify",
        help="verify recordings with the camera's public key (no data key needed)",
        description="Verify each recording folder (or every recording inside a folder): "
        "signed manifest, segment hashes, order and completeness. Exit 0 only if all "
        "verify and are complete.",
    )
    verify.add_argument("paths", metavar="PATH", nargs="+", type=Path)
    verify.add_argument("--device-key", metavar="HEX_OR_FILE",
                        help=f"camera public key (default: {DEVICE_INFO} two levels up)")
    verify.set_defaults(func=cmd_verify)
    decrypt = sub.add_parser(
        "decrypt",
        help="decrypt a recording's segments into one media file",
        description="Verify and decrypt a recording with the vault private key. Output "
        "appears only when everything verified (written to a temporary file first).",
    )
    decrypt.add_argument("recording_dir", metavar="RECORDING_DIR", type=Path)
    decrypt.add_argument("--key", metavar="VAULT_KEY", type=Path, required=True,
                         help="vault private key file (vault.key)")
    decrypt.add_argument("--out", metavar="FILE", type=Path, required=True)
    decrypt.add_argument("--device-key", metavar="HEX_OR_FILE",
                         help=f"camera public key (default: {DEVICE_INFO} two levels up)")
    decrypt.add_argument("--allow-incomplete", action="store_true",
                         help="decrypt a recording that has no end entry")
    decrypt.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    decrypt.set_defaults(func=cmd_decrypt)
    add_anonymize(sub)


def cmd_anonymize(args: argparse.Namespace) -> int:
    # Deferred: OpenCV and the cascades load only for this command.
    from vault.anonymize import anonymize_recording

    report = anonymize_recording(args.source, args.out, overwrite=args.overwrite)
    print(
        f"anonymized {args.source}: {report.frames} frames {report.width}x{report.height} at "
        f"{float(report.fps):g} fps, {report.tracks} faces tracked, {report.frames_obscured} "
        f"frames blurred, {report.audio_streams_dropped} audio streams dropped -> {args.out}"
    )
    return 0


def add_anonymize(sub: Any) -> None:
    anonymize = sub.add_parser(
        "anonymize",
        help="make a decrypted recording unrecognizable for training (faces blurred, no sound)",
        description="Blur every face on every frame (detected, tracked between frames) and "
        "drop the sound; write an H.264 MP4 of the same size and frame rate. Input: a "
        "decrypted recording (MP4 or MPEG-TS, from 'vault decrypt').",
    )
    anonymize.add_argument("source", metavar="IN", type=Path)
    anonymize.add_argument("--out", metavar="OUT.mp4", type=Path, required=True)
    anonymize.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    anonymize.set_defaults(func=cmd_anonymize)
