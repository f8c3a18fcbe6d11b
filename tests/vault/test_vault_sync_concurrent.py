"""Several docks' `--on-docked` syncs and the timer at once, on one PostgreSQL and one store.

Four `bodycam vault sync` processes start together against a store that holds recordings
of two cameras; afterwards every recording is in the catalog exactly once with all its
segments, no sync failed or hung, and the audit chain still verifies.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pg_support import PgCluster
from vault_support import PASSWORD, Site

REPO = Path(__file__).resolve().parents[2]
BODYCAM = "import bodycam_cli; raise SystemExit(bodycam_cli.main())"
CAMERAS = 2
RECORDINGS_PER_CAMERA = 10
SYNCS = 4


def _env(home: Path, database: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BODYCAM_VAULT", "DJANGO_"))}
    env.update(
        BODYCAM_VAULT_HOME=str(home),
        BODYCAM_VAULT_DATABASE=database,
        BODYCAM_VAULT_PASSWORD=PASSWORD,
        BODYCAM_VAULT_NEW_PASSWORD=PASSWORD,
        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    return env


def _argv(home: Path, user: str | None, *args: str) -> list[str]:
    words = 2 if args[0] in ("user", "camera", "dock", "audit") else 1
    extra = ["--home", str(home)] + (["--user", user] if user else [])
    return [sys.executable, "-c", BODYCAM, "vault", *args[:words], *extra, *args[words:]]


def _run(env: dict[str, str], home: Path, user: str | None, *args: str) -> str:
    done = subprocess.run(
        _argv(home, user, *args), env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"vault {' '.join(args)}: {done.stderr[-2000:]}"
    return done.stdout


def test_four_syncs_at_once_catalog_every_recording_once(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    import psycopg

    pg_cluster.create_database("vault_sync_race")
    database = pg_cluster.url("vault_sync_race")
    home = tmp_path / "home"
    env = _env(home, database)
    site = Site.create(tmp_path / "site")
    site.vault_key.save(tmp_path / "vault.key")
    init = ["init", "--store", site.store.url, "--site", site.site, "--policy", "heusden"]
    init += ["--admin", "admin", "--vault-key", str(tmp_path / "vault.key"), "--create"]
    _run(env, home, None, *init)
    for user, role in (("cora", "coordinator"), ("timer", "scheduler")):
        _run(env, home, "admin", "user", "add", user, "--municipality", "heusden", "--role", role)
    _run(env, home, "cora", "dock", "add", "dock-1", site.dock_key.public_bytes().hex())
    started = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    expected: set[tuple[str, str]] = set()
    for n in range(CAMERAS):
        cam = site.camera(f"BC-0000000{n + 1}")
        device = tmp_path / f"camera-{n}" / "DEVICE.json"  # as provisioning writes it
        device.parent.mkdir()
        device.write_text(json.dumps({"device_id": cam.device_id, "public_key": cam.public_hex}))
        _run(env, home, "cora", "camera", "add", str(device), "--municipality", "heusden")
        for r in range(RECORDINGS_PER_CAMERA):
            at = started + dt.timedelta(minutes=10 * r, seconds=n)
            expected.add((cam.device_id, site.record(cam.device_id, at, segments=3)))

    syncs = [
        subprocess.Popen(
            _argv(home, "timer", "sync"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(SYNCS)
    ]
    deadline = time.monotonic() + 180
    outcomes = []
    for proc in syncs:
        try:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for p in syncs:
                p.kill()
            pytest.fail("a sync hung (deadlock?) with four running at once")
        outcomes.append((proc.returncode, out, err))
    for code, _, err in outcomes:
        assert code == 0, f"a concurrent sync failed ({code}): {err[-2000:]}"
    added = sum(int(out.split(" added")[0].split()[-1]) for _, out, _ in outcomes)
    assert added == len(expected), [o for _, o, _ in outcomes]

    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT device_id, recording_id, segment_count FROM vault_catalog_recording"
        ).fetchall()
        segments = conn.execute("SELECT count(*) FROM vault_catalog_segment").fetchone()
    assert len(rows) == len(expected), "a recording was catalogued twice or skipped"
    assert {(d, r) for d, r, _ in rows} == expected
    assert all(count == 3 for _, _, count in rows)
    assert segments is not None and segments[0] == 3 * len(expected)
    # every sync's entry is in the one chain, unbroken
    assert "chain intact" in _run(env, home, "admin", "audit", "verify")
