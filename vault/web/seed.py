"""A back office filled for a demonstration (and the browser tests): one call after a shift.

`seed_back_office` sets up a site on a store the docks filled (if HOME has none yet),
creates a user for every role of the policy, registers the shift's cameras and the dock
through the coordinator's services, assigns each camera to its officer, syncs the
catalog and drafts the shift reports, all through the service layer and so all in the
audit log. Every demo user gets the same password; this is for a demo, never a site.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

from vault.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

# user name -> role, in the demo municipality.
DEMO_USERS: dict[str, str] = {
    "cora": "coordinator",
    "cees": "cluster_manager",
    "priya": "privacy_officer",
    "sam": "municipal_secretary",
    "saf": "safety_coordinator",
}
ADMIN = "admin"
SINCE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # standing assignments cover any demo date


@dataclass(frozen=True)
class DemoCamera:
    device_id: str
    public_key: bytes
    officer_code: str
    officer_name: str
    officer_user: str


@dataclass
class SeedResult:
    home: Path
    municipality: str
    users: dict[str, str] = field(default_factory=dict)  # user -> role
    recordings: int = 0
    reports: int = 0
    problems: list[str] = field(default_factory=list)


def seed_back_office(*, home: Path, store_url: str, site: str, vault_key: Path,
                     cameras: list[DemoCamera], docks: dict[str, bytes], password: str,
                     policy: str = "heusden", clock: Clock = SYSTEM_CLOCK) -> SeedResult:
    from crypto.keys import SigningKey, write_public_key
    from dock.store import open_store
    from vault.site.config import SiteConfig, ensure_django, migrate

    home = home.absolute()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    cfg = SiteConfig(home=home, site=site, store=store_url, vault_key=vault_key.absolute())
    key_path = cfg.path(cfg.registry_key)
    if not key_path.exists():
        key = SigningKey.generate(kind="registry")
        key.save(key_path)
        write_public_key(key_path.with_suffix(".pub"), key.public_bytes(), "registry")
    cfg.save()
    ensure_django(home)
    migrate()
    # Models and services import only once Django runs on this HOME.
    from django.contrib.auth.models import User

    from vault.access import actor_for
    from vault.accounts.services import officer_create, role_grant, site_setup
    from vault.catalog.services import catalog_sync
    from vault.policy import load_policy
    from vault.registry.services import (
        camera_assign,
        camera_register,
        dock_station_add,
        registry_publish,
    )
    from vault.web.reports import shift_sync

    muni = load_policy(policy).municipality[0].code
    if not User.objects.exists():
        site_setup(policies=[policy], admin_username=ADMIN, admin_password=password, clock=clock)
    user = User.objects.get(username=ADMIN)
    admin = actor_for(user)
    result = SeedResult(home=home, municipality=muni)
    for name, role in DEMO_USERS.items():
        role_grant(actor=admin, username=name, municipality=muni, role=role, clock=clock,
                   password=password)
        result.users[name] = role
    for cam in cameras:
        role_grant(actor=admin, username=cam.officer_user, municipality=muni, role="officer",
                   clock=clock, password=password)
        result.users[cam.officer_user] = "officer"
    coordinator = actor_for(User.objects.get(username="cora"))
    from vault.accounts.models import Officer

    store = open_store(store_url)
    try:
        for cam in cameras:
            if not Officer.objects.filter(municipality__code=muni,
                                          code=cam.officer_code).exists():
                officer_create(actor=coordinator, municipality=muni, code=cam.officer_code,
                               name=cam.officer_name, username=cam.officer_user, clock=clock)
            camera_register(actor=coordinator, municipality=muni, device_id=cam.device_id,
                            public_key=cam.public_key, model="demo", clock=clock)
            camera_assign(actor=coordinator, device_id=cam.device_id,
                          officer_code=cam.officer_code, starts_at=SINCE, clock=clock)
        from vault.registry.models import DockStation

        for name, public in docks.items():
            if not DockStation.objects.filter(name=name).exists():
                dock_station_add(actor=coordinator, name=name, public_key=public, clock=clock)
        registry_publish(actor=coordinator, store=store,
                         signing_key=SigningKey.load(key_path), site=site, clock=clock)
        custodian = actor_for(User.objects.get(username="cees"))
        sync = catalog_sync(actor=custodian, store=store, clock=clock)
        drafts = shift_sync(actor=custodian, store=store, clock=clock)
    finally:
        store.close()
    from vault.catalog.models import Recording

    result.recordings = Recording.objects.filter(municipality__code=muni).count()
    result.reports = len(drafts.drafted)
    result.problems = [*getattr(sync, "problems", []), *drafts.problems]
    return result
