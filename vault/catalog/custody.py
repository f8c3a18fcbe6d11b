"""Opening footage from the store for a person: verify and decrypt, origin checked first.

Both re-check the recording's origin against the coordinator's registry on the
store's current content (never a DEVICE.json), so footage re-signed with a fresh key
is refused here too. Files are assembled from the keys the catalog verified, in a
private work folder that is removed afterwards; decrypted output appears under the
requested name only when everything verified.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from crypto.errors import FormatError
from crypto.format import HEADER_NAME, MANIFEST_NAME
from crypto.keys import VaultKey
from crypto.open import decrypt_recording
from crypto.verify import VerifiedRecording, verify_recording
from store import Store, StoreError
from vault.access import Actor, audit_ok, policy_of, refuse
from vault.audit.services import audit_record
from vault.catalog.models import Recording
from vault.catalog.services import recording_authorize, recording_prefix, verify_origin
from vault.clock import Clock
from vault.errors import InvalidRequest, OriginRefused
from vault.media import MediaError, remux_to_mp4

log = logging.getLogger(__name__)

COPY_BLOCK = 1 << 20


@contextmanager
def _workdir(base: Path | None) -> Iterator[Path]:
    if base is not None:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="open-", dir=base))
    os.chmod(path, 0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _copy(store: Store, key: str, dest: Path) -> None:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with store.open(key) as src, os.fdopen(fd, "wb") as out:
        while block := src.read(COPY_BLOCK):
            out.write(block)


def _assemble(store: Store, recording: Recording, dest: Path) -> bytes:
    """The registered key after a fresh origin check; the verified files in `dest`."""
    if recording.state == Recording.State.PURGED:
        raise InvalidRequest(f"{recording} was purged: nothing is left to open")
    keys = list(
        store.list(recording_prefix(recording.site, recording.device_id, recording.recording_id))
    )
    origin = verify_origin(store, keys, recording.device_id)
    if origin.camera.public_key != recording.camera.public_key:
        raise OriginRefused(
            f"{recording} now verifies with another registration than the catalogued one"
        )
    _copy(store, origin.header_key, dest / HEADER_NAME)
    _copy(store, origin.manifest_key, dest / MANIFEST_NAME)
    for seg in recording.segments.all():
        _copy(store, seg.store_key, dest / seg.name)
    return bytes.fromhex(origin.camera.public_key)


def _failed(
    actor: Actor, action: str, recording: Recording, exc: Exception, clock: Clock, purpose: str = ""
) -> None:
    audit_record(
        actor=actor.username,
        roles=actor.describe(recording.municipality.code),
        municipality=recording.municipality.code,
        action=action,
        target=str(recording),
        purpose=purpose,
        result="refused" if isinstance(exc, OriginRefused) else "failed",
        clock=clock,
        detail={"error": f"{type(exc).__name__}: {exc}"},
    )


def recording_verify(
    *, actor: Actor, recording: Recording, store: Store, clock: Clock, work_dir: Path | None = None
) -> VerifiedRecording:
    recording_authorize(actor=actor, recording=recording, action="recording.verify", clock=clock)
    try:
        with _workdir(work_dir) as tmp:
            public = _assemble(store, recording, tmp)
            vr = verify_recording(tmp, public)
    except (OriginRefused, FormatError, StoreError, OSError) as exc:
        _failed(actor, "recording.verify", recording, exc, clock)
        raise
    audit_ok(
        actor=actor,
        action="recording.verify",
        municipality=recording.municipality.code,
        target=str(recording),
        clock=clock,
        detail={"segments": len(vr.segments), "complete": vr.complete},
    )
    return vr


def recording_decrypt(
    *,
    actor: Actor,
    recording: Recording,
    store: Store,
    vault_key: VaultKey,
    out: Path,
    purpose: str,
    clock: Clock,
    work_dir: Path | None = None,
    overwrite: bool = False,
    allow_incomplete: bool = False,
) -> int:
    """A plaintext copy (MP4 or MPEG-TS by the name of `out`): a transfer under the policy."""
    muni = recording.municipality
    recording_authorize(
        actor=actor, recording=recording, action="recording.decrypt", clock=clock, purpose=purpose
    )
    policy = policy_of(muni)
    rule = policy.viewing.get(purpose)  # type: ignore[call-overload]
    copies = [p for p, r in policy.viewing.items() if r.copy_allowed]
    if rule is None or not rule.copy_allowed:
        raise refuse(
            actor=actor,
            action="recording.decrypt",
            municipality=muni.code,
            target=str(recording),
            purpose=purpose,
            clock=clock,
            reason=f"the {policy.policy.name} policy gives no copy for purpose "
            f"{purpose!r} (copies only for: {', '.join(copies) or 'none'})",
        )
    suffix = out.suffix.lower()
    if suffix not in (".mp4", ".ts"):
        raise InvalidRequest(f"{out}: the name must end in .mp4 (MP4) or .ts (MPEG-TS)")
    if out.exists() and not overwrite:
        raise InvalidRequest(f"{out} exists; pass --overwrite to replace it")
    tmp_out = out.with_name(f".{out.name}.{os.urandom(4).hex()}.part")
    try:
        with _workdir(work_dir) as tmp:
            public = _assemble(store, recording, tmp)
            ts = tmp / "recording.ts"
            fd = os.open(ts, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                total = decrypt_recording(
                    tmp, vault_key, public, f, require_complete=not allow_incomplete
                )
            if suffix == ".mp4":
                remux_to_mp4(ts, tmp_out, name=str(recording))
                os.chmod(tmp_out, 0o600)
            else:
                shutil.move(ts, tmp_out)
            with open(tmp_out, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp_out, out)
    except (OriginRefused, FormatError, StoreError, MediaError, OSError) as exc:
        tmp_out.unlink(missing_ok=True)
        _failed(actor, "recording.decrypt", recording, exc, clock, purpose)
        raise
    audit_ok(
        actor=actor,
        action="recording.decrypt",
        municipality=muni.code,
        target=str(recording),
        purpose=purpose,
        clock=clock,
        detail={"bytes": total, "format": suffix[1:], "out": out.name},
    )
    return total
