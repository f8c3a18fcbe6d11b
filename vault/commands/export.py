"""`bodycam vault export | verify-export | export-key`: the prosecutor's package, command line.

`export` is a back-office command (authenticated, through `recording_export`);
`verify-export` needs no back office at all: it is what police, the prosecutor or a
court run on the package they received; `export-key` prints the key to publish.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def cmd_export(s: Any, args: argparse.Namespace) -> int:
    from crypto.keys import VaultKey
    from vault.catalog.selectors import recording_get
    from vault.export.services import export_key_ensure, recording_export

    key_path = s.vault_key_path(args.key)
    r = recording_get(
        actor=s.actor, ref=str(args.recording), clock=s.clock, action="recording.export"
    )
    result = recording_export(
        actor=s.actor,
        recording=r,
        store=s.store,
        vault_key=VaultKey.load(key_path),
        export_key=export_key_ensure(s.home),
        out=Path(args.out),
        reference=args.reference,
        basis=args.basis,
        purpose=args.purpose,
        reason=args.reason or "",
        hold_id=args.hold,
        clock=s.clock,
        work_dir=s.config.work_dir,
    )
    print(
        f"package for {args.basis.replace('_', ' ')} {args.reference}: {result.files} files "
        f"-> {result.out}"
    )
    print(f"prosecution hold {result.hold_id}; informed: {', '.join(result.informed) or '-'}")
    print(f"export.json sha256 {result.manifest_sha256}")
    print(f"signed with export key {result.export_public_key}")
    return 0


def cmd_export_key(s: Any, args: argparse.Namespace) -> int:
    from vault.export import format as fmt
    from vault.export.services import export_key_ensure

    key = export_key_ensure(s.home)
    # stdout is the PEM alone, so `export-key > key.pem` is a key file (verify-export
    # --export-key, openssl); the hex to compare by eye goes to stderr.
    print(f"export key {key.public_bytes().hex()}", file=sys.stderr)
    print(fmt.public_key_pem(key.public_bytes()).decode(), end="")
    return 0


def cmd_verify_export(args: argparse.Namespace) -> int:
    from crypto.keys import VaultKey
    from vault.export.format import parse_public_key_text
    from vault.export.verify import verify_export

    expected = parse_public_key_text(args.export_key) if args.export_key else None
    vault_key = VaultKey.load(args.vault_key) if args.vault_key else None
    report = verify_export(Path(args.package), expected_key=expected, vault_key=vault_key)
    for f in report.findings:
        print(f"FAILED {f}")
    for line in report.proven:
        print(f"proven: {line}")
    for line in report.notes:
        print(f"note: {line}")
    m = report.manifest or {}
    rec = m.get("recording", {})
    print(
        f"{'OK' if report.ok else 'NOT OK'} {args.package}: "
        f"{rec.get('device_id', '?')}/{rec.get('recording_id', '?')} "
        f"reference {m.get('reference', '?')}"
        + (
            ""
            if report.ok
            else f", {len(report.findings)} problem(s) in {', '.join(sorted(report.files_named))}"
        )
    )
    return 0 if report.ok else 1


def cmd_training_export(s: Any, args: argparse.Namespace) -> int:
    from crypto.keys import VaultKey
    from vault.catalog.selectors import recording_get
    from vault.training import ACTION, recording_training_export

    key_path = s.vault_key_path(args.key)
    r = recording_get(actor=s.actor, ref=str(args.recording), clock=s.clock, action=ACTION)
    result = recording_training_export(
        actor=s.actor,
        recording=r,
        store=s.store,
        vault_key=VaultKey.load(key_path),
        out=Path(args.out),
        consent_reference=args.consent or "",
        purpose=args.purpose,
        hold_id=args.hold,
        clock=s.clock,
        work_dir=s.config.work_dir,
    )
    print(
        f"training copy of {r} (consent {args.consent}): {result.frames} frames, "
        f"{result.faces_tracked} faces tracked, {result.frames_obscured} frames blurred, "
        f"sound removed -> {result.out}"
    )
    print(f"sha256 {result.sha256}")
    return 0


def cmd_training_consent(s: Any, args: argparse.Namespace) -> int:
    from vault.catalog.selectors import recording_get
    from vault.training import CONSENT_ACTION, training_consent_record

    r = recording_get(actor=s.actor, ref=str(args.recording), clock=s.clock, action=CONSENT_ACTION)
    training_consent_record(actor=s.actor, recording=r, reference=args.reference, clock=s.clock)
    print(f"consent {args.reference} for training use of {r} recorded")
    return 0


def cmd_viewing_consent(s: Any, args: argparse.Namespace) -> int:
    from vault.catalog.selectors import recording_get
    from vault.viewing.rules import CONSENT_ACTION, viewing_consent_record

    r = recording_get(actor=s.actor, ref=str(args.recording), clock=s.clock, action=CONSENT_ACTION)
    consent = viewing_consent_record(
        actor=s.actor, recording=r, purpose=args.purpose, reference=args.reference, clock=s.clock
    )
    print(
        f"consent {consent.reference} to viewing {r} for {args.purpose} recorded "
        f"(audit entry {consent.seq})"
    )
    return 0


def cmd_mark_escalated(s: Any, args: argparse.Namespace) -> int:
    from vault.catalog.selectors import recording_get
    from vault.training import ESCALATION_ACTION, recording_mark_escalated

    r = recording_get(
        actor=s.actor, ref=str(args.recording), clock=s.clock, action=ESCALATION_ACTION
    )
    recording_mark_escalated(actor=s.actor, recording=r, reason=args.reason, clock=s.clock)
    print(f"{r} marked as an escalated situation")
    return 0


def add_training_commands(sub: Any, auth: list[Any]) -> None:
    from vault.backoffice_cli import _leaf

    p = _leaf(
        sub,
        "training-export",
        cmd_training_export,
        "an officer's own recording for training, everyone in it made unrecognizable "
        "(faces blurred, sound removed): needs the officer's recorded consent",
        auth,
    )
    p.add_argument("recording", metavar="RECORDING", help="RECORDING_ID or DEVICE_ID/RECORDING_ID")
    p.add_argument("--out", metavar="FILE.mp4", required=True, help="new MP4 file")
    # Checked by the service (refused and audited without it), not by argparse.
    p.add_argument(
        "--consent",
        metavar="REF",
        default=None,
        help="reference of the officer's consent (recorded with training-consent)",
    )
    p.add_argument("--purpose", default="learning", help="only learning gives a training copy")
    p.add_argument(
        "--hold",
        type=int,
        default=None,
        metavar="HOLD_ID",
        help="refused: a training copy belongs to no hold",
    )
    p.add_argument(
        "--key",
        metavar="VAULT_KEY",
        default=None,
        help="vault private key file (default from site.toml)",
    )
    c = _leaf(
        sub,
        "training-consent",
        cmd_training_consent,
        "record your consent (as the officer who made it) to training use of a recording",
        auth,
    )
    c.add_argument("recording", metavar="RECORDING")
    c.add_argument("--reference", required=True, help="the consent form's reference")
    v = _leaf(
        sub,
        "viewing-consent",
        cmd_viewing_consent,
        "record your consent (as the officer who made it) to a recording being viewed for a "
        "purpose whose policy asks for it (Utrecht: complaint, learning)",
        auth,
    )
    v.add_argument("recording", metavar="RECORDING")
    v.add_argument("--purpose", required=True, help="complaint, learning, ...")
    v.add_argument("--reference", required=True, help="the consent form's reference")
    e = _leaf(
        sub,
        "mark-escalated",
        cmd_mark_escalated,
        "mark a recording as an escalated situation (training use where the policy "
        "allows only those)",
        auth,
    )
    e.add_argument("recording", metavar="RECORDING")
    e.add_argument("--reason", required=True, help="what escalated")


def add_export_commands(sub: Any) -> None:
    from vault.backoffice_cli import _auth_parent, _leaf
    from vault.export.format import BASES

    auth = [_auth_parent()]
    add_training_commands(sub, auth)
    p = _leaf(
        sub,
        "export",
        cmd_export,
        "hand a recording over to police or the prosecutor: "
        "a signed package (vault/EXPORT.md) and a prosecution hold",
        auth,
    )
    p.add_argument("recording", metavar="RECORDING", help="RECORDING_ID or DEVICE_ID/RECORDING_ID")
    p.add_argument(
        "--out",
        metavar="PACKAGE",
        required=True,
        help="new folder, or a .zip file, for the package",
    )
    p.add_argument(
        "--reference",
        required=True,
        help="the prosecutor's case number or the police report number",
    )
    p.add_argument(
        "--basis",
        choices=BASES,
        default="prosecutor_claim",
        help="the prosecutor claimed it, or a police report was filed",
    )
    p.add_argument(
        "--purpose",
        default="criminal_investigation",
        help="only criminal_investigation gives a package",
    )
    p.add_argument(
        "--hold",
        type=int,
        default=None,
        metavar="HOLD_ID",
        help="the open prosecution hold this hand-over is for (default: the "
        "open one with this reference, or a new one)",
    )
    p.add_argument("--reason", default=None, help="reason recorded with a new hold")
    p.add_argument(
        "--key",
        metavar="VAULT_KEY",
        default=None,
        help="vault private key file (default from site.toml)",
    )
    _leaf(
        sub,
        "export-key",
        cmd_export_key,
        "print the export public key police and prosecutor check packages with: "
        "PEM on stdout (export-key > key.pem), its hex on stderr",
        auth,
    )
    v = sub.add_parser(
        "verify-export",
        help="check an export package on its own (no back office needed)",
        description="Check a package folder or zip: the export signature, every file's "
        "hash, the camera-signed originals, the dock's ingest record and the MP4. Exit 0 "
        "only when everything holds; each problem names its file.",
    )
    v.add_argument("package", metavar="PACKAGE", type=Path)
    v.add_argument(
        "--export-key",
        metavar="HEX_OR_FILE",
        default=None,
        help="the export public key the municipality published: 64 hex digits, a PEM "
        "file (what export-key prints) or a bodycam .pub file; without it the key in the "
        "package is used and reported",
    )
    v.add_argument(
        "--vault-key",
        metavar="VAULT_KEY",
        default=None,
        help="also decrypt the originals and compare every frame with the MP4",
    )
    v.set_defaults(func=cmd_verify_export)
