"""On S3 (a real SeaweedFS): a hold is the object legal hold; the purge removes every version
of every object, and only once the Object Lock retention has expired."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vault_support import T0, Site, actor, make_municipalities, make_user

sys.path.insert(0, str(Path(__file__).parents[1] / "dock"))

from s3_support import REGION, WeedServer, s3_client, start_weed  # noqa: E402

from store import S3Store, s3_object_versions  # noqa: E402

LOCK_SECONDS = 4.0


@pytest.fixture(scope="session")
def weed() -> Iterator[WeedServer]:
    with tempfile.TemporaryDirectory(prefix="bodycam-vault-weed-") as tmp:
        server = start_weed(Path(tmp))
        try:
            yield server
        finally:
            server.stop()


def test_s3_holds_and_purge_of_every_version_after_the_lock(
    db: str, weed: WeedServer, tmp_path: Path, clock: Any
) -> None:
    from vault.catalog.models import Recording
    from vault.catalog.services import catalog_sync, hold_lift, hold_place, retention_purge
    from vault.registry.services import camera_register

    client = s3_client(weed.endpoint)
    # Objects are locked from "now" for the minimum the store allows (60 s): the store's
    # clock runs 60 - LOCK_SECONDS behind so the lock ends a few seconds from now.
    store = S3Store(
        "vault-purge",
        "t-" + secrets.token_hex(4),
        endpoint_url=weed.endpoint,
        region=REGION,
        client=client,
        retention_days=1e-6,
        clock=lambda: time.time() - 60 + LOCK_SECONDS,
    )
    try:
        site = Site.create(tmp_path / "site", store=store)
        make_municipalities(["heusden"])
        make_user("po", {"heusden": ["privacy_officer", "coordinator", "scheduler"]})
        po = actor("po")
        cam = site.camera("CAM-1")
        camera_register(
            actor=po,
            municipality="heusden",
            device_id="CAM-1",
            public_key=cam.public_hex,
            clock=clock,
        )
        rid = site.record("CAM-1", T0)
        assert catalog_sync(actor=po, store=store, clock=clock).added == 1
        rec = Recording.objects.get(recording_id=rid)
        keys = list(store.list(f"s1/CAM-1/{rid}/"))
        # A second version of one object (a re-upload): the purge must take both.
        seg_key = next(k for k in keys if "/seg-000000.bcs." in k)
        head = client.head_object(Bucket=store.bucket, Key=store.full_key(seg_key))
        client.put_object(
            Bucket=store.bucket,
            Key=store.full_key(seg_key),
            Body=store.get_bytes(seg_key),
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=head["ObjectLockRetainUntilDate"],
        )
        assert len(s3_object_versions(store, seg_key)) == 2

        hold = hold_place(
            actor=po,
            recording=rec,
            kind="prosecutor",
            reference="OM-1",
            reason="claimed",
            store=store,
            clock=clock,
        )
        assert all(store.legal_hold(k) for k in keys)
        hold_lift(actor=po, hold=hold, reason="prosecutor agreed", store=store, clock=clock)
        assert not any(store.legal_hold(k) for k in keys)

        clock.set(T0 + dt.timedelta(days=28))
        early = retention_purge(actor=po, store=store, clock=clock)
        assert early.purged == [] and len(early.kept) == 1 and "still locked" in early.kept[0]
        # the report says when it will go, in UTC with `Z` as every command's output
        assert re.search(r"locked until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ,", early.kept[0])
        assert Recording.objects.get(pk=rec.pk).state == "stored"
        deadline = time.monotonic() + 60
        while True:  # wait for the lock to expire (bounded), then the next run purges
            done = retention_purge(actor=po, store=store, clock=clock)
            if done.purged or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        assert done.purged == [str(rec)]
        assert list(store.list(f"s1/CAM-1/{rid}/")) == []
        assert all(s3_object_versions(store, k) == [] for k in keys)
        assert Recording.objects.get(pk=rec.pk).tombstone.objects_removed == len(keys) + 1
    finally:
        store.close()


def test_s3_purge_takes_a_version_hidden_behind_a_delete_marker(
    db: str, weed: WeedServer, tmp_path: Path, clock: Any
) -> None:
    """A plain DELETE on a versioned bucket only hides the object behind a delete marker;
    the footage is still there, and the purge must find it by listing versions."""
    from vault.catalog.models import Recording
    from vault.catalog.services import catalog_sync, retention_purge
    from vault.registry.services import camera_register

    client = s3_client(weed.endpoint)
    store = S3Store(
        "vault-purge",
        "h-" + secrets.token_hex(4),
        endpoint_url=weed.endpoint,
        region=REGION,
        client=client,
        retention_days=1e-6,
        clock=lambda: time.time() - 60 + LOCK_SECONDS,
    )
    try:
        site = Site.create(tmp_path / "site", store=store)
        make_municipalities(["heusden"])
        make_user("po", {"heusden": ["privacy_officer", "coordinator", "scheduler"]})
        po = actor("po")
        cam = site.camera("CAM-1")
        camera_register(
            actor=po,
            municipality="heusden",
            device_id="CAM-1",
            public_key=cam.public_hex,
            clock=clock,
        )
        rid = site.record("CAM-1", T0, segments=3)
        assert catalog_sync(actor=po, store=store, clock=clock).added == 1
        rec = Recording.objects.get(recording_id=rid)
        keys = list(store.list(f"s1/CAM-1/{rid}/"))
        hidden = next(k for k in keys if "/seg-000001.bcs." in k)
        client.delete_object(Bucket=store.bucket, Key=store.full_key(hidden))  # a marker
        assert hidden not in list(store.list(f"s1/CAM-1/{rid}/"))
        assert any(
            "VersionId" in v and not v.get("IsLatest") for v in s3_object_versions(store, hidden)
        )

        clock.set(T0 + dt.timedelta(days=29))
        deadline = time.monotonic() + 60
        while True:  # wait for the short lock to expire (bounded)
            done = retention_purge(actor=po, store=store, clock=clock)
            if done.purged or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        assert done.purged == [str(rec)]
        assert all(s3_object_versions(store, k) == [] for k in keys), "a version outlived the purge"
    finally:
        store.close()
