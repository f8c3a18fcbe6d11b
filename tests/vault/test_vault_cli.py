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
from vault.policy import load_policy


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
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
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
                "--create",  # a new store
            ]
        )
        == 0
    )
    assert "municipalities heusden" in capsys.readouterr().out
    # Not in a terminal and no new password given: the line says which variable to set.
    monkeypatch.delenv("BODYCAM_VAULT_NEW_PASSWORD")
    add_cora = ["user", "add", "cora", "--municipality", "heusden", "--role", "coordinator"]
    assert run(home, "admin", *add_cora) == 1
    assert capsys.readouterr().err == (
        "bodycam: error: no new password for cora: set $BODYCAM_VAULT_NEW_PASSWORD, or run "
        "in a terminal to be asked\n"
    )
    monkeypatch.setenv("BODYCAM_VAULT_NEW_PASSWORD", PASSWORD)
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
    # The camera's event log, offloaded when it docked after the recording.
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "web"))
    from web_support import _event_log

    stop = started.timestamp() + 60
    _event_log(site, cam.device_id, [(rid, started.timestamp(), stop)])
    assert run(home, "timer", "sync") == 0
    assert "1 added" in capsys.readouterr().out
    # Who wears each camera and when it last docked: what the cameras page shows.
    from vault.commands.session import _fmt

    assert run(home, "cora", "camera", "list") == 0
    docked = _fmt(dt.datetime.fromtimestamp(stop + 600, dt.UTC))  # the log's dock event
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"heusden    {cam.device_id}") and "added" in line
    assert f" worn by boa-7        last docked {docked}  added " in line, line
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


def test_init_refuses_a_missing_or_empty_store_unless_told_to_create_one(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "disk" / "store"

    def init(store: str, *extra: str) -> tuple[int, str]:
        argv = ["vault", "init", "--home", str(home), "--store", store, "--policy", "heusden"]
        code = main([*argv, "--admin", "admin", *extra])
        return code, capsys.readouterr().err.strip()

    # As the dock: a missing store folder is a disk that is not mounted, not a new store.
    assert init(f"file://{root}") == (
        1,
        f"bodycam: error: --store file://{root}: the store's root folder {root} does not "
        "exist (is its disk mounted?); pass --create to make it",
    )
    assert not root.exists() and not home.exists()
    root.mkdir(parents=True)  # an empty mount point looks the same
    code, err = init(f"file://{root}")
    assert code == 1 and err.count("\n") == 0
    assert "no .bodycam-store); it is empty: is the store's disk mounted? pass --create" in err
    assert list(root.iterdir()) == [] and not home.exists()
    # Asked to: made, and written down with its absolute path (the folder init ran from
    # means nothing to a later command).
    monkeypatch.chdir(tmp_path / "disk")
    (tmp_path / "disk" / "heusden").mkdir()  # a name is a shipped policy, not this folder
    load_policy.cache_clear()  # looked up again, from this folder
    assert init("store", "--create")[0] == 0
    assert (root / ".bodycam-store").is_file()
    assert f'store = "file://{root}"' in (home / "site.toml").read_text()
    # Later commands never make one: the disk unmounted leaves an empty folder, and the
    # registry the coordinator publishes is not written into it.
    capsys.readouterr()
    add = ["user", "add", "cora", "--municipality", "heusden", "--role", "coordinator"]
    assert run(home, "admin", *add) == 0
    (root / ".bodycam-store").unlink()
    (root / ".staging").rmdir()
    assert run(home, "cora", "camera", "publish") == 1
    err = capsys.readouterr().err
    assert "has no .bodycam-store: is the disk mounted?" in err and err.count("\n") == 1, err
    assert list(root.iterdir()) == []


def test_the_set_up_in_the_readme_names_every_password_variable() -> None:
    readme = (Path(__file__).parents[2] / "vault" / "README.md").read_text()
    setup = readme.split("## Set up and use", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    before_user_add = setup.split("bodycam vault user add", 1)[0]
    for variable in ("BODYCAM_VAULT_PASSWORD", "BODYCAM_VAULT_NEW_PASSWORD"):
        assert f"${variable}" in before_user_add, variable


def test_a_store_written_as_a_relative_path_is_found_from_home_not_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vault.site.config import SiteConfig

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(tmp_path)  # the server runs from elsewhere (gunicorn --chdir)
    for written, meant in (
        ("store", f"file://{home}/store"),
        ("./store", f"file://{home}/store"),
        ("file:store", f"file://{home}/store"),
        ("file:///srv/bodycam/store", "file:///srv/bodycam/store"),
        ("s3://footage/site?endpoint=http://127.0.0.1:8333", None),
    ):
        (home / "site.toml").write_text(f'site = "s1"\nstore = "{written}"\n')
        assert SiteConfig.load(home).store == (meant or written), written


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
