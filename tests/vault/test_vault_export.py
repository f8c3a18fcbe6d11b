"""The prosecutor's package: made through the service layer by the roles the policy names,
checked by `verify-export` with nothing but the package, and every change named by file."""

from __future__ import annotations

import json
import os
import stat
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from export_support import CAMERA, World, copy_package, export, make_world, resign

from bodycam_cli import main
from vault.errors import PermissionRefused
from vault.export import format as fmt
from vault.export.verify import verify_export


@pytest.fixture
def world(db: str, tmp_path: Path, clock: Any) -> World:
    return make_world(tmp_path, clock, "heusden")


@pytest.fixture
def package(world: World, tmp_path: Path) -> Path:
    out = tmp_path / "OM-2026-0042"
    export(world, "u-privacy_officer", out)
    return out


def _files(pkg: Path) -> list[str]:
    return sorted(p.relative_to(pkg).as_posix() for p in pkg.rglob("*") if p.is_file())


def test_privacy_officer_hands_over_a_package_that_verifies_on_its_own(
    world: World, tmp_path: Path
) -> None:
    from vault_support import actor

    from vault.audit.models import AuditEntry
    from vault.catalog.models import Hold
    from vault.viewing.rules import viewing_pair_check

    # Viewed in a pair first: the custody record lists the viewing.
    viewing_pair_check(
        recording=world.recording,
        purpose="criminal_investigation",
        first=actor("u-privacy_officer"),
        second=actor("u-coordinator"),
        clock=world.clock,
    )
    package = tmp_path / "OM-2026-0042"
    export(world, "u-privacy_officer", package)

    rec = world.recording
    assert _files(package) == sorted(
        [
            "SHA256SUMS",
            "custody.json",
            "export-key.pem",
            "export.json",
            "export.sig",
            "original/ingest.json",
            "original/manifest.bcm",
            "original/recording.hdr",
            "original/seg-000000.bcs",
            "recording.mp4",
        ]
    )
    # The originals are the stored objects, byte for byte.
    for seg in rec.segments.all():
        assert (package / "original" / seg.name).read_bytes() == world.site.store.get_bytes(
            seg.store_key, 1 << 24
        )
    assert (package / "original" / "ingest.json").read_bytes() == world.site.store.get_bytes(
        rec.ingest_record_key, 1 << 24
    )
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in package.rglob("*"))

    report = verify_export(
        package, expected_key=world.export_key.public_bytes(), vault_key=world.site.vault_key
    )
    assert report.ok, report.findings
    proven = "\n".join(report.proven)
    assert f"exactly as camera {CAMERA} signed" in proven
    assert "dock ingest record signed by dock key" in proven
    assert "is the decryption of the originals: all 60 decoded frames" in proven

    manifest = json.loads((package / "export.json").read_bytes())
    assert manifest["camera"]["public_key"] == world.site.camera(CAMERA).public_hex
    assert manifest["mp4"]["video_frames"] == 60 and manifest["reference"] == "OM-2026-0042"
    custody = json.loads((package / "custody.json").read_bytes())
    assert custody["recorded_by"]["officer"]["code"] == "boa-7"
    assert custody["ingested_by"]["dock"] == "dock-1"
    assert [h["kind"] for h in custody["holds"]] == ["prosecutor"]
    actions = [e["action"] for e in custody["events"]]
    assert "viewing.pair" in actions and "hold.place" in actions
    assert actions.index("viewing.pair") < actions.index("hold.place")
    # A prosecution hold stops the purge; the hand-over is audited with the manifest's hash.
    hold = Hold.objects.get(recording=rec, kind="prosecutor", lifted_at__isnull=True)
    assert hold.reference == "OM-2026-0042"
    entry = AuditEntry.objects.get(action="recording.export", result="ok")
    assert json.loads(entry.detail)["export_json_sha256"] == fmt.sha256_file(
        package / "export.json"
    )
    # A second package for the same claim keeps the one hold.
    export(world, "u-privacy_officer", tmp_path / "second.zip")
    assert Hold.objects.filter(recording=rec, kind="prosecutor").count() == 1


def test_who_may_hand_over_follows_the_policy(world: World, tmp_path: Path) -> None:
    from vault.audit.models import AuditEntry

    # Heusden names the cluster manager as the privacy officer's deputy.
    export(world, "u-cluster_manager", tmp_path / "deputy")
    assert verify_export(tmp_path / "deputy").ok
    for role in ("coordinator", "municipal_secretary", "safety_coordinator", "officer"):
        before = AuditEntry.objects.filter(actor=f"u-{role}", result="refused").count()
        with pytest.raises(PermissionRefused):
            export(world, f"u-{role}", tmp_path / role)
        assert not (tmp_path / role).exists()
        assert AuditEntry.objects.filter(actor=f"u-{role}", result="refused").count() == before + 1


def test_utrecht_privacy_officer_only_and_the_officer_is_informed(
    db: str, tmp_path: Path, clock: Any
) -> None:
    from vault.catalog.models import Notification

    world = make_world(tmp_path, clock, "utrecht")
    with pytest.raises(PermissionRefused, match="lets only privacy_officer"):
        export(world, "u-cluster_manager", tmp_path / "cm")
    result = export(
        world, "u-privacy_officer", tmp_path / "po", basis="police_report", reference="PV-77"
    )
    assert result.informed == ["officer boa-7"]
    events = set(Notification.objects.filter(officer=world.officer).values_list("event", flat=True))
    assert events == {"hold.prosecutor", "recording.export"}


def _flip(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def test_every_changed_added_or_removed_file_is_named(
    package: Path, tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    key = world.export_key.public_bytes().hex()
    names = _files(package)
    for i, name in enumerate(names):
        pkg = copy_package(package, tmp_path / f"flip-{i}")
        _flip(pkg / name)
        report = verify_export(pkg, expected_key=bytes.fromhex(key))
        assert not report.ok and report.files_named == {name}, (name, report.findings)
        assert main(["vault", "verify-export", str(pkg), "--export-key", key]) == 1
        assert f"FAILED {name}:" in capsys.readouterr().out
    # Without --export-key too (the key then comes from the package and is reported).
    pkg = copy_package(package, tmp_path / "flip-nokey")
    _flip(pkg / "export-key.pem", 40)
    assert verify_export(pkg).files_named == {"export-key.pem"}
    for i, name in enumerate(names):
        pkg = copy_package(package, tmp_path / f"rm-{i}")
        (pkg / name).unlink()
        report = verify_export(pkg, expected_key=bytes.fromhex(key))
        assert not report.ok and name in report.files_named, (name, report.findings)
    for name in ("export.sig", "SHA256SUMS", "recording.mp4"):  # a byte appended
        pkg = copy_package(package, tmp_path / f"grow-{name}")
        with open(pkg / name, "ab") as f:
            f.write(b"\n")
        assert verify_export(pkg, expected_key=bytes.fromhex(key)).files_named == {name}
    for extra in ("notes.txt", "original/seg-000001.bcs"):
        pkg = copy_package(package, tmp_path / f"add-{extra.replace('/', '-')}")
        (pkg / extra).write_bytes(b"x" * 100)
        report = verify_export(pkg, expected_key=bytes.fromhex(key))
        assert report.files_named == {extra}, report.findings
        assert main(["vault", "verify-export", str(pkg)]) == 1
        assert f"FAILED {extra}: not part of the package" in capsys.readouterr().out
    assert main(["vault", "verify-export", str(package), "--export-key", key]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("OK ")


def test_a_zipped_package_verifies_and_a_changed_member_is_named(
    world: World, tmp_path: Path
) -> None:
    out = tmp_path / "handover.zip"
    export(world, "u-privacy_officer", out)
    assert verify_export(out, vault_key=world.site.vault_key).ok
    with zipfile.ZipFile(out) as z:
        infos = z.infolist()
    assert "recording.mp4" in [i.filename for i in infos]
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
    for info in infos:
        raw = bytearray(out.read_bytes())
        # the member's data follows its 30-byte local header, name and extra field
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
        raw[start + info.file_size // 2] ^= 0x01
        (tmp_path / "bad.zip").write_bytes(bytes(raw))
        report = verify_export(tmp_path / "bad.zip")
        assert not report.ok and info.filename in report.files_named, info.filename


def _rezip(
    package: Path,
    dest: Path,
    *,
    compression: int = zipfile.ZIP_STORED,
    reverse: bool = False,
    folder_entries: bool = False,
    top: str = "",
) -> Path:
    """The package folder zipped the way other tools do it."""
    names = _files(package)
    if reverse:
        names.reverse()
    with zipfile.ZipFile(dest, "w", compression=compression) as z:
        if folder_entries:
            for folder in ([top.rstrip("/")] if top else []) + [f"{top}original"]:
                z.writestr(zipfile.ZipInfo(f"{folder}/"), b"")
        for name in names:
            # writestr keeps the name as given (write() would drop a leading "./")
            info = zipfile.ZipInfo(f"{top}{name}", (2026, 11, 2, 9, 0, 0))
            info.compress_type = compression
            z.writestr(info, (package / name).read_bytes())
    return dest


@pytest.mark.parametrize(
    "variant",
    [
        dict(compression=zipfile.ZIP_DEFLATED),
        dict(compression=zipfile.ZIP_BZIP2),
        dict(compression=zipfile.ZIP_LZMA),
        dict(reverse=True),
        dict(folder_entries=True),
        dict(top="OM-2026-0042/", folder_entries=True, compression=zipfile.ZIP_DEFLATED),
        dict(top="./"),
    ],
    ids=["deflated", "bzip2", "lzma", "reordered", "folder-entries", "in-its-folder", "dot-slash"],
)
def test_zips_made_by_other_tools_verify(
    package: Path, world: World, tmp_path: Path, variant: dict[str, Any]
) -> None:
    out = _rezip(package, tmp_path / "other.zip", **variant)
    key = world.export_key.public_bytes()
    report = verify_export(out, expected_key=key, vault_key=world.site.vault_key)
    assert report.ok, report.findings
    assert any("is the decryption of the originals" in p for p in report.proven)
    if variant.get("top") == "OM-2026-0042/":
        assert "the zip holds the package in its folder OM-2026-0042/" in report.notes
    # A changed byte in a compressed member is still named.
    with zipfile.ZipFile(out) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("custody.json"))
    raw = bytearray(out.read_bytes())
    raw[info.header_offset + 30 + len(info.filename) + len(info.extra) + 20] ^= 0x01
    (tmp_path / "bad.zip").write_bytes(bytes(raw))
    assert verify_export(tmp_path / "bad.zip", expected_key=key).files_named == {"custody.json"}


def _patch_entry(zip_path: Path, name: str, *, flag: int = 0, method: int | None = None) -> None:
    """Set a general-purpose flag bit or the compression method of one entry, in its local
    header and in the central directory (as an encrypting or Deflate64 tool writes them)."""
    raw = bytearray(zip_path.read_bytes())
    with zipfile.ZipFile(zip_path) as z:
        local = z.getinfo(name).header_offset
    # flags and method: at 6 in the local header, at 8 in the central directory record
    for at in (local + 6, _central_of(raw, name) + 8):
        bits, kind = struct.unpack_from("<HH", raw, at)
        struct.pack_into("<HH", raw, at, bits | flag, kind if method is None else method)
    zip_path.write_bytes(bytes(raw))


def _central_of(raw: bytearray, name: str) -> int:
    """Offset of the central directory record of `name`."""
    at = raw.rindex(b"PK\x05\x06")
    start = int.from_bytes(raw[at + 16 : at + 20], "little")
    while True:
        size = int.from_bytes(raw[start + 28 : start + 30], "little")
        extra = int.from_bytes(raw[start + 30 : start + 32], "little")
        comment = int.from_bytes(raw[start + 32 : start + 34], "little")
        if raw[start + 46 : start + 46 + size] == name.encode():
            return start
        start += 46 + size + extra + comment


def test_zips_that_cannot_be_read_are_refused_by_name(
    package: Path, world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = world.export_key.public_bytes()
    cases = {
        "encrypted": (dict(flag=0x1), "encrypted in the zip: a package is never encrypted"),
        "deflate64": (dict(method=9), "compressed with Deflate64 (zip method 9)"),
    }
    for case, (patch, message) in cases.items():
        out = _rezip(package, tmp_path / f"{case}.zip")
        _patch_entry(out, "custody.json", **patch)
        report = verify_export(out, expected_key=key)
        assert [str(f) for f in report.findings if f.file == "custody.json"] == [
            f"custody.json: {message}"
            + (
                ""
                if case == "encrypted"
                else ", which this verifier does not read: unzip "
                "the package with a tool that does and verify the folder"
            )
        ], report.findings
        assert main(["vault", "verify-export", str(out)]) == 1
        assert f"FAILED custody.json: {message}" in capsys.readouterr().out
    link = _rezip(package, tmp_path / "link.zip")
    with zipfile.ZipFile(link, "a") as z:
        info = zipfile.ZipInfo("notes.txt")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, "/etc/passwd")
    report = verify_export(link, expected_key=key)
    assert [str(f) for f in report.findings] == [
        "notes.txt: a symbolic link in the zip: not part of a package"
    ]


def test_what_each_mode_proves_about_the_mp4(world: World, package: Path, tmp_path: Path) -> None:
    """An MP4 of another video with the same length, re-signed with the export key: the
    signature and the frame count hold, only the vault-key mode sees the difference."""
    pkg = copy_package(package, tmp_path / "swapped")
    other = tmp_path / "other.ts"
    # A different picture, same frame count and size.
    import av
    import numpy as np

    from vault.media import remux_to_mp4

    with av.open(str(other), "w", format="mpegts") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(60):
            img = np.full((48, 64, 3), 255 - (i * 8) % 255, dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    (pkg / "recording.mp4").unlink()
    remux_to_mp4(other, pkg / "recording.mp4")
    manifest = json.loads((pkg / "export.json").read_bytes())
    from vault.media import measure

    manifest["mp4"].update(measure(pkg / "recording.mp4")[0].as_json())
    (pkg / "export.json").write_text(json.dumps(manifest))
    resign(pkg, world.export_key)
    key = world.export_key.public_bytes()
    assert verify_export(pkg, expected_key=key).ok  # the signer's word only
    report = verify_export(pkg, expected_key=key, vault_key=world.site.vault_key)
    assert report.files_named == {"recording.mp4"}
    assert "is not the decryption of the originals" in str(report.findings[0])


def test_originals_are_checked_against_the_camera_not_the_export_signature(
    world: World, package: Path, tmp_path: Path
) -> None:
    from crypto.keys import SigningKey

    pkg = copy_package(package, tmp_path / "other-camera")
    manifest = json.loads((pkg / "export.json").read_bytes())
    manifest["camera"]["public_key"] = SigningKey.generate().public_bytes().hex()
    (pkg / "export.json").write_text(json.dumps(manifest))
    resign(pkg, world.export_key)
    report = verify_export(pkg, expected_key=world.export_key.public_bytes())
    # custody.json still names the registered key, so it disagrees too
    assert report.files_named == {"original/manifest.bcm", "custody.json"}
    assert any("NotSignedByDevice" in str(f) for f in report.findings)
    # And a package signed by another key than the published one is refused.
    report = verify_export(package, expected_key=SigningKey.generate().public_bytes())
    assert not report.ok and "export.json" in report.files_named


def _spec() -> str:
    return (Path(__file__).parents[2] / "vault" / "EXPORT.md").read_text()


def _spec_block(title: str) -> str:
    """The fenced block (```sh or ```python) after `<!-- title -->` in vault/EXPORT.md."""
    spec = _spec()
    start = spec.index(f"<!-- {title} -->")
    fence = spec[start:].split("```", 1)[1]
    return fence.split("\n", 1)[1].split("```", 1)[0]


def test_the_spec_recipe_checks_a_package_with_standard_tools(
    package: Path, world: World, tmp_path: Path
) -> None:
    """vault/EXPORT.md's own shell recipe: openssl for the signature, sha256sum -c for the
    hash list, and a listing for added files; it fails on a changed file."""
    import subprocess

    recipe = _spec_block("recipe")
    assert "sha256sum" in recipe and "openssl pkeyutl -verify" in recipe

    def run(pkg: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", recipe],
            cwd=pkg,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "LC_ALL": "C"},
        )

    ok = run(package)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.splitlines()[0] == world.export_key.public_bytes().hex()  # step 1
    assert "Signature Verified Successfully" in ok.stdout
    assert "original/seg-000000.bcs: OK" in ok.stdout
    for name in ("original/seg-000000.bcs", "export.json", "recording.mp4"):
        pkg = copy_package(package, tmp_path / f"r-{name.replace('/', '-')}")
        _flip(pkg / name)
        bad = run(pkg)
        assert bad.returncode != 0, name
        assert (
            name in bad.stdout + bad.stderr
            or "Signature Verification Failure" in bad.stdout + bad.stderr
        )
    pkg = copy_package(package, tmp_path / "r-added")
    (pkg / "extra.bin").write_bytes(b"x")
    assert run(pkg).returncode != 0
    # The Python snippet with the independent `cryptography` package.
    snippet = _spec_block("python")
    done = subprocess.run(
        [sys.executable, "-c", snippet], cwd=package, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "signature OK" in done.stdout, done.stderr


def _break_store(world: World, how: str) -> None:
    """What can go wrong between the hold and the package, in the store itself."""
    seg = world.recording.segments.get()
    stored = world.site.store.root / seg.store_key
    if how == "segment missing":
        stored.unlink()
    elif how == "segment changed":
        os.chmod(stored, 0o644)
        _flip(stored)


@pytest.mark.parametrize("out_name", ["OM-2026-0042", "OM-2026-0042.zip"])
@pytest.mark.parametrize("how", ["segment missing", "segment changed", "picture undecodable"])
def test_a_failed_export_leaves_no_package_and_keeps_the_hold(
    db: str, tmp_path: Path, clock: Any, how: str, out_name: str
) -> None:
    from vault.audit.models import AuditEntry
    from vault.catalog.models import Hold
    from vault.export.services import ExportFailed

    # Random bytes sealed as the camera seals: the originals verify, the picture does not.
    ts = os.urandom(20_000) if how == "picture undecodable" else None
    world = make_world(tmp_path, clock, ts=ts)
    _break_store(world, how)
    handover = tmp_path / "handover"
    handover.mkdir()
    work = tmp_path / "work"
    with pytest.raises(ExportFailed) as failed:
        export(world, "u-privacy_officer", handover / out_name, work_dir=work)
    hold = Hold.objects.get(recording=world.recording, kind="prosecutor")
    assert hold.lifted_at is None and hold.reference == "OM-2026-0042"
    message = str(failed.value)
    assert "\n" not in message and message.startswith(f"{world.recording}: ")
    assert message.endswith(
        f". No package was written; the prosecution hold {hold.id} (OM-2026-0042), placed "
        "for this export, stays placed: the claim stands without a package"
    ), message
    assert not message.startswith(f"{world.recording}: {world.recording}")  # named once
    # Nothing at --out, no staging folder, nothing decrypted left in the work folder.
    assert list(handover.iterdir()) == [] and list(work.iterdir()) == []
    placed = AuditEntry.objects.get(action="hold.place", target=str(world.recording))
    failure = AuditEntry.objects.get(action="recording.export")
    assert placed.result == "ok" and json.loads(placed.detail)["hold"] == hold.id
    assert failure.result == "failed" and failure.seq > placed.seq
    detail = json.loads(failure.detail)
    assert detail["hold"] == hold.id and detail["hold_placed_now"] is True
    assert detail["reference"] == "OM-2026-0042"


def test_a_failed_export_under_an_existing_hold_says_it_stays(
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through the command line: one line naming the hold that was already there."""
    from export_support import site_home
    from vault_support import PASSWORD, actor

    from vault.audit.models import AuditEntry
    from vault.catalog.services import hold_place

    hold = hold_place(
        actor=actor("u-privacy_officer"),
        recording=world.recording,
        kind="prosecutor",
        reference="OM-7",
        reason="claimed by the prosecutor",
        store=world.site.store,
        clock=world.clock,
    )
    _break_store(world, "segment missing")
    monkeypatch.setenv("BODYCAM_VAULT_PASSWORD", PASSWORD)
    home = site_home(world, tmp_path / "home")
    out = tmp_path / "om-7.zip"
    argv = ["vault", "export", str(world.recording), "--home", str(home)]
    argv += ["--user", "u-privacy_officer", "--out", str(out), "--reference", "OM-7"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("bodycam: error: ")
    assert err.endswith(
        f". No package was written; the prosecution hold {hold.id} (OM-7) stays placed: "
        "the claim stands without a package"
    ), err
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if ".part" in p.name] == []
    failure = AuditEntry.objects.get(action="recording.export")
    assert failure.result == "failed"
    assert json.loads(failure.detail)["hold"] == hold.id
    assert json.loads(failure.detail)["hold_placed_now"] is False


def _run_snippet(snippet: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", snippet, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_spec_checks_the_dock_ingest_record_on_its_own(
    package: Path, world: World, tmp_path: Path
) -> None:
    """EXPORT.md's ingest record section is enough to check it: its Python (with the
    independent `cryptography` package) verifies the dock's signature and the hashes."""
    snippet = _spec_block("ingest")
    done = _run_snippet(snippet, package)
    assert done.returncode == 0, done.stderr
    assert f"ingest record OK, dock {world.site.dock_key.public_bytes().hex()}" in done.stdout
    # A changed signed field, a segment hash, or a dock the manifest does not list: refused.
    record_path = Path(fmt.ORIGINAL_DIR) / fmt.INGEST
    for change in ("ingested_utc", "segment", "dock"):
        pkg = copy_package(package, tmp_path / f"ingest-{change}")
        doc = json.loads((pkg / record_path).read_bytes())
        if change == "ingested_utc":
            doc["record"]["ingested_utc"] += 1
        elif change == "segment":
            doc["record"]["segments"][0]["sha256"] = "0" * 64
        else:
            manifest = json.loads((pkg / fmt.MANIFEST).read_bytes())
            manifest["trusted_docks"] = []
            (pkg / fmt.MANIFEST).write_text(json.dumps(manifest))
        (pkg / record_path).write_text(json.dumps(doc))
        assert _run_snippet(snippet, pkg).returncode != 0, change


def test_the_spec_checks_the_camera_key_against_the_published_registry(
    package: Path, world: World, tmp_path: Path
) -> None:
    from vault_support import actor

    from crypto.keys import SigningKey, write_public_key
    from formats.registry import MAX_REGISTRY
    from vault.registry.services import registry_publish

    publication = registry_publish(
        actor=actor("setup"),
        store=world.site.store,
        signing_key=world.site.registry_key,
        site=world.site.site,
        clock=world.clock,
    )
    raw = world.site.store.get_bytes(publication.store_key, MAX_REGISTRY)
    registry = tmp_path / "registry.json"
    registry.write_bytes(raw)
    registry_pub = tmp_path / "registry.pub"
    write_public_key(registry_pub, world.site.registry_key.public_bytes(), "registry")
    snippet = _spec_block("registry")
    done = _run_snippet(snippet, package, str(registry), str(registry_pub))
    assert done.returncode == 0, done.stderr
    assert f"camera {CAMERA} registered with this key in registry version 1" in done.stdout

    someone = tmp_path / "someone.pub"
    write_public_key(someone, SigningKey.generate(kind="registry").public_bytes(), "registry")
    assert _run_snippet(snippet, package, str(registry), str(someone)).returncode != 0
    # A package whose camera key is not the registered one.
    pkg = copy_package(package, tmp_path / "other-camera-key")
    manifest = json.loads((pkg / fmt.MANIFEST).read_bytes())
    manifest["camera"]["public_key"] = SigningKey.generate().public_bytes().hex()
    (pkg / fmt.MANIFEST).write_text(json.dumps(manifest))
    done = _run_snippet(snippet, pkg, str(registry), str(registry_pub))
    assert done.returncode != 0 and "camera key not registered" in done.stderr


def test_the_spec_states_the_bounds_the_verifier_applies() -> None:
    from vault.export import verify_mp4

    spec = " ".join(_spec().split())
    assert f"that span plus {fmt.MAX_SEGMENT_SECONDS} s" in spec
    assert f"with {verify_mp4.DURATION_SLACK:g} s slack" in spec
    assert f"times may differ by {verify_mp4.TIME_SLACK_MICROSECONDS // 1000} ms" in spec
    assert f"within {verify_mp4.SECONDS_SLACK:g} s" in spec
    assert f"more than {fmt.MAX_FILES:,} entries" in spec
    assert "more bytes than export.json lists for it" in spec


def test_incomplete_or_purged_recordings_and_existing_outputs_are_refused(
    world: World, package: Path, tmp_path: Path
) -> None:
    from vault.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="exists"):
        export(world, "u-privacy_officer", package)
    with pytest.raises(InvalidRequest, match="basis"):
        export(world, "u-privacy_officer", tmp_path / "x", basis="curiosity")
    # nothing half-made is left behind
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_export_and_verify_from_the_command_line(
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`bodycam vault export` as the privacy officer; `verify-export` in a fresh process
    with no back office at all (no site folder, no database, no Django settings)."""
    import subprocess

    from export_support import site_home
    from vault_support import PASSWORD

    monkeypatch.setenv("BODYCAM_VAULT_PASSWORD", PASSWORD)
    home = site_home(world, tmp_path / "home")
    out = tmp_path / "to-om.zip"
    assert (
        main(
            [
                "vault",
                "export",
                str(world.recording),
                "--home",
                str(home),
                "--user",
                "u-privacy_officer",
                "--out",
                str(out),
                "--reference",
                "OM-9",
                "--basis",
                "police_report",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "package for police report OM-9" in printed and "prosecution hold" in printed
    assert stat.S_IMODE((home / "export.key").stat().st_mode) == 0o600
    # Nothing decrypted stays behind: the work folder is empty, no staging folder is left.
    assert list((home / "work").iterdir()) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
    assert main(["vault", "export-key", "--home", str(home), "--user", "u-privacy_officer"]) == 0
    shown = capsys.readouterr()
    # `bodycam vault export-key > key.pem`: stdout is the PEM alone, the hex on stderr.
    key_pem = tmp_path / "key.pem"
    key_pem.write_text(shown.out)
    assert shown.out == (home / "export-key.pem").read_text()
    assert shown.out.startswith("-----BEGIN PUBLIC KEY-----\n")
    published = shown.err.strip().removeprefix("export key ")
    assert published in printed and len(published) == 64
    private = json.loads((home / "export.key").read_text())["private"]
    assert private not in printed + shown.out + shown.err

    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BODYCAM_", "DJANGO_"))}
    env.update(HOME=str(empty), PYTHONPATH=str(Path(__file__).parents[2]))
    cmd = [
        sys.executable,
        "-m",
        "bodycam_cli",
        "vault",
        "verify-export",
        str(out),
        "--export-key",
        str(key_pem),
        "--vault-key",
        str(home / "vault.key"),
    ]
    done = subprocess.run(cmd, cwd=empty, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is the decryption of the originals" in done.stdout
    assert list(empty.iterdir()) == []  # no site folder, no database was created
    bad = tmp_path / "bad.zip"
    raw = bytearray(out.read_bytes())
    with zipfile.ZipFile(out) as z:
        info = z.getinfo("custody.json")
    raw[info.header_offset + 30 + len(info.filename) + len(info.extra) + 5] ^= 0x20
    bad.write_bytes(bytes(raw))
    done = subprocess.run(
        cmd[:5] + [str(bad)], cwd=empty, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1 and "FAILED custody.json:" in done.stdout


def test_the_printed_export_key_is_what_verify_export_takes(
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """export-key > key.pem, then verify-export --export-key key.pem (and openssl reads
    it); the hex line the command used to print above the PEM is still accepted when it
    is the same key, refused when it is another."""
    import subprocess

    from export_support import site_home
    from vault_support import PASSWORD

    from crypto.keys import SigningKey, write_public_key

    monkeypatch.setenv("BODYCAM_VAULT_PASSWORD", PASSWORD)
    home = site_home(world, tmp_path / "home")
    auth = ["--home", str(home), "--user", "u-privacy_officer"]
    assert main(["vault", "export-key", *auth]) == 0
    key_pem = tmp_path / "key.pem"
    key_pem.write_text(capsys.readouterr().out)
    out = tmp_path / "OM-1"
    argv = ["vault", "export", str(world.recording), *auth, "--out", str(out)]
    assert main([*argv, "--reference", "OM-1"]) == 0
    capsys.readouterr()
    openssl = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(key_pem), "-noout"],
        capture_output=True,
        timeout=60,
    )
    assert openssl.returncode == 0, openssl.stderr
    public = (home / "export.pub").read_text()
    hex_key = json.loads(public)["public"]
    older = tmp_path / "older.pem"  # what `export-key > older.pem` wrote before
    older.write_text(f"{hex_key}\n{key_pem.read_text()}")
    for given in (key_pem, older, home / "export.pub", hex_key):
        assert main(["vault", "verify-export", str(out), "--export-key", str(given)]) == 0, given
        assert "(as expected)" in capsys.readouterr().out

    other = SigningKey.generate(kind="export").public_bytes().hex()
    mixed = tmp_path / "mixed.pem"
    mixed.write_text(f"{other}\n{key_pem.read_text()}")
    private = tmp_path / "private.pem"
    private.write_text(
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
    )
    someone = tmp_path / "someone.pub"
    write_public_key(someone, bytes.fromhex(other), "export")
    for given, error in (
        (mixed, "its PEM key and the hex key beside it differ"),
        (private, "a PEM file, but not of a public key"),
    ):
        assert main(["vault", "verify-export", str(out), "--export-key", str(given)]) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and error in err, err
    assert main(["vault", "verify-export", str(out), "--export-key", str(someone)]) == 1
    assert "FAILED export.json: signature (export.sig) does not verify with the expected" in (
        capsys.readouterr().out
    )


def test_a_zip_bomb_is_refused_by_name_before_more_than_the_signed_bytes_are_written(
    package: Path, world: World, tmp_path: Path
) -> None:
    from vault.export.package import ExportReport, _extract

    signed = {
        f["path"]: f["size"] for f in json.loads((package / fmt.MANIFEST).read_text())["files"]
    }
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in _files(package):
            if name == "recording.mp4":  # 64 MiB of zeros: about 64 KiB deflated
                info = zipfile.ZipInfo(name)
                info.compress_type = zipfile.ZIP_DEFLATED
                with z.open(info, "w", force_zip64=True) as member:
                    for _ in range(64):
                        member.write(bytes(1 << 20))
            else:
                z.write(package / name, name)
    assert bomb.stat().st_size < 1 << 20
    dest = tmp_path / "unpacked"
    dest.mkdir()
    report = ExportReport()
    _extract(bomb, dest, report)
    found = [str(f) for f in report.findings if f.file == "recording.mp4"]
    assert len(found) == 1 and f"more than the {signed['recording.mp4']}" in found[0], found
    mp4 = dest / "recording.mp4"
    assert not mp4.exists() or mp4.stat().st_size <= signed["recording.mp4"]
    assert (
        sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
        <= sum(signed.values()) + fmt.MAX_JSON * 2 + fmt.SIGNATURE_SIZE
    )
    # The whole check says so in one line naming the member.
    key = world.export_key.public_bytes()
    assert "recording.mp4" in verify_export(bomb, expected_key=key).files_named


def test_a_name_that_is_both_a_file_and_a_folder_is_named(
    package: Path, world: World, tmp_path: Path
) -> None:
    out = _rezip(package, tmp_path / "clash.zip")
    with zipfile.ZipFile(out, "a") as z:
        z.writestr("custody.json/x.ts", b"x")
    report = verify_export(out, expected_key=world.export_key.public_bytes())
    assert [str(f) for f in report.findings if f.file == "custody.json"] == [
        "custody.json: both a file and the folder of custody.json/x.ts in the zip: not a package"
    ], report.findings
    assert main(["vault", "verify-export", str(out)]) == 1


def test_the_decrypted_originals_never_have_a_name_in_the_temp_folder(
    package: Path, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verifier killed while comparing leaves no plaintext behind: at the moment the
    decrypted MPEG-TS is decoded, no file in the temp folder holds it."""
    import tempfile

    from vault.export import verify_mp4

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    seen: list[list[str]] = []
    real = verify_mp4.measure

    def watching(source: Any, **kw: Any) -> Any:
        if kw.get("container_format") == "mpegts":
            seen.append([p.name for p in temp.rglob("*")])
        return real(source, **kw)

    monkeypatch.setattr(verify_mp4, "measure", watching)
    report = verify_export(
        package, expected_key=world.export_key.public_bytes(), vault_key=world.site.vault_key
    )
    assert report.ok, report.findings
    assert any("is the decryption of the originals" in p for p in report.proven)
    assert seen == [[]]
    assert list(temp.iterdir()) == []
