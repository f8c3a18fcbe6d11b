"""A back office filled for a demonstration (and the browser tests): one call after a shift.

`seed_back_office` sets up a site on a store the docks filled (if HOME has none yet),
creates a user for every role of the policy, registers the shift's cameras and the dock
through the coordinator's services, assigns each camera to its officer, syncs the
catalog and drafts the shift reports, all through the service layer and so all in the
audit log. Every demo user gets the same password; this is for a demo, never a site.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from vault.clock import SYSTEM_CLOCK, Clock
from vault.site.config import python_argv

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


def seed_back_office(
    *,
    home: Path,
    store_url: str,
    site: str,
    vault_key: Path,
    cameras: list[DemoCamera],
    docks: dict[str, bytes],
    password: str,
    policy: str = "heusden",
    clock: Clock = SYSTEM_CLOCK,
) -> SeedResult:
    from crypto.keys import SigningKey, write_public_key
    from store import open_store
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
    from vault.reports.services import shift_sync

    muni = load_policy(policy).municipality[0].code
    if not User.objects.exists():
        site_setup(policies=[policy], admin_username=ADMIN, admin_password=password, clock=clock)
    user = User.objects.get(username=ADMIN)
    admin = actor_for(user)
    result = SeedResult(home=home, municipality=muni)
    for name, role in DEMO_USERS.items():
        role_grant(
            actor=admin, username=name, municipality=muni, role=role, clock=clock, password=password
        )
        result.users[name] = role
    for cam in cameras:
        role_grant(
            actor=admin,
            username=cam.officer_user,
            municipality=muni,
            role="officer",
            clock=clock,
            password=password,
        )
        result.users[cam.officer_user] = "officer"
    coordinator = actor_for(User.objects.get(username="cora"))
    from vault.accounts.models import Officer

    store = open_store(store_url)
    try:
        for cam in cameras:
            if not Officer.objects.filter(municipality__code=muni, code=cam.officer_code).exists():
                officer_create(
                    actor=coordinator,
                    municipality=muni,
                    code=cam.officer_code,
                    name=cam.officer_name,
                    username=cam.officer_user,
                    clock=clock,
                )
            camera_register(
                actor=coordinator,
                municipality=muni,
                device_id=cam.device_id,
                public_key=cam.public_key,
                model="demo",
                clock=clock,
            )
            camera_assign(
                actor=coordinator,
                device_id=cam.device_id,
                officer_code=cam.officer_code,
                starts_at=SINCE,
                clock=clock,
            )
        from vault.registry.models import DockStation

        for name, public in docks.items():
            if not DockStation.objects.filter(name=name).exists():
                dock_station_add(actor=coordinator, name=name, public_key=public, clock=clock)
        registry_publish(
            actor=coordinator,
            store=store,
            signing_key=SigningKey.load(key_path),
            site=site,
            clock=clock,
        )
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


# --- `make demo`: the shift's back office, in its own process ----------------------------------

DEMO_PASSWORD = "bodycam demo 2026"  # printed by the demo; a demo site only
DEMO_OFFICERS = (
    ("olaf", "Olaf Jansen"),
    ("olga", "Olga de Vries"),
    ("otto", "Otto Bakker"),
    ("oona", "Oona Smit"),
)


BODYCAM = "import bodycam_cli; raise SystemExit(bodycam_cli.main())"  # the `bodycam` command


def _child_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child with a Django of its own, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BODYCAM_VAULT", "DJANGO_"))}
    env.update(extra)
    return env


class BackOfficeCommandFailed(RuntimeError):
    """A `bodycam vault` command of the demo's back office exited non-zero."""


@dataclass(frozen=True)
class BackOffice:
    """The demo's back office as its users reach it: `bodycam vault ...` in a child
    process, signed in as one of the demo users."""

    home: Path
    password: str = DEMO_PASSWORD

    def call(self, *args: str, user: str) -> subprocess.CompletedProcess[str]:
        env = _child_env(
            BODYCAM_VAULT_HOME=str(self.home),
            BODYCAM_VAULT_USER=user,
            BODYCAM_VAULT_PASSWORD=self.password,
        )
        return subprocess.run(
            python_argv("-c", BODYCAM, "vault", *args),
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def run(self, *args: str, user: str) -> str:
        """Its output; BackOfficeCommandFailed with the command's last line if it failed."""
        proc = self.call(*args, user=user)
        if proc.returncode != 0:
            said = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:]
            raise BackOfficeCommandFailed(
                f"bodycam vault {args[0]} as {user} failed: {' '.join(said)}"
            )
        return proc.stdout


def seed_demo(
    *,
    home: Path,
    store_url: str,
    site: str,
    keys_dir: Path,
    cameras: list[tuple[str, str, bytes]],
    file: TextIO,
) -> int:
    """Seed the demo shift's back office in a child process (a Django of its own).

    `cameras` are (camera name, device id, public key); each camera's name is its
    officer's code. Prints how to open the back office; returns the child's exit code.
    """
    from crypto.keys import SigningKey

    spec = {
        "home": str(home),
        "store": store_url,
        "site": site,
        "vault_key": str(keys_dir / "vault.key"),
        "password": DEMO_PASSWORD,
        "docks": {"dock-1": SigningKey.load(keys_dir / "dock.key").public_bytes().hex()},
        "cameras": [
            {
                "device_id": dev,
                "public_key": pub.hex(),
                "officer_code": name,
                "officer_name": DEMO_OFFICERS[i % len(DEMO_OFFICERS)][1],
                "officer_user": DEMO_OFFICERS[i % len(DEMO_OFFICERS)][0],
            }
            for i, (name, dev, pub) in enumerate(cameras)
        ],
    }
    proc = subprocess.run(
        python_argv("-m", "vault.web.seed"),
        input=json.dumps(spec),
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        print(f"  back office not seeded: {proc.stderr.strip().splitlines()[-1:]}", file=file)
        return proc.returncode
    done = json.loads(proc.stdout.strip().splitlines()[-1])
    users = ", ".join(f"{u} ({r})" for u, r in done["users"].items())
    print(
        f"  back office in {home}: {done['recordings']} recordings catalogued, "
        f"{done['reports']} shift reports drafted from the event logs",
        file=file,
    )
    print(f"  users: {users}; password for each: {DEMO_PASSWORD!r}", file=file)
    print(
        f"  open it: bodycam vault serve --home {home} --local-http, then "
        "http://127.0.0.1:8000/ (a viewing needs two of them, e.g. cees + sam for a "
        "complaint)",
        file=file,
    )
    return 0


def main() -> int:
    """`python -m vault.web.seed` with a JSON spec on stdin (see `seed_demo`)."""
    spec = json.loads(sys.stdin.read(1 << 20))
    result = seed_back_office(
        home=Path(spec["home"]),
        store_url=spec["store"],
        site=spec["site"],
        vault_key=Path(spec["vault_key"]),
        password=spec["password"],
        docks={k: bytes.fromhex(v) for k, v in spec["docks"].items()},
        cameras=[
            DemoCamera(
                c["device_id"],
                bytes.fromhex(c["public_key"]),
                c["officer_code"],
                c["officer_name"],
                c["officer_user"],
            )
            for c in spec["cameras"]
        ],
    )
    print(
        json.dumps(
            {
                "recordings": result.recordings,
                "reports": result.reports,
                "problems": result.problems,
                "users": result.users,
            }
        )
    )
    return 0


if __name__ == "__main__":
    from crypto.timestamps import log_to_stderr

    log_to_stderr(logging.WARNING)
    raise SystemExit(main())
