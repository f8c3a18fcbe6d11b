"""Browser-test support: a back office on a real store, served by gunicorn, and Chromium.

- `build_site(root)`: a file store filled the way the dock fills it (sealed H.264
  recordings of two cameras, signed ingest records, each camera's signed event log),
  then `vault.web.seed.seed_back_office` in a fresh process (its own Django), as
  `make demo` does.
- `Server`: `bodycam vault serve --local-http` on a free 127.0.0.1 port, stopped after
  (`env` adds to its environment, e.g. GUNICORN_CMD_ARGS for a gunicorn config file).
- `HttpSession`: a signed-in session over plain HTTP (urllib), for many requests at once.
- `chromium()`: Debian's Chromium under Playwright; every thread it uses starts before
  the browser is handed out and is joined after it closed.
- `axe_source()`: axe-core from the npm registry (`npm pack`), cached once per machine.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import http.cookiejar
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "vault"))

PASSWORD = "correct horse battery staple"
# Extra recordings of the browser tests' site (`build_site(extra=...)`), by label.
NO_PICTURE = "no picture"  # decrypts and verifies; its MPEG-TS holds sound, no video stream
LONG = "long"  # LONG_SECONDS of 640x360: its stream takes a few seconds to encode
LONG_SECONDS = 40
BODYCAM = "import bodycam_cli; raise SystemExit(bodycam_cli.main())"  # the `bodycam` command
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE_VERSION = "4.14.1"
AXE_CACHE = Path(
    os.environ.get(
        "BODYCAM_AXE_CACHE", Path.home() / ".cache" / "bodycam" / f"axe-core-{AXE_VERSION}"
    )
)


class _Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def make_ts(seconds: int, size: tuple[int, int] = (640, 360)) -> bytes:
    """Real H.264 in MPEG-TS: a moving gradient, one keyframe a second, 30 fps."""
    import io

    import av
    import numpy as np

    buf = io.BytesIO()
    w, h = size
    ramp = np.tile(np.linspace(40, 200, w, dtype=np.uint8), (h, 1))
    with av.open(buf, "w", format="mpegts") as out:
        stream: Any = out.add_stream("libx264", rate=30)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": "keyint=30:min-keyint=30:scenecut=0:repeat-headers=1",
        }
        for i in range(seconds * 30):
            img = np.stack([np.roll(ramp, i * 4, axis=1), ramp // 2, 255 - ramp], axis=2)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def _event_log(site_obj: Any, device_id: str, recordings: list[tuple[str, float, float]]) -> None:
    """The camera's signed event log for the shift, offloaded into the store as one piece."""
    from formats.eventlog import EventLog
    from store import events_key

    cam = site_obj.camera(device_id)
    path = site_obj.root / "events" / device_id / "events.jsonl"
    clock = _Clock(recordings[0][1] - 600)
    log = EventLog(path, cam.key, clock)
    log.append("boot")
    log.append("profile_applied", profile_name="heusden", profile_version=3)
    for rec_id, start, stop in recordings:
        clock.t = start
        log.append("button", button="record", gesture="press", accepted=True)
        log.append(
            "record_start",
            recording_id=rec_id,
            prerecord_configured=30,
            prerecord_covered=30.0,
            prerecord_short=False,
            prerecord_short_reason="",
            first_pts=0,
            live_pts=0,
            audio=True,
        )
        log.append("indicator", indicator="led", on=True, reason="recording")
        log.append("indicator", indicator="beep", reason="recording started")
        clock.t = stop
        log.append(
            "record_stop",
            recording_id=rec_id,
            reason="button",
            duration_seconds=stop - start,
            prerecord_covered=30.0,
            segments=1,
        )
        log.append("indicator", indicator="led", on=False, reason="recording stopped")
    clock.t = recordings[-1][2] + 600
    log.append("dock", charging=True)
    log.close()
    raw = path.read_bytes()
    key = events_key(site_obj.site, device_id, 0, len(raw), hashlib.sha256(raw).hexdigest())
    site_obj.store.put_bytes(key, raw)


@dataclass
class WebSite:
    root: Path
    home: Path
    recent: str  # DEVICE/RECORDING of a recording inside retention (viewed)
    old: str  # one whose 28 days have passed (purged unless held)
    officer_user: str = "olaf"
    users: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)  # label -> DEVICE/RECORDING


def build_site(
    root: Path,
    *,
    seconds: int = 6,
    size: tuple[int, int] = (640, 360),
    ts: bytes | None = None,
    extra: dict[str, bytes] | None = None,
    database: str | None = None,
) -> WebSite:
    """The seeded back office; `extra` adds CAM-A recordings of the given MPEG-TS, by label
    (not in the camera's event log: they get no shift report). `database`: a URL
    (PostgreSQL) instead of the home's SQLite file."""
    from vault_support import Site

    site_obj = Site.create(root / "site")
    site_obj.site = "demo"
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    recent_at = now - dt.timedelta(hours=20)
    old_at = now - dt.timedelta(days=29)
    ts = ts if ts is not None else make_ts(seconds, size)
    # Sealed in the camera's own chunk size (64 KiB), so opening costs what it does for real.
    recent = site_obj.record("CAM-A", recent_at, ts=ts, preroll=30.0, chunk_size=65536)
    old = site_obj.record("CAM-A", old_at, ts=make_ts(2, (320, 180)), preroll=30.0)
    other = site_obj.record(
        "CAM-B", recent_at + dt.timedelta(minutes=40), ts=make_ts(2, (320, 180))
    )
    added = {
        label: "CAM-A/"
        + site_obj.record("CAM-A", recent_at + dt.timedelta(hours=1, minutes=i), ts=data)
        for i, (label, data) in enumerate((extra or {}).items())
    }
    _event_log(
        site_obj,
        "CAM-A",
        [
            (old, old_at.timestamp(), old_at.timestamp() + 2),
            (recent, recent_at.timestamp(), recent_at.timestamp() + seconds),
        ],
    )
    _event_log(
        site_obj, "CAM-B", [(other, recent_at.timestamp() + 2400, recent_at.timestamp() + 2402)]
    )
    key_path = root / "vault.key"
    site_obj.vault_key.save(key_path)
    spec = {
        "home": str(root / "home"),
        "store": f"file://{root / 'site' / 'store'}",
        "site": site_obj.site,
        "vault_key": str(key_path),
        "password": PASSWORD,
        "docks": {"dock-1": site_obj.dock_key.public_bytes().hex()},
        "cameras": [
            {
                "device_id": "CAM-A",
                "public_key": site_obj.camera("CAM-A").public_hex,
                "officer_code": "boa-1",
                "officer_name": "Olaf Jansen",
                "officer_user": "olaf",
            },
            {
                "device_id": "CAM-B",
                "public_key": site_obj.camera("CAM-B").public_hex,
                "officer_code": "boa-2",
                "officer_name": "Olga de Vries",
                "officer_user": "olga",
            },
        ],
    }
    seed(spec, recordings=3 + len(added), database=database)
    return WebSite(
        root=root, home=root / "home", recent=f"CAM-A/{recent}", old=f"CAM-A/{old}", extra=added
    )


def _env(home: Path, database: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BODYCAM_VAULT", "DJANGO_"))}
    env["BODYCAM_VAULT_HOME"] = str(home)
    if database is not None:
        env["BODYCAM_VAULT_DATABASE"] = database
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def seed(spec: dict[str, Any], recordings: int = 3, database: str | None = None) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "vault.web.seed"],
        input=json.dumps(spec),
        env=_env(Path(spec["home"]), database),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"seeding the back office failed: {proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["recordings"] != recordings or result["reports"] != 3 or result["problems"]:
        raise RuntimeError(f"seeded back office is not as built: {result}")
    return result


def cli(home: Path, *args: str, user: str) -> subprocess.CompletedProcess[str]:
    env = _env(home)
    env["BODYCAM_VAULT_PASSWORD"] = PASSWORD
    return subprocess.run(
        [sys.executable, "-c", BODYCAM, "vault", *args, "--home", str(home), "--user", user],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`bodycam vault serve` in a child process on 127.0.0.1.

    With `cwd`, the installed `bodycam` command run from that folder, as a user runs it;
    `workers`: its --workers (default: the command's own default, the cores).
    """

    def __init__(
        self,
        home: Path,
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        workers: int | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        bodycam = [sys.executable, "-c", BODYCAM]
        if cwd is not None:
            bodycam = [str(Path(sys.executable).with_name("bodycam"))]
            env = {**(env or {}), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                *bodycam,
                "vault",
                "serve",
                "--home",
                str(home),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--local-http",
                "--threads",
                "4",
                *(["--workers", str(workers)] if workers is not None else []),
            ],
            env={**_env(home), **(env or {})},
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/login/", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the back office did not start: {log_path.read_text()}")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class HttpSession:
    """A signed-in browser session without a browser (urllib with a cookie jar), for
    many requests at once; redirects are answers, not followed."""

    def __init__(self, base: str, user: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )
        self.post("/login/", {"username": user, "password": PASSWORD}, expect=302)

    def csrf(self) -> str:
        for c in self.jar:
            if c.name == "csrftoken":
                return str(c.value)
        self.request("GET", "/login/")
        return self.csrf()

    def request(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.base + path, data=data, method=method)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with self.opener.open(req, timeout=60) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def post(self, path: str, form: dict[str, str], expect: int | None = None) -> Any:
        body = urllib.parse.urlencode({**form, "csrfmiddlewaretoken": self.csrf()}).encode()
        status, headers, data = self.request(
            "POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        if expect is not None:
            assert status == expect, (path, status, data[:500])
        return status, headers, data


@contextmanager
def chromium() -> Iterator[Any]:
    """A Chromium browser driven by Playwright's sync API; closed, with its threads, after.

    Playwright writes files (a screenshot with a path) through its event loop's default
    thread pool, which starts a thread whenever a call finds none idle: how many start,
    and in which test, depends on timing. The loop's close does not wait for them
    either. So the loop gets a pool of one thread, started here, and every thread that
    started with the browser (the pool's, the driver process's watcher) is joined after
    it closed: none starts or is left behind in a test.
    """
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium (make system-deps)")
    before = set(threading.enumerate())
    files = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playwright-files")
    started: set[threading.Thread] = set()
    try:
        files.submit(int).result()  # its one thread runs from here on
        with sync_playwright() as p:
            # The sync API runs its event loop in this thread, marked running between calls.
            asyncio.get_running_loop().set_default_executor(files)
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            started = set(threading.enumerate()) - before
            try:
                yield browser
            finally:
                browser.close()
    finally:
        files.shutdown(wait=True)
        for thread in started:
            thread.join(timeout=30)


def axe_source() -> str:
    """axe.min.js of axe-core AXE_VERSION, fetched once with `npm pack` into the cache."""
    target = AXE_CACHE / "package" / "axe.min.js"
    if not target.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is not installed (Debian: apt-get install npm)")
        AXE_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "pack",
                f"axe-core@{AXE_VERSION}",
                "--pack-destination",
                str(AXE_CACHE),
                "--silent",
            ],
            check=True,
            timeout=300,
            capture_output=True,
        )
        with tarfile.open(AXE_CACHE / f"axe-core-{AXE_VERSION}.tgz") as tar:
            member = tar.getmember("package/axe.min.js")
            tar.extractall(AXE_CACHE, members=[member], filter="data")
    return target.read_text()
