"""Checking an export package on its own: no back office, no database (vault/EXPORT.md).

`verify_export(PACKAGE)` takes the package folder or its zip and, optionally, the
export public key the recipient got from the municipality (`expected_key`) and the
vault key (`vault_key`). Every problem is a `Finding` naming the package file it is
about, so a changed, added or removed file is reported by name:

1. The export manifest `export.json` is signed (`export.sig`, Ed25519) by the export
   key: the expected key when given, else the one in `export-key.pem` (then the report
   says the key was not checked against a published one). When the signature fails,
   `SHA256SUMS` tells which of the three signed-path files changed.
2. Every file `export.json` lists is present with its size and SHA-256; no other file
   is; `SHA256SUMS` is exactly the list `export.json` implies.
3. The originals are what the camera signed: `crypto.verify.verify_recording` with the
   camera key the manifest records (the key the coordinator registered); the dock's
   ingest record verifies with a dock key the manifest lists and names the same bytes.
4. `recording.mp4`: its SHA-256 is signed (2), it decodes, and every figure the
   manifest signs about it (frames, the picture's duration, size, codec, sound streams,
   sound frames and the sound's start) is what decoding gives; the duration fits the
   camera-signed timeline. With the vault key the originals are decrypted here and every
   decoded frame of the MP4, picture and sound, equals the frame decoded from the sealed
   MPEG-TS at the same instant: only then is "the MP4 is the decryption of the
   originals" proven independently of the back office's word.

A zip may be stored or compressed, in any order, with or without folder entries, or
hold the package inside one folder; what it cannot be read as is a finding that says so.

This module runs the checks and holds 1-3; reading the package and the report are
`vault.export.package`, the MP4's checks (4) `vault.export.verify_mp4`.
"""

from __future__ import annotations

import hmac
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from crypto.errors import FormatError, Tampered
from crypto.keys import VaultKey, fingerprint, verify_signature
from crypto.verify import VerifiedRecording, verify_recording
from formats.ingest_record import IngestRecordError, parse_ingest_record
from vault.export import format as fmt
from vault.export.package import ExportReport, Finding, _extract, _read, _walk
from vault.export.verify_mp4 import _mp4

__all__ = ["ExportReport", "Finding", "verify_export"]

log = logging.getLogger(__name__)


# --- the checks ------------------------------------------------------------------------------


def _signature(
    files: dict[str, Path],
    sums: dict[str, str] | None,
    actual: dict[str, str],
    expected_key: bytes | None,
    report: ExportReport,
) -> tuple[bytes, bytes] | None:
    """(export.json bytes, verifying key) when the signature holds; findings otherwise."""
    for name in (fmt.MANIFEST, fmt.SIGNATURE):
        if name not in files:
            report.bad(name, "missing: nothing in the package can be trusted without it")
    pem_key = None
    if fmt.PUBLIC_KEY in files:
        try:
            pem_key = fmt.parse_public_key_pem(_read(files[fmt.PUBLIC_KEY], fmt.MAX_PEM))
        except fmt.PackageFormatError as exc:
            report.bad(fmt.PUBLIC_KEY, str(exc))
    elif expected_key is None:
        report.bad(fmt.PUBLIC_KEY, "missing, and no --export-key given")
    if fmt.MANIFEST not in files or fmt.SIGNATURE not in files:
        return None
    key = expected_key if expected_key is not None else pem_key
    read: dict[str, bytes] = {}
    for name, limit in ((fmt.MANIFEST, fmt.MAX_JSON), (fmt.SIGNATURE, fmt.SIGNATURE_SIZE)):
        try:
            read[name] = _read(files[name], limit)
        except fmt.PackageFormatError:
            report.bad(name, f"larger than {limit} bytes: changed")
    if len(read) < 2:
        return None
    raw, sig = read[fmt.MANIFEST], read[fmt.SIGNATURE]
    if key is not None and verify_signature(key, raw, sig):
        if (
            expected_key is not None
            and pem_key is not None
            and not hmac.compare_digest(pem_key, expected_key)
        ):
            report.bad(fmt.PUBLIC_KEY, "is not the export key the manifest is signed with")
        return raw, key
    # Which file changed? The (unsigned) hash list tells, when it was not changed too.
    blamed = [
        n
        for n in (fmt.MANIFEST, fmt.SIGNATURE, fmt.PUBLIC_KEY)
        if sums is not None
        and n in sums
        and n in actual
        and not hmac.compare_digest(sums[n], actual[n])
    ]
    for name in blamed:
        report.bad(
            name,
            "changed (its SHA-256 differs from SHA256SUMS) and the export "
            "signature does not verify",
        )
    if not blamed and key is not None:
        who = (
            "the expected export key"
            if expected_key is not None
            else f"the package's export key {fingerprint(key)}"
        )
        report.bad(fmt.MANIFEST, f"signature ({fmt.SIGNATURE}) does not verify with {who}")
    return None


def _files(
    files: dict[str, Path],
    actual: dict[str, str],
    manifest: dict[str, Any],
    sums_raw: bytes | None,
    report: ExportReport,
) -> dict[str, dict[str, Any]]:
    listed: dict[str, dict[str, Any]] = {}
    for f in manifest.get("files", []):
        listed[fmt.check_path(str(f["path"]))] = f
    unread = report.files_named  # named already: a zip member that could not be read
    for path, entry in sorted(listed.items()):
        if path not in files:
            if path not in unread:
                report.bad(path, "missing (removed from the package)")
        elif files[path].stat().st_size != int(entry["size"]) or not hmac.compare_digest(
            actual[path], str(entry["sha256"])
        ):
            report.bad(path, "changed: SHA-256 differs from the signed export manifest")
    for path in sorted(files):
        if path not in listed and path not in fmt.UNLISTED:
            report.bad(path, "not part of the package (added)")
    expected = {p: str(e["sha256"]) for p, e in listed.items()}
    for name in (fmt.MANIFEST, fmt.SIGNATURE):
        expected[name] = actual[name]
    if sums_raw is None:
        if fmt.HASH_LIST not in unread:
            report.bad(fmt.HASH_LIST, "missing (removed from the package)")
    elif not hmac.compare_digest(sums_raw, fmt.render_hash_list(expected)):
        report.bad(
            fmt.HASH_LIST, "changed: differs from the hash list the signed export manifest implies"
        )
    return listed


def _originals(
    root: Path, manifest: dict[str, Any], report: ExportReport, changed: set[str]
) -> VerifiedRecording | None:
    names = [p for p in changed if p.startswith(f"{fmt.ORIGINAL_DIR}/")]
    if names:
        report.notes.append("camera signature check skipped: original files changed")
        return None
    camera = bytes.fromhex(str(manifest["camera"]["public_key"]))
    try:
        vr = verify_recording(root / fmt.ORIGINAL_DIR, camera)
    except FormatError as exc:
        name = exc.file if isinstance(exc, Tampered) else "manifest.bcm"
        report.bad(
            f"{fmt.ORIGINAL_DIR}/{name}", f"camera check failed: {type(exc).__name__}: {exc}"
        )
        return None
    rec = manifest["recording"]
    if (vr.device_id, vr.recording_id) != (
        rec["device_id"],
        rec["recording_id"],
    ) or vr.device_id != manifest["camera"]["device_id"]:
        report.bad(
            f"{fmt.ORIGINAL_DIR}/recording.hdr", "names another recording than the export manifest"
        )
        return None
    if not vr.complete:
        report.bad(f"{fmt.ORIGINAL_DIR}/manifest.bcm", "the camera's manifest has no end entry")
    report.proven.append(
        f"originals: {len(vr.segments)} segments exactly as camera "
        f"{vr.device_id} signed them (key {fingerprint(camera)}...)"
    )
    return vr


def _ingest(root: Path, manifest: dict[str, Any], report: ExportReport) -> None:
    name = f"{fmt.ORIGINAL_DIR}/{fmt.INGEST}"
    path = root / name
    if not path.exists():
        report.notes.append("no dock ingest record in the package")
        return
    docks = [bytes.fromhex(str(d["public_key"])) for d in manifest.get("trusted_docks", [])]
    try:
        rec = parse_ingest_record(_read(path, fmt.MAX_JSON), name, docks).record
        rows = [("recording.hdr", rec["header"]), ("manifest.bcm", rec["manifest"])] + [
            (str(s["name"]), s) for s in rec["segments"]
        ]
        same_recording = (rec["device_id"], rec["recording_id"]) == (
            manifest["recording"]["device_id"],
            manifest["recording"]["recording_id"],
        )
    except (IngestRecordError, KeyError, TypeError, ValueError) as exc:
        report.bad(name, f"dock ingest record: {exc}")
        return
    if not same_recording:
        report.bad(name, "dock ingest record is about another recording")
        return
    # Against the signed listing: a changed original is reported once, as itself.
    signed = {str(f["path"]): str(f["sha256"]) for f in manifest.get("files", [])}
    for fname, row in rows:
        have = signed.get(f"{fmt.ORIGINAL_DIR}/{fname}")
        if have is None or not hmac.compare_digest(have, str(row["sha256"])):
            report.bad(name, f"the dock stored another {fname} than the package holds")
            return
    report.proven.append(
        f"dock ingest record signed by dock key "
        f"{str(rec['dock_public_key'])[:16]}... names these same originals"
    )


def _check(
    root: Path, expected_key: bytes | None, vault_key: VaultKey | None, report: ExportReport
) -> None:
    files = _walk(root, report)
    actual = {p: fmt.sha256_file(f) for p, f in files.items()}
    sums_raw, sums = None, None
    try:
        if fmt.HASH_LIST in files:
            sums_raw = _read(files[fmt.HASH_LIST], fmt.MAX_JSON)
            sums = fmt.parse_hash_list(sums_raw)
    except fmt.PackageFormatError as exc:
        report.bad(fmt.HASH_LIST, str(exc))
    signed = _signature(files, sums, actual, expected_key, report)
    if signed is None:
        # Unsigned, the hash list still helps name what else changed.
        for path, digest in sorted((sums or {}).items()):
            if path not in files:
                if path not in report.files_named:
                    report.bad(path, "missing (listed in SHA256SUMS)")
            elif path not in report.files_named and not hmac.compare_digest(digest, actual[path]):
                report.bad(path, "changed (SHA-256 differs from SHA256SUMS)")
        return
    raw, key = signed
    try:
        manifest = json.loads(raw)
        if manifest.get("format") != fmt.FORMAT:
            raise ValueError(f"format is not {fmt.FORMAT}")
        if not hmac.compare_digest(bytes.fromhex(manifest["export_public_key"]), key):
            raise ValueError("names another export key than the one it is signed with")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        report.bad(fmt.MANIFEST, f"signed, but not a valid export manifest: {exc}")
        return
    report.manifest = manifest
    checked = "as expected" if expected_key else "NOT compared with a published key"
    report.proven.append(f"export manifest signed by export key {key.hex()} ({checked})")
    try:
        _files(files, actual, manifest, sums_raw, report)
    except (fmt.PackageFormatError, KeyError, TypeError, ValueError) as exc:
        report.bad(fmt.MANIFEST, f"file list: {exc}")
        return
    changed = report.files_named
    if not changed & {p for p in files if p not in fmt.UNLISTED}:
        report.proven.append(f"{len(files)} files: every one as signed, none added or missing")
    try:
        vr = _originals(root, manifest, report, changed)
        if f"{fmt.ORIGINAL_DIR}/{fmt.INGEST}" not in changed:
            _ingest(root, manifest, report)
        if fmt.MP4 not in changed and fmt.MP4 in files:
            _mp4(root, manifest, vr, vault_key, report)
    except (KeyError, TypeError, ValueError) as exc:
        # Signed but malformed: the signer wrote a manifest this reader cannot use.
        report.bad(
            fmt.MANIFEST,
            f"signed, but a field is missing or malformed: {type(exc).__name__}: {exc}",
        )
        return
    if fmt.CUSTODY in files and fmt.CUSTODY not in changed:
        try:
            custody = json.loads(_read(files[fmt.CUSTODY], fmt.MAX_JSON))
            rec = custody["recording"]
            same = (rec["device_id"], rec["recording_id"]) == (
                manifest["recording"]["device_id"],
                manifest["recording"]["recording_id"],
            ) and custody["recorded_by"]["camera"]["public_key"] == manifest["camera"]["public_key"]
        except (ValueError, KeyError, TypeError) as exc:
            report.bad(fmt.CUSTODY, f"not a custody record: {exc}")
        else:
            if custody.get("format") != fmt.CUSTODY_FORMAT or not same:
                report.bad(fmt.CUSTODY, "is not the custody record of this recording")


def verify_export(
    package: Path, *, expected_key: bytes | None = None, vault_key: VaultKey | None = None
) -> ExportReport:
    """Check a package folder or zip; the report's findings name every file at fault."""
    report = ExportReport()
    package = Path(package)
    if package.is_dir():
        _check(package, expected_key, vault_key, report)
    elif package.is_file():
        with tempfile.TemporaryDirectory(prefix="export-zip-") as tmp:
            _extract(package, Path(tmp), report)
            if not report.findings or all(f.file != package.name for f in report.findings):
                _check(Path(tmp), expected_key, vault_key, report)
    else:
        report.bad(str(package), "no such package folder or zip")
    if expected_key is None:
        report.notes.append(
            "the export key was taken from the package itself: compare its "
            "fingerprint with the key the municipality published, or pass "
            "--export-key"
        )
    return report
