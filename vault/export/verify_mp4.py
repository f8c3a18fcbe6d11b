"""Checking an export's `recording.mp4`: it decodes, every figure the manifest signs about
it is what decoding gives, its duration fits the camera-signed timeline, and with the
vault key every decoded frame, picture and sound, equals the frame decoded from the
sealed originals at the same instant.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Any

from crypto.errors import FormatError
from crypto.keys import VaultKey
from crypto.open import decrypt_recording
from crypto.verify import VerifiedRecording
from vault.export import format as fmt
from vault.export.package import ExportReport, _unnamed_file
from vault.media import Fingerprint, MediaError, MediaFacts, measure

DURATION_SLACK = 2.0  # seconds: frame rounding and the camera's segment cut


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
