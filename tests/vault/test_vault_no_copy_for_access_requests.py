"""Access requests are viewing only: no command and no route of the back office produces a
copy for one.

The sweep enumerates what exists when the test runs: every leaf of the `bodycam vault`
argparse tree and every URL pattern Django's resolver knows (the web pages included once
they exist). A command can yield footage bytes when it writes a file (an output option);
each such command is called with every access-request context it accepts (the purpose,
the access request's hold, its reference) and must refuse, leave no file and audit the
refusal. Every route is requested (GET and POST) with that context as a privacy officer
and must not answer with footage as a download or with a package. Canaries (a command
and a route that do leak) prove the sweep would notice.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from export_support import World, make_world, site_home
from vault_support import PASSWORD, T0, actor

import bodycam_cli

USER = "u-privacy_officer"  # may decrypt, export and handle access requests: the widest
OUTPUT_DESTS = ("out", "output", "out_dir", "dest")
ACCESS_REFERENCE = "AVG-2026-015"


@pytest.fixture
def world(db: str, tmp_path: Path, clock: Any) -> World:
    return make_world(tmp_path, clock, "heusden")


@pytest.fixture
def access_hold(world: World) -> Any:
    from vault.catalog.services import hold_place

    return hold_place(
        actor=actor(USER),
        recording=world.recording,
        kind="access_request",
        reference=ACCESS_REFERENCE,
        reason="citizen asks to see the footage",
        store=world.site.store,
        clock=world.clock,
        received_at=T0 + dt.timedelta(days=2),
    )


@pytest.fixture
def home(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BODYCAM_VAULT_PASSWORD", PASSWORD)
    return site_home(world, tmp_path / "home")


# --- the argparse tree ---------------------------------------------------------------------


def leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for action in subs:
        for name, child in action.choices.items():
            yield from leaves(child, (*path, name))


def _option(parser: argparse.ArgumentParser, dest: str) -> argparse.Action | None:
    return next((a for a in parser._actions if a.dest == dest and a.option_strings), None)


def writes_files(parser: argparse.ArgumentParser) -> bool:
    return any(a.dest in OUTPUT_DESTS for a in parser._actions)


def contexts(parser: argparse.ArgumentParser, hold: Any) -> list[dict[str, str]]:
    """Each access-request context this command can be given, alone and all together."""
    given = {"purpose": "access_request", "hold": str(hold.id), "reference": hold.reference}
    usable = {k: v for k, v in given.items() if _option(parser, k) is not None}
    out = [{k: v} for k, v in usable.items()]
    if len(usable) > 1:
        out.append(usable)
    return out


def argv_for(
    path: tuple[str, ...],
    parser: argparse.ArgumentParser,
    ref: str,
    out: Path,
    home: Path,
    context: dict[str, str],
) -> list[str]:
    argv = [*path, "--home", str(home), "--user", USER]
    for a in parser._actions:
        if a.option_strings or a.dest in ("help",) or isinstance(a, argparse._SubParsersAction):
            continue
        argv.append(ref)  # positional: the recording
    argv += ["--out", str(out)]
    for k, v in context.items():
        argv += [f"--{k}", v]
    # Any other required option is unknown to this sweep: it must be taught about it.
    for a in parser._actions:
        if (
            a.required
            and a.option_strings
            and a.dest not in (*OUTPUT_DESTS, *context)
            and a.dest != "reference"
        ):
            raise AssertionError(
                f"{' '.join(path)}: required option {a.option_strings} is "
                "new to the access-request sweep: give it a value here"
            )
        if a.required and a.dest == "reference" and "reference" not in context:
            argv += ["--reference", "OM-2026-0042"]
    return argv


def run_parser(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    """What `bodycam_cli.main` does with a parser: run the handler, an error is exit 1."""
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Exception:
        return 1


def sweep_cli(
    parser: argparse.ArgumentParser, world: World, hold: Any, home: Path, tmp: Path
) -> tuple[list[str], list[str]]:
    """(commands exercised, violations)."""
    from vault.audit.models import AuditEntry

    exercised, violations = [], []
    ref = str(world.recording)
    back_office = [(p, sp) for p, sp in leaves(parser) if p[:1] == ("vault",)]
    assert back_office, "no `bodycam vault` commands found"
    for path, sub in back_office:
        if not writes_files(sub):
            continue
        name = " ".join(path)
        for n, ctx in enumerate(contexts(sub, hold)):
            if not ctx:
                continue
            out_dir = tmp / f"{'-'.join(path)}-{n}"
            out_dir.mkdir(parents=True)
            refused_before = AuditEntry.objects.filter(actor=USER, result="refused").count()
            code = run_parser(parser, argv_for(path, sub, ref, out_dir / "copy.mp4", home, ctx))
            exercised.append(f"{name} {sorted(ctx)}")
            left = list(out_dir.iterdir())
            audited = (
                AuditEntry.objects.filter(actor=USER, result="refused").count() > refused_before
            )
            if code == 0 or left or not audited:
                violations.append(
                    f"{name} with {ctx}: exit {code}, files {left}, refusal audited {audited}"
                )
        if not contexts(sub, hold):
            violations.append(
                f"{name} writes files but takes no purpose, hold or reference: "
                "it cannot be told the copy would be for an access request"
            )
    return exercised, violations


def test_no_command_gives_a_copy_for_an_access_request(
    world: World, access_hold: Any, home: Path, tmp_path: Path
) -> None:
    parser = bodycam_cli.build_parser()
    exercised, violations = sweep_cli(parser, world, access_hold, home, tmp_path / "cli")
    assert violations == []
    # What exists today, so the sweep's reach is visible: decrypt, export and
    # training-export write files.
    assert {e.split(" [")[0] for e in exercised} == {
        "vault decrypt",
        "vault export",
        "vault training-export",
    }
    # decrypt: purpose; export: 3 alone + together; training-export: purpose, hold, both
    assert len(exercised) == 1 + 4 + 3
    # The prosecutor's package itself still works for the same recording.
    from vault.export.services import export_key_ensure, recording_export

    recording_export(
        actor=actor(USER),
        recording=world.recording,
        store=world.site.store,
        vault_key=world.site.vault_key,
        export_key=export_key_ensure(home),
        out=tmp_path / "om",
        reference="OM-1",
        basis="prosecutor_claim",
        clock=world.clock,
    )
    assert (tmp_path / "om" / "recording.mp4").exists()


def test_offline_decrypt_of_a_local_folder_refuses_an_access_request(
    world: World, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vault decrypt ./FOLDER --key` runs without the back office (nothing to audit), but
    it too gives no copy for an access request."""
    rid = world.recording.recording_id
    (folder,) = (world.site.root / "cam").glob(f"*/*/{rid}")
    out = tmp_path / "offline" / "copy.mp4"
    out.parent.mkdir()
    argv = [
        "vault",
        "decrypt",
        str(folder),
        "--key",
        str(home / "vault.key"),
        "--device-key",
        world.site.camera(world.recording.device_id).public_hex,
        "--out",
        str(out),
    ]
    assert bodycam_cli.main([*argv, "--purpose", "access_request"]) == 1
    assert "viewing only: no copy" in capsys.readouterr().err
    assert list(out.parent.iterdir()) == []
    assert bodycam_cli.main(argv) == 0 and out.exists()  # the same command, otherwise


def test_the_command_sweep_notices_a_leaking_command(
    world: World, access_hold: Any, home: Path, tmp_path: Path
) -> None:
    parser = bodycam_cli.build_parser()
    vault = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[
        "vault"
    ]
    sub = next(a for a in vault._actions if isinstance(a, argparse._SubParsersAction))
    leak = sub.add_parser("leak")
    leak.add_argument("recording")
    leak.add_argument("--home")
    leak.add_argument("--user")
    leak.add_argument("--out", type=Path)
    leak.add_argument("--purpose")
    plaintext = world.site.plaintexts[world.recording.recording_id]
    leak.set_defaults(func=lambda args: args.out.write_bytes(plaintext))
    _, violations = sweep_cli(parser, world, access_hold, home, tmp_path / "cli")
    assert len(violations) == 1 and violations[0].startswith("vault leak with")


# --- the URL patterns ------------------------------------------------------------------------


def url_patterns(patterns: list[Any] | None = None, prefix: str = "") -> Iterator[tuple[str, Any]]:
    from django.urls import URLPattern, URLResolver, get_resolver

    for p in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(p, URLResolver):
            yield from url_patterns(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p


def _fill(route: str, world: World, hold: Any) -> str:
    """A concrete path for a route: each parameter filled from the recording or the hold."""
    import re

    rec = world.recording

    def value(m: re.Match[str]) -> str:
        conv, name = (m[1] or "str"), m[2]
        if "hold" in name:
            return str(hold.id)
        if "device" in name:
            return rec.device_id
        if conv == "int":
            return str(rec.pk)
        if conv == "path":
            return str(rec)
        return rec.recording_id

    path = re.sub(r"<(?:(\w+):)?(\w+)>", value, route)
    return "/" + path.lstrip("^").rstrip("$")


def footage_markers(world: World, tmp: Path) -> list[bytes]:
    """Byte strings only footage of this recording contains: its plaintext MPEG-TS and
    the H.264 data an MP4 of it carries."""
    import av

    from vault.media import remux_to_mp4

    plaintext = world.site.plaintexts[world.recording.recording_id]
    (tmp / "m.ts").write_bytes(plaintext)
    remux_to_mp4(tmp / "m.ts", tmp / "m.mp4")
    with av.open(str(tmp / "m.mp4")) as c:
        first = bytes(next(p for p in c.demux(c.streams.video[0]) if p.size))
    return [plaintext[:376], first[16:80]]


def response_bytes(response: Any) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(bytes(c) for c in response.streaming_content)
    return bytes(response.content)


def sweep_urls(world: World, hold: Any, tmp: Path) -> tuple[list[str], list[str]]:
    from django.test import Client, override_settings

    markers = footage_markers(world, tmp)
    client = Client()
    client.force_login(actor(USER).user)
    checked, violations = [], []
    context = {"purpose": "access_request", "hold": str(hold.id), "reference": hold.reference}
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        for route, _ in url_patterns():
            path = _fill(route, world, hold)
            for method in ("get", "post"):
                send: Callable[..., Any] = getattr(client, method)
                # secure: production settings redirect plain HTTP; follow where it leads
                response = send(path, context, secure=True, follow=True)
                body = response_bytes(response)
                checked.append(f"{method.upper()} {path}")
                disposition = response.get("Content-Disposition", "")
                has_footage = any(m in body for m in markers)
                if body.startswith(b"PK\x03\x04"):
                    violations.append(f"{method.upper()} {path}: answers with a zip (package)")
                elif has_footage and (
                    "attachment" in disposition
                    or 200 <= response.status_code < 300
                    and "no-store" not in response.get("Cache-Control", "")
                ):
                    violations.append(
                        f"{method.upper()} {path}: footage as a keepable copy "
                        f"({response.status_code}, {disposition or 'inline'})"
                    )
    return checked, violations


def test_no_route_gives_a_copy_for_an_access_request(
    world: World, access_hold: Any, tmp_path: Path
) -> None:
    from django.urls import get_resolver

    checked, violations = sweep_urls(world, access_hold, tmp_path)
    assert violations == []
    # Every pattern the resolver has was requested twice (GET and POST).
    # Every pattern the resolver has (nested includes too) was requested, GET and POST.
    assert len(checked) == 2 * len(list(url_patterns()))
    assert len(list(url_patterns())) >= sum(
        1 for p in get_resolver().url_patterns if not hasattr(p, "url_patterns")
    )


def test_the_route_sweep_notices_a_leaking_route(
    world: World, access_hold: Any, tmp_path: Path
) -> None:
    from django.http import HttpResponse
    from django.test import override_settings
    from django.urls import clear_url_caches, path

    plaintext = world.site.plaintexts[world.recording.recording_id]

    def download(request: Any, recording_id: str) -> HttpResponse:
        r = HttpResponse(plaintext, content_type="video/mp2t")
        r["Content-Disposition"] = f'attachment; filename="{recording_id}.ts"'
        return r

    def listing(request: Any) -> HttpResponse:
        return HttpResponse(b"<p>recordings</p>")

    urls = types.ModuleType("leaky_urls")
    urls.urlpatterns = [
        path("recordings/", listing),  # type: ignore[attr-defined]
        path("recordings/<str:recording_id>/download", download),
    ]
    sys.modules["leaky_urls"] = urls
    try:
        with override_settings(ROOT_URLCONF="leaky_urls"):
            clear_url_caches()
            checked, violations = sweep_urls(world, access_hold, tmp_path)
    finally:
        clear_url_caches()
        del sys.modules["leaky_urls"]
    assert len(checked) == 4
    assert [v.split(":")[0] for v in violations] == [
        f"GET /recordings/{world.recording.recording_id}/download",
        f"POST /recordings/{world.recording.recording_id}/download",
    ]
