"""Test support for the back office: databases, a populated store, users per role.

- `configure_django(home)`: Django set up once per process on a state folder.
- `use_database(url)`: point Django's default connection at another database (SQLite
  file or PostgreSQL) and migrate it, so one pytest run covers both backends.
- `Site`: a store filled the way docks fill it (sealed recordings of registered
  cameras, signed ingest records), the municipalities of the shipped policies, and
  a user for every role.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

T0 = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
PASSWORD = "correct horse battery staple"


def configure_django(home: Path) -> None:
    import django
    from django.conf import settings

    if settings.configured:
        return
    # Never the developer's own site: this process's back office lives in `home`.
    os.environ["BODYCAM_VAULT_HOME"] = str(home)
    os.environ["BODYCAM_VAULT_DATABASE"] = f"sqlite:///{home / 'default.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "vault.site.settings"
    django.setup()
    # Fast hashing in tests: the password checks are the same, only cheaper.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def use_database(url: str, migrate: bool = True) -> None:
    from django.core.management import call_command
    from django.db import connections

    from vault.site.settings import database_from_url

    connections.close_all()
    configured = connections.configure_settings({"default": database_from_url(url)})
    connections._settings = configured
    connections.__dict__["settings"] = configured
    try:
        del connections["default"]
    except AttributeError:
        pass
    if migrate:
        call_command("migrate", verbosity=0, interactive=False)


def make_ts(frames: int = 30, size: tuple[int, int] = (64, 48)) -> bytes:
    """A real H.264 MPEG-TS stream (one keyframe a second) for decrypt-to-MP4 tests."""
    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": "keyint=30:min-keyint=30:scenecut=0:repeat-headers=1",
        }
        for i in range(frames):
            img = np.full((size[1], size[0], 3), (i * 8) % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def sound_only_ts(seconds: float = 2.0) -> bytes:
    """A real MPEG-TS with AAC sound and no video stream at all: footage with no picture."""
    from fractions import Fraction

    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        stream: Any = out.add_stream("aac", rate=48000)
        stream.layout = "mono"
        for i in range(int(seconds * 48000 / 1024)):
            t = (np.arange(1024) + i * 1024) / 48000
            samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 48000, i * 1024, Fraction(1, 48000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


@dataclass
class FakeCamera:
    device_id: str
    key: Any  # SigningKey

    @property
    def public_hex(self) -> str:
        return str(self.key.public_bytes().hex())


@dataclass
class Site:
    """A store with recordings, and the keys of the back office, cameras and a dock."""

    root: Path
    store: Any
    vault_key: Any
    dock_key: Any
    registry_key: Any
    site: str = "s1"
    cameras: dict[str, FakeCamera] = field(default_factory=dict)
    plaintexts: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path, store: Any | None = None) -> Site:
        from crypto.keys import SigningKey, VaultKey
        from store import FileStore

        root.mkdir(parents=True, exist_ok=True)
        return cls(
            root,
            store or FileStore(root / "store"),
            VaultKey.generate(),
            SigningKey.generate(kind="dock"),
            SigningKey.generate(kind="registry"),
        )

    def camera(self, device_id: str) -> FakeCamera:
        from crypto.keys import SigningKey

        if device_id not in self.cameras:
            self.cameras[device_id] = FakeCamera(device_id, SigningKey.generate(kind="device"))
        return self.cameras[device_id]

    def record(
        self,
        device_id: str,
        started: dt.datetime,
        *,
        segments: int = 2,
        preroll: float = 30.0,
        ts: bytes | None = None,
        finish: bool = True,
        ingest: bool = True,
        key: Any = None,
        rec_id: str | None = None,
        chunk_size: int = 4096,
    ) -> str:
        """Seal a recording as the camera would and store it as the dock would."""
        from crypto.seal import RecordingSealer
        from formats.ingest_record import write_ingest_record
        from store import object_key

        cam = self.camera(device_id)
        signer = key or cam.key
        start = started.timestamp()
        rec_id = rec_id or f"{started:%Y%m%dT%H%M%SZ}-{os.urandom(2).hex()}"
        folder = self.root / "cam" / device_id / os.urandom(4).hex() / rec_id
        sealer = RecordingSealer(
            folder,
            device_id,
            rec_id,
            signer,
            [self.vault_key.public_bytes()],
            start,
            chunk_size=chunk_size,
        )
        plain = bytearray()
        for i in range(segments):
            data = ts if (ts is not None and i == 0) else (os.urandom(3000) if ts is None else b"")
            if ts is not None and i > 0:
                break
            seg = sealer.begin_segment(i, "video/mp2t", i * 900_000, start - preroll + 10 * i)
            seg.write(data)
            seg.close()
            plain += data
        if finish:
            sealer.finish(start + 10 * segments)
        self.plaintexts[rec_id] = bytes(plain)
        stored = {}
        for f in sorted(folder.iterdir()):
            raw = f.read_bytes()
            sha = hashlib.sha256(raw).hexdigest()
            k = object_key(self.site, device_id, rec_id, f.name, sha)
            self.store.put_bytes(k, raw)
            stored[f.name] = {"key": k, "sha256": sha, "size": len(raw)}
        if ingest:
            segs = [{"name": n, **v} for n, v in stored.items() if n.startswith("seg-")]
            write_ingest_record(
                self.store,
                self.dock_key,
                site=self.site,
                device_id=device_id,
                recording_id=rec_id,
                complete=finish,
                header=stored["recording.hdr"],
                manifest=stored["manifest.bcm"],
                segments=segs,
                now=start + 3600,
            )
        return rec_id


def make_user(username: str, memberships: dict[str, list[str]], officer: Any = None) -> Any:
    """A user with roles per municipality code (directly: tests of other services)."""
    from django.contrib.auth.models import User

    from vault.accounts.models import Membership, Municipality

    user = User.objects.create_user(username, password=PASSWORD)
    for code, roles in memberships.items():
        muni = Municipality.objects.get(code=code)
        for role in roles:
            Membership.objects.create(
                user=user, municipality=muni, role=role, granted_at=T0, granted_by="test"
            )
    if officer is not None:
        officer.user = user
        officer.save()
    return user


def make_municipalities(policies: list[str]) -> None:
    from vault.accounts.models import Municipality
    from vault.policy import load_policy

    for name in policies:
        for m in load_policy(name).municipality:
            Municipality.objects.get_or_create(
                code=m.code, defaults={"name": m.name, "policy_name": name}
            )


def actor(username: str) -> Any:
    from django.contrib.auth.models import User

    from vault.access import actor_for

    return actor_for(User.objects.get(username=username))
