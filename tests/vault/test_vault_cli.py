"""`bodycam vault ...` end to end in one process: set-up, users, registry, sync, list, show,
verify, decrypt into a real MP4 and MPEG-TS, holds, purge, audit; each as a logged-in user."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import av
import pytest
from vault_support import PASSWORD, Site, make_ts

from bodycam_cli import main
from crypto.timestamps import utc_text


@pytest.fixture
def home(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BODYCAM_VAULT_PASSWORD", PASSWORD)
    monkeypatch.setenv("BODYCAM_VAULT_NEW_PASSWORD", PASSWORD)
    return tmp_path / "home"


def run(home: Path, user: str | None, *argv: Any) -> int:
    args = [str(a) for a in argv]
    extra = ["--home", str(home)] + (["--user", user] if user else [])
    # the group (and sub-group) words come first, then options
    words = 2 if args[0] in ("hold", "audit", "user", "officer", "camera", "dock") else 1
    return main(["vault", *args[:words], *extra, *args[words:]])


def test_the_back_office_from_the_command_line(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = Site.create(tmp_path / "site")
    site.vault_key.save(tmp_path / "vault.key")
    assert (
        main(
            [
                "vault",
                "init",
                "--home",
                str(home),
                "--store",
                site.store.url,
                "--site",
                site.site,
                "--policy",
                "heusden",
                "--admin",
                "admin",
                "--vault-key",
                str(tmp_path / "vault.key"),
            ]
        )
        == 0
    )
    assert "municipalities heusden" in capsys.readouterr().out
    for user, role in (
        ("cora", "coordinator"),
        ("piet", "privacy_officer"),
        ("timer", "scheduler"),
        ("sec", "municipal_secretary"),
    ):
        assert (
            run(home, "admin", "user", "add", user, "--municipality", "heusden", "--role", role)
            == 0
        )
    cam = site.camera("BC-00000001")
    (tmp_path / "DEVICE.json").write_text(
        json.dumps({"device_id": cam.device_id, "public_key": cam.public_hex})
    )
    assert (
        run(home, "cora", "camera", "add", tmp_path / "DEVICE.json", "--municipality", "heusden")
        == 0
    )
    out = capsys.readouterr().out
    assert "camera BC-00000001 registered" in out and "registry v1 published" in out
    assert list(site.store.list("registry/"))
    assert (
        run(
            home,
            "cora",
            "officer",
            "add",
            "boa-7",
            "--municipality",
            "heusden",
            "--name",
            "Officer Seven",
        )
        == 0
    )
    assert (
        run(
            home, "cora", "camera", "assign", cam.device_id, "boa-7", "--start", "2026-11-01T00:00Z"
        )
        == 0
    )
    # every time a command prints is UTC with `Z` (crypto/timestamps.py)
    assert "from 2026-11-01T00:00:00Z, standing" in capsys.readouterr().out
    site.dock_key.save(tmp_path / "dock.key")
    assert run(home, "cora", "dock", "add", "dock-1", site.dock_key.public_bytes().hex()) == 0
    # A coordinator may not purge; refused, exit 1, one line.
    assert run(home, "cora", "purge") == 1
    assert "cora may not retention.purge" in capsys.readouterr().err

    started = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    rid = site.record(cam.device_id, started, ts=make_ts(60))
    assert run(home, "timer", "sync") == 0
    assert "1 added" in capsys.readouterr().out
    assert run(home, "piet", "list", "--camera", cam.device_id) == 0
    listing = capsys.readouterr().out
    assert rid in listing and "officer boa-7" in listing
    assert run(home, "piet", "show", rid) == 0
    shown = capsys.readouterr().out
    assert "pre-roll 30.0 s" in shown and "by dock-1" in shown and "seg-000000.bcs" in shown
    assert f"record press   {utc_text(started)}" in shown, shown
    assert run(home, "piet", "verify", f"{cam.device_id}/{rid}") == 0
    assert capsys.readouterr().out.startswith("OK ")

    mp4 = tmp_path / "out" / "handover.mp4"
    mp4.parent.mkdir()
    assert (
        run(home, "piet", "decrypt", rid, "--out", mp4, "--purpose", "criminal_investigation") == 0
    )
    with av.open(str(mp4)) as container:
        assert container.format.name.startswith("mov,mp4")
        video = container.streams.video[0]
        assert (video.codec_context.name, video.width, video.height) == ("h264", 64, 48)
        assert sum(1 for _ in container.decode(video)) == 60
    assert oct(os.stat(mp4).st_mode & 0o777) == "0o600"
    ts = tmp_path / "out" / "copy.ts"
    assert (
        run(home, "piet", "decrypt", rid, "--out", ts, "--purpose", "criminal_investigation") == 0
    )
    assert ts.read_bytes() == site.plaintexts[rid]
    capsys.readouterr()
    # An access request never gives a copy.
    assert (
        run(
            home,
            "piet",
            "decrypt",
            rid,
            "--out",
            tmp_path / "out" / "av.mp4",
            "--purpose",
            "access_request",
        )
        == 1
    )
    assert "no copy for purpose 'access_request'" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "out")) == ["copy.ts", "handover.mp4"]

    assert (
        run(
            home,
            "sec",
            "hold",
            "place",
            rid,
            "--kind",
            "complaint",
            "--reference",
            "K-2026-1",
            "--reason",
            "complaint by a citizen",
        )
        == 0
    )
    hold_id = capsys.readouterr().out.split()[1]
    assert run(home, "piet", "list", "--hold", "complaint") == 0
    assert rid in capsys.readouterr().out
    assert run(home, "timer", "purge", "--dry-run") == 0
    assert "0 recording(s) due" in capsys.readouterr().out
    assert run(home, "sec", "hold", "lift", hold_id, "--reason", "procedure ended") == 0
    assert run(home, "piet", "audit", "verify") == 0
    assert "chain intact" in capsys.readouterr().out
    assert run(home, "piet", "audit", "anchor") == 0
    assert run(home, "piet", "audit", "show", "--limit", "500") == 0
    audit = capsys.readouterr().out
    for what in (
        "recording.decrypt",
        "hold.place",
        "hold.lift",
        "catalog.sync",
        "camera.register",
        "registry.publish",
        "retention.purge",
    ):
        assert what in audit, what
    assert "refused" in audit

    # the unattended job: a credentials file, 0600 only
    creds = tmp_path / "timer.json"
    creds.write_text(json.dumps({"username": "timer", "password": PASSWORD}))
    os.chmod(creds, 0o644)
    assert main(["vault", "purge", "--home", str(home), "--credentials", str(creds)]) == 1
    assert "readable by others" in capsys.readouterr().err
    os.chmod(creds, 0o600)
    assert main(["vault", "purge", "--home", str(home), "--credentials", str(creds)]) == 0
    # wrong password: refused and audited
    os.environ["BODYCAM_VAULT_PASSWORD"] = "wrong"
    assert run(home, "piet", "list") == 1
    assert "unknown, inactive or wrong password" in capsys.readouterr().err
    from vault.audit.models import AuditEntry

    assert AuditEntry.objects.filter(action="auth.login", actor="piet", result="refused").exists()


def test_commands_need_a_set_up_site(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(home, "someone", "list") == 1
    assert "site.toml does not exist" in capsys.readouterr().err


def test_decrypting_a_local_folder_into_mp4_gives_a_real_mp4(tmp_path: Path) -> None:
    site = Site.create(tmp_path / "site")
    rid = site.record("BC-1", dt.datetime(2026, 11, 2, tzinfo=dt.UTC), ts=make_ts(30))
    (folder,) = (tmp_path / "site" / "cam" / "BC-1").glob(f"*/{rid}")
    site.vault_key.save(tmp_path / "vault.key")
    out = tmp_path / "local.mp4"
    assert (
        main(
            [
                "vault",
                "decrypt",
                str(folder),
                "--key",
                str(tmp_path / "vault.key"),
                "--device-key",
                site.camera("BC-1").public_hex,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    with av.open(str(out)) as container:
        assert container.format.name.startswith("mov,mp4")
        assert sum(1 for _ in container.decode(video=0)) == 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.mp4", "site", "vault.key"]
