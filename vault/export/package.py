"""Reading an export package on its own (vault/EXPORT.md): a folder walked, or a zip
extracted only up to the sizes `export.json` signs (a zip bomb is refused by name), and
the report every check writes its findings to.
"""

from __future__ import annotations

import json
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

from vault.export import format as fmt

COPY_BLOCK = 1 << 20


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
