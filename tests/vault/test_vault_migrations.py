"""The back office's models left `vault.web` for apps of their own: a database made before
the move migrates forward with every row where it was (the tables keep their names; the
migrations move the models in Django's state only).

Each run is a fresh Python process with its own database, so the session's migrated test
databases are not touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from pg_support import PgCluster

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import datetime as dt

    import django
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    django.setup()
    before = [("web", "0001_initial")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)  # the database as it was before the move
    executor.loader.build_graph()
    old = executor.loader.project_state(before).apps
    now = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
    muni = old.get_model("vault_accounts", "Municipality").objects.create(
        code="utrecht", name="Utrecht", policy_name="utrecht"
    )
    old.get_model("web", "CaseRequest").objects.create(
        municipality_id=muni.pk, kind="complaint", reference="K-1", description="a complaint",
        received_at=now, opened_by="jan", opened_at=now,
    )
    old.get_model("web", "LoginFailure").objects.create(username="jan", at=now, remote="10.0.0.1")
    old.get_model("web", "CameraStatus").objects.create(
        device_id="CAM-0001", profile_version="7", updated_at=now
    )

    call_command("migrate", verbosity=0, interactive=False)

    from vault.casework.models import CaseRequest
    from vault.reports.models import CameraStatus
    from vault.signin.models import LoginFailure

    case = CaseRequest.objects.get(reference="K-1")
    assert case.municipality.code == "utrecht" and case.kind == "complaint", case
    assert list(case.recordings.all()) == [] and list(case.holds.all()) == []
    assert LoginFailure.objects.get().remote == "10.0.0.1"
    assert CameraStatus.objects.get(device_id="CAM-0001").profile_version == "7"
    # and the moved models keep writing to the same tables
    CaseRequest.objects.create(
        municipality=case.municipality, kind="prosecutor", reference="P-1", description="claim",
        received_at=now, opened_by="jan", opened_at=now,
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM web_caserequest")
        assert cursor.fetchone()[0] == 2
    print("moved")
    """
)


def _migrate_from_web(home: Path, url: str) -> None:
    env = {
        **os.environ,
        "BODYCAM_VAULT_HOME": str(home),
        "BODYCAM_VAULT_DATABASE": url,
        "DJANGO_SETTINGS_MODULE": "vault.site.settings",
    }
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "moved"


def test_rows_stay_when_the_models_leave_web_on_sqlite(tmp_path: Path) -> None:
    _migrate_from_web(tmp_path, f"sqlite:///{tmp_path / 'before.sqlite3'}")


def test_rows_stay_when_the_models_leave_web_on_postgresql(
    tmp_path: Path, pg_cluster: PgCluster
) -> None:
    pg_cluster.create_database("vault_before_move")
    _migrate_from_web(tmp_path, pg_cluster.url("vault_before_move"))
