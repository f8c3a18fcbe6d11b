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
"""

from __future__ import annotations

import hmac
import json
import logging
import lzma
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crypto.errors import FormatError, Tampered
from crypto.keys import VaultKey, fingerprint, verify_signature
from crypto.open import decrypt_recording
from crypto.verify import VerifiedRecording, verify_recording
from formats.ingest_record import IngestRecordError, parse_ingest_record
from vault.export import format as fmt
from vault.media import Fingerprint, MediaError, MediaFacts, measure

log = logging.getLogger(__name__)

COPY_BLOCK = 1 << 20
DURATION_SLACK = 2.0  # seconds: frame rounding and the camera's segment cut


@dataclass(frozen=True)
class Finding:
    file: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}"


@dataclass
class ExportReport:
    findings: list[Finding] = field(default_factory=list)
    proven: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    def bad(self, file: str, problem: str) -> None:
        self.findings.append(Finding(file, problem))

    @property
    def files_named(self) -> set[str]:
        return {f.file for f in self.findings}


# --- reading the package -------------------------------------------------------------------


def _walk(root: Path, report: ExportReport) -> dict[str, Path]:
    """Regular files of the package by relative path; anything else is a finding."""
    files: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            st = os.lstat(full)
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                report.bad(rel, "not a regular file (link or device): not part of a package")
                continue
            if len(files) >= fmt.MAX_FILES:
                report.bad(rel, f"more than {fmt.MAX_FILES} files: not a package")
                return files
            files[rel] = full
    return files


# What zipfile reads; a member compressed otherwise (Deflate64 from some Windows tools,
# PPMd, ...) is refused by name rather than reported as damaged.
READABLE_COMPRESSION = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}
OTHER_COMPRESSION = {6: "implode", 9: "Deflate64", 93: "Zstandard", 95: "xz", 98: "PPMd"}


def _member_names(infos: list[zipfile.ZipInfo], report: ExportReport) -> dict[str, str]:
    """Zip entry name -> package path, for the file entries of a zipped package.

    Folder entries are skipped and a leading "./" is dropped; a package zipped with its
    folder (`zip -r OM-1.zip OM-1`: every entry under one folder that holds export.json)
    is read as that folder.
    """
    names = {
        i.filename: i.filename[2:] if i.filename.startswith("./") else i.filename
        for i in infos
        if not i.is_dir()
    }
    tops = {n.split("/", 1)[0] for n in names.values() if "/" in n}
    if len(tops) == 1 and all("/" in n for n in names.values()):
        (top,) = tops
        if f"{top}/{fmt.MANIFEST}" in names.values():
            report.notes.append(f"the zip holds the package in its folder {top}/")
            names = {entry: n[len(top) + 1 :] for entry, n in names.items()}
    return names


def _clashes(names: dict[str, str], report: ExportReport) -> set[str]:
    """Package paths that are a file and also the folder of another entry, each named."""
    paths = set(names.values())
    bad: set[str] = set()
    for name in sorted(paths):
        parts = name.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if folder in paths and folder not in bad:
                bad.add(folder)
                report.bad(
                    folder, f"both a file and the folder of {name} in the zip: not a package"
                )
    return bad


def _bounded(src: Any, limit: int) -> bytes | None:
    """Up to `limit` bytes of a zip member; None if it inflates past them."""
    data = src.read(limit + 1)
    return None if len(data) > limit else bytes(data)


def _listed_sizes(
    z: zipfile.ZipFile, by_path: dict[str, zipfile.ZipInfo], report: ExportReport
) -> dict[str, int] | None:
    """The size of every file export.json lists, read from the zip first (bounded).

    These bound what is unpacked: nothing inflates past its listed size. Whether
    export.json is signed is checked afterwards on the unpacked copy; a package signed by
    a key of its own can list any size, so the total must also fit the free space.
    """
    info = by_path.get(fmt.MANIFEST)
    if info is None:
        return None
    if info.file_size > fmt.MAX_JSON:
        return None
    try:
        with z.open(info) as src:
            raw = _bounded(src, fmt.MAX_JSON)
        if raw is None:
            return None
        sizes: dict[str, int] = {}
        for f in json.loads(raw)["files"]:
            size = int(f["size"])
            if size < 0:
                raise ValueError(f"negative size for {f['path']}")
            sizes[fmt.check_path(str(f["path"]))] = size
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        zlib.error,
        lzma.LZMAError,
        fmt.PackageFormatError,
        ValueError,
        KeyError,
        TypeError,
        RuntimeError,
        NotImplementedError,
    ):
        return None  # named by the checks on the unpacked copy
    return sizes


# What a file export.json does not list may hold at most (export.json lists the rest).
UNLISTED_LIMITS = {
    fmt.MANIFEST: fmt.MAX_JSON,
    fmt.SIGNATURE: fmt.SIGNATURE_SIZE,
    fmt.HASH_LIST: fmt.MAX_JSON,
}


def _extract(zip_path: Path, dest: Path, report: ExportReport) -> None:
    """Extract a zipped package, refusing names outside it and bounding every size.

    export.json is read from the zip first (bounded); a member is unpacked only up to
    the size export.json lists for it (a few small files it does not list, up to their
    format's limit), so a member that inflates past it is refused by name before or as
    it goes past, and the total never exceeds what export.json lists, nor the free
    space. Members may be stored or compressed (deflate, bzip2, lzma), in any order,
    with or without folder entries; encrypted members, other compression methods, links
    and a name that is both a file and a folder are findings that say so.
    """
    try:
        z = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        report.bad(zip_path.name, f"not a readable zip ({exc})")
        return
    with z:
        infos = z.infolist()
        if len(infos) > fmt.MAX_FILES:
            report.bad(zip_path.name, f"more than {fmt.MAX_FILES} entries")
            return
        names = _member_names(infos, report)
        clashing = _clashes(names, report)
        by_path = {names[i.filename]: i for i in infos if not i.is_dir()}
        listed = _listed_sizes(z, by_path, report)
        if listed is None:
            listed = {}
            if fmt.MANIFEST in by_path:
                report.notes.append(
                    f"{fmt.MANIFEST} could not be read from the zip: only the files it "
                    "need not list were unpacked"
                )
        signed_total = sum(listed.values()) + sum(UNLISTED_LIMITS.values())
        free = shutil.disk_usage(dest).free
        if sum(listed.values()) > free:
            report.bad(
                fmt.MANIFEST,
                f"lists {sum(listed.values())} bytes, more than the {free} bytes free "
                f"in {dest.parent}: not unpacked",
            )
            return
        total = 0
        seen: set[str] = set()
        for info in infos:
            if info.is_dir():
                continue
            name = names[info.filename]
            if name in clashing:
                continue
            try:
                fmt.check_path(name)
            except fmt.PackageFormatError:
                report.bad(name, "not a package file name (outside the package?)")
                continue
            if name in seen:
                report.bad(name, "in the zip twice")
                continue
            seen.add(name)
            if stat.S_ISLNK(info.external_attr >> 16):
                report.bad(name, "a symbolic link in the zip: not part of a package")
                continue
            if info.flag_bits & 0x1:
                report.bad(name, "encrypted in the zip: a package is never encrypted")
                continue
            if info.compress_type not in READABLE_COMPRESSION:
                method = OTHER_COMPRESSION.get(info.compress_type, "an unknown method")
                report.bad(
                    name,
                    f"compressed with {method} (zip method {info.compress_type}), which this "
                    "verifier does not read: unzip the package with a tool that does and "
                    "verify the folder",
                )
                continue
            limit = listed.get(name, UNLISTED_LIMITS.get(name))
            if limit is None:
                report.bad(name, "not part of the package (added): not unpacked")
                continue
            if info.file_size > limit:
                report.bad(
                    name,
                    f"unpacks to {info.file_size} bytes, more than the {limit} that "
                    f"{fmt.MANIFEST} allows: not unpacked",
                )
                continue
            target = dest / name
            try:
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                with z.open(info) as src, open(target, "xb") as out:
                    written = _copy_bounded(src, out, limit)
            except (
                zipfile.BadZipFile,
                OSError,
                ValueError,
                EOFError,
                zlib.error,
                lzma.LZMAError,
            ) as exc:
                # A changed byte inside a member fails its CRC-32 (or decompression) here.
                target.unlink(missing_ok=True)
                report.bad(name, f"damaged in the zip ({exc})")
                continue
            if written is None:
                target.unlink(missing_ok=True)
                report.bad(
                    name,
                    f"inflates past the {limit} bytes {fmt.MANIFEST} allows: refused (a zip bomb?)",
                )
                continue
            total += written
            if total > signed_total:  # cannot happen with each member bounded; kept as a guard
                report.bad(name, f"the zip unpacks to more than the {signed_total} bytes listed")
                return


def _copy_bounded(src: Any, out: Any, limit: int) -> int | None:
    """Copy at most `limit` bytes; None (having written no more) if `src` holds more."""
    written = 0
    while True:
        block = src.read(min(COPY_BLOCK, limit - written + 1))
        if not block:
            return written
        if written + len(block) > limit:
            return None
        out.write(block)
        written += len(block)


def _read(path: Path, limit: int) -> bytes:
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise fmt.PackageFormatError(f"{path.name}: larger than {limit} bytes")
    return data


def _unnamed_file() -> int:
    """A read-write file without a name (O_TMPFILE) for the decrypted originals.

    It has no name in any folder, so it is gone when closed, and also when the process
    is killed (SIGKILL) halfway: no plaintext is left behind in the temp folder. Where
    the file system cannot make one, an anonymous memory file (memfd) holds it instead.
    """
    try:
        return os.open(tempfile.gettempdir(), os.O_TMPFILE | os.O_RDWR, 0o600)
    except OSError:
        return os.memfd_create("verify-export-ts", os.MFD_CLOEXEC)


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


def _mp4(
    root: Path,
    manifest: dict[str, Any],
    vr: VerifiedRecording | None,
    vault_key: VaultKey | None,
    report: ExportReport,
) -> None:
    signed = manifest["mp4"]
    path = root / fmt.MP4
    try:
        facts, mp4_print = measure(path, name=fmt.MP4, fingerprint=vault_key is not None)
    except MediaError as exc:
        report.bad(fmt.MP4, str(exc))
        return
    differ = _facts_differ(facts, signed, report)
    if differ:
        report.bad(fmt.MP4, f"differs from the signed figures: {'; '.join(differ)}")
        return
    timeline = ""
    if vr is not None and vr.segments:
        # The camera signed each segment's first timestamp, and the end time unless the
        # recording was closed by power-cut recovery (RECOVERED_END: end unknown); then
        # the last segment bounds it, as no segment holds more than MAX_SEGMENT_SECONDS.
        first, last = vr.segments[0], vr.segments[-1]
        at_least = (last.start_pts - first.start_pts) / 90_000
        if vr.ended_utc is not None:
            at_most = vr.ended_utc - first.start_utc
            basis = "the first segment's start to the signed end"
        else:
            at_most = at_least + fmt.MAX_SEGMENT_SECONDS
            basis = (
                f"recovered after a power cut: the last segment's start plus "
                f"{fmt.MAX_SEGMENT_SECONDS} s"
            )
        if facts.duration_seconds + DURATION_SLACK < at_least or (
            facts.duration_seconds > at_most + DURATION_SLACK
        ):
            report.bad(
                fmt.MP4,
                f"lasts {facts.duration_seconds} s; the camera's signed "
                f"timeline allows {at_least:.1f}..{at_most:.1f} s ({basis})",
            )
            return
        timeline = f", within the camera's timeline ({at_least:.1f}..{at_most:.1f} s)"
    sound = (
        "no sound"
        if not facts.audio_streams
        else f"sound from {facts.audio_start_seconds} s ({facts.audio_frames} frames)"
    )
    report.proven.append(
        f"recording.mp4: signed SHA-256, decodes to {facts.video_frames} "
        f"frames, {facts.duration_seconds} s, {facts.width}x{facts.height} "
        f"{facts.codec}, {sound}, as signed{timeline}"
    )
    if vault_key is None:
        report.notes.append(
            "without --vault-key the MP4 is not compared with the "
            "decrypted originals: that it is their decryption rests on "
            "the export signature"
        )
        return
    if vr is None:
        report.notes.append("MP4 not compared with the originals: they did not verify")
        return
    fd = _unnamed_file()
    try:
        ts = Path(f"/proc/self/fd/{fd}")
        try:
            with os.fdopen(os.dup(fd), "wb") as out:
                decrypt_recording(
                    root / fmt.ORIGINAL_DIR,
                    vault_key,
                    bytes.fromhex(str(manifest["camera"]["public_key"])),
                    out,
                )
            _, ts_print = measure(
                ts, name="recording.ts", container_format="mpegts", fingerprint=True
            )
        except (FormatError, MediaError) as exc:
            report.bad(
                f"{fmt.ORIGINAL_DIR}/recording.hdr",
                f"cannot decrypt with this vault key: {type(exc).__name__}: {exc}",
            )
            return
        ts_sha = fmt.sha256_file(ts)
    finally:
        os.close(fd)
    if not hmac.compare_digest(ts_sha, str(signed.get("decrypted_ts_sha256", ""))):
        report.bad(
            fmt.MANIFEST,
            "the decrypted originals differ from the MPEG-TS the "
            "manifest says the MP4 was made from",
        )
    unequal = _first_difference(ts_print, mp4_print)
    if unequal:
        report.bad(fmt.MP4, f"is not the decryption of the originals: {unequal}")
        return
    report.proven.append(
        f"recording.mp4 is the decryption of the originals: all "
        f"{len(mp4_print.video)} decoded frames of picture and {len(mp4_print.audio)} of "
        "sound, and the time of each, equal the sealed MPEG-TS's"
    )


# The MP4's time bases round what the TS says in 1/90000 s; in packages made before the
# MP4's movie time scale was 1/90000 s, its edit list placed late sound in 1/1000 s (up
# to 1 ms off), so those verify too.
TIME_SLACK_MICROSECONDS = 2_000
SECONDS_SLACK = 0.01  # signed seconds are rounded to 1 ms


def _facts_differ(facts: MediaFacts, signed: dict[str, Any], report: ExportReport) -> list[str]:
    """Each signed figure of the MP4 that decoding does not give, as 'what: have, signed'."""
    differ = []
    for name in ("video_frames", "width", "height", "codec", "audio_streams"):
        have, want = getattr(facts, name), signed[name]
        if have != type(have)(want):
            differ.append(f"{name} {have} decoded, {want} signed")
    seconds: list[tuple[str, float | None, Any]] = [
        ("duration_seconds", facts.duration_seconds, signed["duration_seconds"])
    ]
    if "audio_frames" in signed:
        if facts.audio_frames != int(signed["audio_frames"]):
            differ.append(
                f"audio_frames {facts.audio_frames} decoded, {signed['audio_frames']} signed"
            )
        seconds.append(
            ("audio_start_seconds", facts.audio_start_seconds, signed["audio_start_seconds"])
        )
    else:
        report.notes.append(
            "the manifest predates signed sound figures: the sound's frame count and "
            "start were not compared (audio_streams was)"
        )
    for name, have_s, want_s in seconds:
        if (have_s is None) != (want_s is None) or (
            have_s is not None and abs(have_s - float(want_s)) > SECONDS_SLACK
        ):
            differ.append(f"{name} {have_s} decoded, {want_s} signed")
    return differ


def _first_difference(sealed: Fingerprint, mp4: Fingerprint) -> str:
    """Where the MP4's picture or sound first differs from the sealed recording's, or ''."""
    for kind, want, have in (
        ("picture", sealed.video, mp4.video),
        ("sound", sealed.audio, mp4.audio),
    ):
        for i, ((t0, d0), (t1, d1)) in enumerate(zip(want, have, strict=False)):
            if not hmac.compare_digest(d0, d1):
                return f"{kind} frame {i} differs"
            if abs(t0 - t1) > TIME_SLACK_MICROSECONDS:
                return (
                    f"{kind} frame {i} is at {t1 / 1e6:.3f} s in the MP4, "
                    f"{t0 / 1e6:.3f} s in the originals"
                )
        if len(want) != len(have):
            return f"{len(have)} frames of {kind} in the MP4, {len(want)} in the originals"
    return ""


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
