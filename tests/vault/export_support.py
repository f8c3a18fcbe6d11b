"""A back office with one real H.264 recording, ready to be handed over (export tests)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vault_support import T0, Site, actor, make_municipalities, make_ts, make_user

CAMERA = "BC-00000042"


@dataclass
class World:
    site: Site
    recording: Any
    clock: Any
    muni: str
    export_key: Any
    officer: Any


def make_world(root: Path, clock: Any, policy: str = "heusden") -> World:
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
    rid = site.record(CAMERA, T0 + dt.timedelta(hours=1), ts=make_ts(60))
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
