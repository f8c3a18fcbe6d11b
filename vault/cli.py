"""`bodycam vault ...`: the back office on the command line.

`verify` and `decrypt` take either a recording in the store (`RECORDING_ID` or
`DEVICE_ID/RECORDING_ID`: an authenticated, audited back-office command that checks
origin against the coordinator's registry, see vault/commands/catalog.py) or a local
recording folder (a path: an offline check of a camera volume or a rebuilt folder).

Offline, origin is checked against the signed camera registry the back office
publishes (dock/registry.py): `--registry FILE --registry-key KEY`, or by default the
newest one in the store of the site at --home, verified with its registry.pub. The
recording must be signed by the key the registry lists for the device it names. A
DEVICE.json on a volume is written by whoever handed the volume over: with no registry
its key proves only that the signatures match it, so the result line says "origin NOT
checked" and the command fails unless --trust-device-json is given. `decrypt` output
appears under the requested name only when the whole recording decrypted and verified,
so a bad key or tampered input never leaves partial plaintext behind. Every other
subcommand is in vault/backoffice_cli.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crypto.device_info import VOLUME_INFO_FILE as DEVICE_INFO
from crypto.device_info import read_device_info
from crypto.errors import FormatError, KeyFileError, NotSignedByDevice
from crypto.format import MANIFEST_NAME, parse_recording_header
from crypto.keys import VaultKey, check_ed25519_public, fingerprint, load_public_key
from crypto.open import decrypt_recording
from crypto.verify import (
    VerifiedRecording,
    load_header_bytes,
    verify_manifest,
    verify_recording,
)
from formats.registry import MAX_REGISTRY, Registry, RegistryError, latest_registry, parse_registry

log = logging.getLogger(__name__)


class DeviceKeyError(ValueError):
    """No usable device public key for a recording."""


class OriginRefused(ValueError):
    """A recording is not signed by the key the camera registry lists for its device."""


NOT_CHECKED = "signature valid, origin NOT checked"


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


@dataclass(frozen=True)
class Origin:
    """The key to verify a recording with, and what vouches for it."""

    public: bytes
    expected_id: str | None  # the device id the key's source describes
    checked: bool  # True: the camera registry lists this key for the recording's device
    basis: str  # for the result line


def load_registry(args: argparse.Namespace) -> tuple[Registry, str] | None:
    """The signed camera registry to check origin against, and where it came from.

    --registry FILE with --registry-key; else the newest in the store of the site at
    --home (or $BODYCAM_VAULT_HOME), checked with its registry.pub; else None.
    """
    registry_file: Path | None = getattr(args, "registry", None)
    key_text: str | None = getattr(args, "registry_key", None)
    if registry_file is not None:
        if key_text is None:
            raise DeviceKeyError(
                "--registry needs --registry-key HEX_OR_FILE (the back office's registry.pub)"
            )
        key = _registry_public(key_text)
        with open(registry_file, "rb") as f:
            raw = f.read(MAX_REGISTRY + 1)
        reg = parse_registry(raw, key, str(registry_file))
        return reg, f"camera registry v{reg.version} ({registry_file})"
    if key_text is not None:
        raise DeviceKeyError("--registry-key needs --registry FILE (a published camera registry)")
    from vault.site.config import SITE_FILE, SiteConfig, default_home

    home = Path(args.home).absolute() if getattr(args, "home", None) else default_home()
    if not (home / SITE_FILE).is_file():
        return None
    from store import open_store

    cfg = SiteConfig.load(home)
    pub_path = cfg.path(cfg.registry_key).with_suffix(".pub")
    key = _registry_public(str(pub_path))
    latest, problem = latest_registry(open_store(cfg.store, create=False), key)
    if latest is None:
        raise RegistryError(
            f"no camera registry in the store of site {cfg.site} verifies"
            + (f" ({problem})" if problem else "")
            + ": origin cannot be checked"
        )
    return latest, f"camera registry v{latest.version} of site {cfg.site}"


def _registry_public(text: str) -> bytes:
    if re.fullmatch(r"[0-9a-fA-F]{64}", text.strip()):
        return check_ed25519_public(bytes.fromhex(text.strip()), "--registry-key")
    return check_ed25519_public(load_public_key(Path(text)), f"registry key in {text}")


def _claimed_device(recording_dir: Path) -> str:
    """The device id the recording's header names (not yet authenticated)."""
    return parse_recording_header(load_header_bytes(recording_dir)).device_id


def resolve_origin(
    recording_dir: Path,
    given: bytes | None,
    registry: tuple[Registry, str] | None,
) -> Origin:
    """The key to verify `recording_dir` with: the registered one when there is a registry."""
    info = device_info_for(recording_dir) if given is None else None
    if registry is not None:
        reg, source = registry
        device = _claimed_device(recording_dir)
        entry = reg.cameras.get(device)
        if entry is None:
            raise OriginRefused(
                f"the recording names device {device}, which {source} does not list: origin refused"
            )
        registered = bytes.fromhex(entry["public_key"])
        offered = given if given is not None else (info[0] if info is not None else None)
        if offered is not None and offered != registered:
            what = "--device-key" if given is not None else str(info[2]) if info else "key"
            raise OriginRefused(
                f"the key in {what} ({fingerprint(offered)}...) is not the key {source} "
                f"registers for {device} ({fingerprint(registered)}...): origin refused"
            )
        if info is not None and info[1] != device:
            raise OriginRefused(
                f"the recording names device {device}, but {info[2]} describes {info[1]}"
            )
        return Origin(registered, device, True, f"origin: the key {source} registers for {device}")
    if given is not None:
        return Origin(given, None, False, f"{NOT_CHECKED} (key from --device-key)")
    if info is None:
        raise DeviceKeyError(
            f"no device public key for {recording_dir}: pass --registry FILE --registry-key "
            f"KEY, or --device-key HEX_OR_FILE (no {DEVICE_INFO} two levels up)"
        )
    return Origin(info[0], info[1], False, f"{NOT_CHECKED} (key from {info[2]})")


def _check_device_id(vr: VerifiedRecording, expected: str | None) -> None:
    if expected is not None and vr.device_id != expected:
        raise DeviceKeyError(
            f"recording {vr.recording_id} names device {vr.device_id}, but {DEVICE_INFO} "
            f"describes {expected}"
        )


def _verified(folder: Path, origin: Origin, verify: Any) -> VerifiedRecording:
    try:
        vr: VerifiedRecording = verify(folder, origin.public)
    except NotSignedByDevice as exc:
        if origin.checked:
            raise OriginRefused(
                f"not signed by the registered camera ({origin.basis}): {exc}"
            ) from None
        raise
    _check_device_id(vr, origin.expected_id)
    return vr


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
    from vault.backoffice_cli import is_local_path
    from vault.commands.catalog import cmd_verify_store
    from vault.commands.session import _run

    if args.paths and not any(is_local_path(str(p)) for p in args.paths):
        return _run(args, cmd_verify_store)
    given = parse_device_key(args.device_key) if args.device_key else None
    registry = load_registry(args)
    failed = 0
    for folder in _expand(list(args.paths)):
        if not folder.exists():
            failed += 1
            print(f"FAILED {folder}: no such file or folder")
            continue
        try:
            origin = resolve_origin(folder, given, registry)
            vr = _verified(folder, origin, verify_recording)
        except (FormatError, KeyFileError, DeviceKeyError, OriginRefused, OSError) as exc:
            failed += 1
            print(f"FAILED {folder}: {type(exc).__name__}: {exc}")
            continue
        trusted = origin.checked or given is not None or args.trust_device_json
        if not vr.complete or not trusted:
            failed += 1
        verdict = "OK" if vr.complete and trusted else "INCOMPLETE" if trusted else "UNPROVEN"
        if not vr.complete and not trusted:
            verdict = "INCOMPLETE, UNPROVEN"
        print(f"{verdict} {folder}: {_summary(vr)}; {origin.basis}")
    return 1 if failed else 0


def _open_output(out: Path) -> tuple[int, Path]:
    tmp = out.with_name(f".{out.name}.{os.urandom(4).hex()}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    return fd, tmp


def cmd_decrypt(args: argparse.Namespace) -> int:
    from vault.backoffice_cli import is_local_path
    from vault.commands.catalog import cmd_decrypt_store
    from vault.commands.session import _run

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
    origin = resolve_origin(folder, given, load_registry(args))
    if not origin.checked and given is None and not args.trust_device_json:
        raise OriginRefused(
            f"{folder}: {origin.basis}: a {DEVICE_INFO} proves nothing about who recorded "
            "this; pass --registry FILE --registry-key KEY, or --trust-device-json to "
            "decrypt anyway"
        )
    public = origin.public
    vr = _verified(folder, origin, verify_manifest)
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
    print(
        f"decrypted {vr.recording_id}: {len(vr.segments)} segments, {total} bytes -> {out}; "
        f"{origin.basis}"
    )
    return 0


def _origin_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--registry",
        metavar="FILE",
        type=Path,
        help="a published camera registry (registry/cameras-N.json.SHA256 from the store) "
        "to check a local folder's origin against (default: the newest in the store of "
        "the site at --home, if there is one)",
    )
    p.add_argument(
        "--registry-key",
        metavar="HEX_OR_FILE",
        help="the back office's registry public key (registry.pub) that signs --registry",
    )
    p.add_argument(
        "--device-key",
        metavar="HEX_OR_FILE",
        help=f"camera public key (default: the registry's; else {DEVICE_INFO} two levels up)",
    )
    p.add_argument(
        "--trust-device-json",
        action="store_true",
        help=f"with no registry, accept the key in {DEVICE_INFO}: anyone handing over a "
        "volume can write that file, so this proves only that the recording matches it, "
        "not which camera recorded it",
    )


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
        "hashes, order and completeness. A local folder's origin is checked against the "
        "signed camera registry (--registry and --registry-key, or by default the one in "
        f"the store of the site at --home): it must be signed by the key the registry lists "
        f"for its device. Without a registry the key comes from --device-key or the "
        f"{DEVICE_INFO} two levels up, which anyone handing over a volume can write: the "
        f"line then says '{NOT_CHECKED}' and, for a {DEVICE_INFO}, the exit status is "
        "non-zero unless --trust-device-json is given. Exit 0 only if all verify and are "
        "complete.",
        parents=auth,
    )
    verify.add_argument("paths", metavar="RECORDING_OR_PATH", nargs="+", type=Path)
    _origin_arguments(verify)
    verify.set_defaults(func=cmd_verify)
    decrypt = sub.add_parser(
        "decrypt",
        help="decrypt a recording into one media file (.mp4: MP4, .ts: MPEG-TS)",
        description="Verify and decrypt a recording with the vault private key: one in the "
        "store (as a back-office user, with a --purpose that the policy allows a copy for) "
        "or a local folder. A local folder's origin is checked as `vault verify` does it: "
        f"with only a {DEVICE_INFO} it is refused unless --trust-device-json is given. "
        "Output appears only when everything verified (written to a temporary file first).",
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
    _origin_arguments(decrypt)
    decrypt.add_argument(
        "--allow-incomplete", action="store_true", help="decrypt a recording that has no end entry"
    )
    decrypt.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    decrypt.set_defaults(func=cmd_decrypt, parser=decrypt)
    add_backoffice_commands(sub)
    from vault.commands.export import add_export_commands

    add_export_commands(sub)
    from vault.web.serve import add_web_commands

    add_web_commands(sub)
