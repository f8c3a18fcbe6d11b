"""A back office with one real H.264 recording, ready to be handed over (export tests).

The recording is picture only by default; `make_ts_with_sound` writes one as the camera
does with pre-record audio off (sound starts after the pre-roll), and `recovered=True`
seals it the way a power cut and the camera's recovery at boot leave it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vault_support import T0, Site, actor, make_municipalities, make_ts, make_user

CAMERA = "BC-00000042"
FIRST_FRAME = 54_000  # the camera's frame numbers count from its power-on, not from 0


def make_ts_with_sound(
    seconds: float, *, sound_from: float, fps: int = 30, size: tuple[int, int] = (64, 48)
) -> bytes:
    """MPEG-TS as the camera writes it with pre-record audio off: H.264 (a keyframe a
    second) from the first frame, AAC only from `sound_from` seconds in (the pre-roll's
    sound is dropped, as firmware/pipeline.py drops it)."""
    import numpy as np

    from firmware.encoder import H264Encoder, TsSegmentMuxer
    from ringbuffer.packet import STREAM_AUDIO, frame_pts
    from sim.audio import SyntheticMicrophone

    w, h = size
    encoder = H264Encoder(w, h, fps, 200_000, fps, audio=True)
    mic = SyntheticMicrophone()
    packets: list[Any] = []
    for i in range(round(seconds * fps)):
        picture = np.full((h, w, 3), (i * 8) % 255, dtype=np.uint8)
        picture[:, : (i % w)] = 255 - picture[:, : (i % w)]
        packets += encoder.encode_video(picture, FIRST_FRAME + i)
        packets += encoder.encode_audio(mic.capture(48_000 // fps))
    packets += encoder.flush()
    live = frame_pts(FIRST_FRAME, fps) + round(sound_from * 90_000)
    buf = io.BytesIO()
    muxer = TsSegmentMuxer(buf, encoder)
    for p in sorted(packets, key=lambda p: p.pts):
        if p.stream != STREAM_AUDIO or p.pts >= live:
            muxer.write(p)
    muxer.close()
    return buf.getvalue()


def record_recovered(site: Site, device_id: str, started: dt.datetime, ts: bytes) -> str:
    """A recording cut by a power cut mid-segment and closed by the camera's recovery at
    boot (RECOVERED_SEGMENT of the whole chunks that reached the volume, RECOVERED_END
    without an end time), stored and ingest-recorded as a dock does."""
    from crypto.recovery import recover_recording
    from crypto.seal import RecordingSealer
    from formats.ingest_record import write_ingest_record
    from store import object_key

    cam = site.camera(device_id)
    start = started.timestamp()
    rec_id = f"{started:%Y%m%dT%H%M%SZ}-{os.urandom(2).hex()}"
    folder = site.root / "cam" / device_id / os.urandom(4).hex() / rec_id
    sealer = RecordingSealer(
        folder, device_id, rec_id, cam.key, [site.vault_key.public_bytes()], start, chunk_size=4096
    )
    sealer.begin_segment(0, "video/mp2t", 0, start - 30).write(ts)
    sealer.abandon()  # the power goes: the chunks still in memory are lost
    report = recover_recording(folder, cam.key)
    assert report is not None and report.closed and not report.problems, report
    stored = {}
    for f in sorted(folder.iterdir()):
        raw = f.read_bytes()
        sha = hashlib.sha256(raw).hexdigest()
        k = object_key(site.site, device_id, rec_id, f.name, sha)
        site.store.put_bytes(k, raw)
        stored[f.name] = {"key": k, "sha256": sha, "size": len(raw)}
    write_ingest_record(
        site.store,
        site.dock_key,
        site=site.site,
        device_id=device_id,
        recording_id=rec_id,
        complete=True,
        header=stored["recording.hdr"],
        manifest=stored["manifest.bcm"],
        segments=[{"name": n, **v} for n, v in stored.items() if n.startswith("seg-")],
        now=start + 3600,
    )
    return rec_id


@dataclass
class World:
    site: Site
    recording: Any
    clock: Any
    muni: str
    export_key: Any
    officer: Any


def make_world(
    root: Path,
    clock: Any,
    policy: str = "heusden",
    *,
    ts: bytes | None = None,
    recovered: bool = False,
) -> World:
    """The back office of `policy` with one recording of CAMERA: 60 frames of picture
    without sound unless `ts` is given; `recovered`: closed by power-cut recovery."""
    from crypto.keys import SigningKey
    from vault.accounts.services import officer_create
    from vault.catalog.models import Recording
    from vault.catalog.services import catalog_sync
    from vault.policy import load_policy
    from vault.registry.services import camera_assign, camera_register, dock_station_add

    make_municipalities([policy])
    muni = load_policy(policy).municipality_codes[0]
    site = Site.create(root / "site")
    make_user("setup", {muni: ["coordinator", "scheduler"]})
    boss = actor("setup")
    camera_register(
        actor=boss,
        municipality=muni,
        device_id=CAMERA,
        public_key=site.camera(CAMERA).public_hex,
        clock=clock,
    )
    dock_station_add(
        actor=boss, name="dock-1", public_key=site.dock_key.public_bytes(), clock=clock
    )
    officer = officer_create(
        actor=boss, municipality=muni, code="boa-7", name="Officer Seven", clock=clock
    )
    camera_assign(
        actor=boss,
        device_id=CAMERA,
        officer_code="boa-7",
        starts_at=T0 - dt.timedelta(days=1),
        clock=clock,
    )
    started = T0 + dt.timedelta(hours=1)
    ts = make_ts(60) if ts is None else ts
    rid = (
        record_recovered(site, CAMERA, started, ts)
        if recovered
        else site.record(CAMERA, started, ts=ts)
    )
    catalog_sync(actor=boss, store=site.store, clock=clock)
    for role in load_policy(policy).person_roles:
        make_user(f"u-{role}", {muni: [role]})
    return World(
        site,
        Recording.objects.get(recording_id=rid),
        clock,
        muni,
        SigningKey.generate(kind="export"),
        officer,
    )


def export(world: World, who: str, out: Path, **kw: Any) -> Any:
    from vault.export.services import recording_export

    args: dict[str, Any] = dict(reference="OM-2026-0042", basis="prosecutor_claim")
    args.update(kw)
    return recording_export(
        actor=actor(who),
        recording=world.recording,
        store=world.site.store,
        vault_key=world.site.vault_key,
        export_key=world.export_key,
        out=out,
        clock=world.clock,
        **args,
    )


def resign(pkg: Path, key: Any) -> None:
    """Re-sign a changed package as its signer would (a forger holding the export key)."""
    from vault.export import format as fmt

    manifest = json.loads((pkg / fmt.MANIFEST).read_bytes())
    for f in manifest["files"]:
        f["sha256"] = fmt.sha256_file(pkg / f["path"])
        f["size"] = (pkg / f["path"]).stat().st_size
    raw = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    (pkg / fmt.MANIFEST).write_bytes(raw)
    (pkg / fmt.SIGNATURE).write_bytes(key.sign(raw))
    hashes = {f["path"]: f["sha256"] for f in manifest["files"]}
    hashes[fmt.MANIFEST] = fmt.sha256_file(pkg / fmt.MANIFEST)
    hashes[fmt.SIGNATURE] = fmt.sha256_file(pkg / fmt.SIGNATURE)
    (pkg / fmt.HASH_LIST).write_bytes(fmt.render_hash_list(hashes))


def copy_package(pkg: Path, dest: Path) -> Path:
    shutil.copytree(pkg, dest)
    return dest


def site_home(world: World, home: Path) -> Path:
    """A site folder on the test database, as `bodycam vault init` would leave it."""
    from vault.site.config import SiteConfig

    home.mkdir()
    world.site.vault_key.save(home / "vault.key")
    SiteConfig(
        home=home, site=world.site.site, store=world.site.store.url, vault_key=home / "vault.key"
    ).save()
    return home
