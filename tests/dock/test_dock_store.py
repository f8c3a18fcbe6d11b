"""Storage backends: content-addressed local directory and S3 Object Lock (real SeaweedFS)."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import pytest
from s3_support import FlakyProxy, WeedServer, s3_client

from store import (
    FileStore,
    RetryPolicy,
    S3Store,
    StoreConfigError,
    StoreFull,
    StoreIntegrityError,
    StoreUnavailable,
    object_key,
    open_store,
    retain_until,
    split_name,
)
from store import file as store_mod

T0 = 1_790_000_000.0
DAY = 86400.0


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def spool(tmp: Path, data: bytes, name: str = "spool.bin") -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


def key_for(data: bytes, name: str = "seg-000000.bcs", rec: str = "20261122T181500Z-0a1b") -> str:
    return object_key("site", "BC-1A2B3C4D", rec, name, sha(data))


# --- keys and policy ------------------------------------------------------------------------


def test_keys_are_content_addressed_and_refuse_unsafe_names() -> None:
    data = b"x"
    key = key_for(data)
    assert key == f"site/BC-1A2B3C4D/20261122T181500Z-0a1b/seg-000000.bcs.{sha(data)}"
    assert split_name(key) == ("seg-000000.bcs", sha(data))
    for bad in ("..", "a/b", "", ".hidden", "x" * 201):
        with pytest.raises(ValueError):
            object_key("site", bad, "rec", "seg-000000.bcs", sha(data))
    with pytest.raises(ValueError):
        object_key("site", "BC-1", "rec", "seg", "ABC")


def test_retain_until_is_recorded_time_plus_retention_within_bounds() -> None:
    assert retain_until(T0, T0 + 3600, 28) == T0 + 28 * DAY
    # docked on its last day: locked until the deadline itself, not past it
    assert retain_until(T0, T0 + 27.5 * DAY, 28) == T0 + 28 * DAY
    assert retain_until(T0, T0 + 28 * DAY - 600, 28) == T0 + 28 * DAY
    # docked 40 days late: a lock just into the future (S3 needs one), minutes not a day
    assert T0 + 40 * DAY < retain_until(T0, T0 + 40 * DAY, 28) <= T0 + 40 * DAY + 600
    # a camera clock years ahead must not lock footage for years
    assert retain_until(T0 + 900 * DAY, T0, 28) == T0 + 28 * DAY


def test_retry_policy_backs_off_then_gives_up_with_store_unavailable() -> None:
    slept: list[float] = []
    policy = RetryPolicy(attempts=4, base_delay=0.5, max_delay=1.5, sleep=slept.append)
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionResetError("reset")
        return "ok"

    assert policy.run("put", flaky, lambda e: isinstance(e, OSError)) == "ok"
    assert slept == [0.5, 1.0]

    def down() -> str:
        raise ConnectionRefusedError("refused")

    with pytest.raises(StoreUnavailable, match="after 4 attempt"):
        policy.run("put", down, lambda e: isinstance(e, OSError))
    assert slept == [0.5, 1.0, 0.5, 1.0, 1.5]
    with pytest.raises(ValueError):  # not transient: no retry
        policy.run("put", lambda: int("x"), lambda e: isinstance(e, OSError))


def test_open_store_urls(tmp_path: Path) -> None:
    fs = open_store(f"file://{tmp_path}/store")
    assert isinstance(fs, FileStore) and fs.root == tmp_path / "store"
    assert isinstance(open_store(str(tmp_path / "plain")), FileStore)
    s3 = open_store(
        "s3://footage/site-a?endpoint=http://127.0.0.1:9&region=us-east-1&retention_days=7"
    )
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.retention_days) == ("footage", "site-a", 7.0)
    for bad in (
        "ftp://x/y",
        "s3://footage?colour=blue",
        "s3://ab",
        "file://host/x",
        "s3://footage?endpoint=file:///x",
        "s3://footage?retention_days=-1",
    ):
        with pytest.raises(StoreConfigError):
            open_store(bad)


# --- file store -----------------------------------------------------------------------------


def test_file_store_put_is_durable_content_addressed_and_idempotent(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    data = os.urandom(300_000)
    key = key_for(data)
    receipt = store.put_file(key, spool(tmp_path, data), sha256=sha(data), size=len(data))
    path = tmp_path / "store" / key
    assert path.read_bytes() == data
    assert receipt.location == str(path) and receipt.sha256 == sha(data)
    assert not receipt.already_present
    assert path.stat().st_mode & 0o777 == 0o444  # stored footage is read-only
    again = store.put_file(key, spool(tmp_path, data), sha256=sha(data), size=len(data))
    assert again.already_present
    assert list(store.list()) == [key]
    assert store.stat(key) is not None and store.stat(key_for(b"other")) is None
    with store.open(key) as f:
        assert f.read() == data
    assert list((tmp_path / "store" / ".staging").iterdir()) == []


def test_file_store_consumes_a_spool_file_on_its_filesystem(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    store.check()
    data = os.urandom(5000)
    src = spool(store.staging_dir, data, "incoming.part")
    inode = src.stat().st_ino
    store.put_file(key_for(data), src, sha256=sha(data), size=len(data), consume=True)
    assert not src.exists()
    assert (tmp_path / "store" / key_for(data)).stat().st_ino == inode  # linked, not copied


def test_file_store_syncs_file_then_links_then_syncs_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "store")
    store.check()
    data = os.urandom(1000)
    key = key_for(data)
    final = tmp_path / "store" / key
    calls: list[str] = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        calls.append("fsync-dir:" + target if os.path.isdir(target) else "fsync-file")
        real_fsync(fd)

    def link(src: Any, dst: Any) -> None:
        calls.append("link")
        real_link(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    store.put_file(key, spool(tmp_path, data), sha256=sha(data), size=len(data))
    assert calls.index("fsync-file") < calls.index("link")
    assert f"fsync-dir:{final.parent}" in calls[calls.index("link") :]


def test_file_store_crash_before_link_leaves_no_partial_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "store")
    data = os.urandom(200_000)
    key = key_for(data)

    def power_cut(src: Any, dst: Any) -> None:
        raise OSError(errno.EIO, "simulated power cut")

    monkeypatch.setattr(os, "link", power_cut)
    with pytest.raises(StoreUnavailable):
        store.put_file(key, spool(tmp_path, data), sha256=sha(data), size=len(data))
    monkeypatch.undo()
    assert store.stat(key) is None
    assert list((tmp_path / "store" / ".staging").iterdir()) == []
    store.put_file(key, spool(tmp_path, data), sha256=sha(data), size=len(data))
    assert (tmp_path / "store" / key).read_bytes() == data


def test_file_store_refuses_content_that_does_not_match_its_hash(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    data = os.urandom(1000)
    changed = spool(tmp_path, data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(StoreIntegrityError, match="changed while being stored"):
        store.put_file(key_for(data), changed, sha256=sha(data), size=len(data))
    assert list(store.list()) == []
    # a damaged object under the name: never trusted, set aside as evidence, replaced
    key = key_for(data)
    store.put_file(key, spool(tmp_path, data), sha256=sha(data), size=len(data))
    final = tmp_path / "store" / key
    final.chmod(0o644)
    rotten = b"rot" + data[3:]
    final.write_bytes(rotten)
    assert store.stat(key) is not None  # a name alone ...
    with pytest.raises(StoreIntegrityError, match="other content"):
        store.verified(key)  # ... is not proof
    again = store.put_file(key, spool(tmp_path, data), sha256=sha(data), size=len(data))
    assert not again.already_present and final.read_bytes() == data
    assert final.stat().st_mode & 0o777 == 0o444 and final.stat().st_nlink == 1
    assert store.verified(key) is not None
    set_aside = f"quarantine/{key.rsplit('.', 1)[0]}.{sha(rotten)}"
    assert (tmp_path / "store" / set_aside).read_bytes() == rotten
    assert store.legal_hold(set_aside)
    reasons = [k for k in store.list("quarantine/") if k.startswith(set_aside + ".reason")]
    assert len(reasons) == 1 and b"other content" in store.get_bytes(reasons[0])


def test_file_store_full_and_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(1000)
    full = FileStore(tmp_path / "full", min_free_bytes=1 << 62)
    with pytest.raises(StoreFull, match="free space"):
        full.put_file(key_for(data), spool(tmp_path, data), sha256=sha(data), size=len(data))
    assert list(full.list()) == []

    store = FileStore(tmp_path / "store")
    real_write = store_mod.FileStore._copy_verified

    def enospc(*args: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_mod.FileStore, "_copy_verified", enospc)
    with pytest.raises(StoreFull):
        store.put_file(key_for(data), spool(tmp_path, data), sha256=sha(data), size=len(data))
    monkeypatch.setattr(store_mod.FileStore, "_copy_verified", real_write)

    unmounted = FileStore(tmp_path / "missing" / "store")
    with pytest.raises(StoreUnavailable, match="mounted"):
        unmounted.put_file(key_for(data), spool(tmp_path, data), sha256=sha(data), size=len(data))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(StoreConfigError, match="not a bodycam store"):
        FileStore(tmp_path / "other").check()


def test_file_store_quarantine_keeps_item_reason_and_hold(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    bad = os.urandom(2000)
    key = key_for(bad, "seg-000003.bcs")
    stored = store.quarantine(
        key,
        bad,
        "SHA-256 differs from the signed manifest",
        details={"device_id": "BC-1A2B3C4D"},
        now=T0,
    )
    assert stored.key == "quarantine/" + key
    keys = list(store.list("quarantine/"))
    reason_keys = [k for k in keys if ".reason.json." in k]
    assert len(keys) == 2 and len(reason_keys) == 1
    reason = json.loads(store.get_bytes(reason_keys[0]))
    assert reason["reason"] == "SHA-256 differs from the signed manifest"
    assert reason["key"] == key and reason["device_id"] == "BC-1A2B3C4D"
    assert store.legal_hold("quarantine/" + key)
    # quarantining the same thing again adds nothing
    store.quarantine(key, bad, "SHA-256 differs from the signed manifest", now=T0 + 5)
    assert len(list(store.list("quarantine/"))) == 2


# --- S3 Object Lock against a real SeaweedFS ------------------------------------------------


# Every bucket costs SeaweedFS several volumes (-volume.max is small): tests share one
# bucket and keep apart by prefix.
BUCKET = "bodycam-tests"


def bucket_name() -> str:
    return "bodycam-" + secrets.token_hex(6)


def make_s3(
    endpoint: str,
    bucket: str = BUCKET,
    *,
    slept: list[float] | None = None,
    attempts: int = 5,
    now: float = T0,
    prefix: str = "",
    **kw: Any,
) -> S3Store:
    client = s3_client(endpoint, connect_timeout=1, read_timeout=kw.pop("read_timeout", 5))
    retry = RetryPolicy(
        attempts=attempts,
        base_delay=0.01,
        max_delay=0.05,
        sleep=(slept.append if slept is not None else (lambda s: None)),
    )
    return S3Store(
        bucket,
        prefix or "t-" + secrets.token_hex(4),
        client=client,
        retry=retry,
        clock=lambda: now,
        **kw,
    )


def versions(client: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    listed = client.list_object_versions(Bucket=bucket, Prefix=key)
    return list(listed.get("Versions", []))


def test_s3_put_locks_in_compliance_mode_and_cannot_be_deleted(
    weed: WeedServer, tmp_path: Path
) -> None:
    import time

    now = time.time()  # the server checks lock dates against its own clock
    bucket = BUCKET
    store = make_s3(weed.endpoint, bucket, now=now, prefix="dock-a")
    data = os.urandom(150_000)
    key = key_for(data)
    until = retain_until(now - 3600, now, 28)
    receipt = store.put_file(
        key, spool(tmp_path, data), sha256=sha(data), size=len(data), retain_until=until
    )
    assert receipt.backend == "s3" and receipt.version_id and not receipt.already_present
    client = s3_client(weed.endpoint)
    head = client.head_object(Bucket=bucket, Key="dock-a/" + key, ChecksumMode="ENABLED")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert abs(head["ObjectLockRetainUntilDate"].timestamp() - until) < 2
    assert (
        client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"][
            "ObjectLockEnabled"
        ]
        == "Enabled"
    )

    with pytest.raises(client.exceptions.ClientError, match="AccessDenied"):
        client.delete_object(Bucket=bucket, Key="dock-a/" + key, VersionId=receipt.version_id)
    body = client.get_object(Bucket=bucket, Key="dock-a/" + key, VersionId=receipt.version_id)[
        "Body"
    ].read()
    assert body == data
    with store.open(key) as f:
        assert f.read() == data

    again = store.put_file(key, spool(tmp_path, data), sha256=sha(data), size=len(data))
    assert again.already_present
    assert len(versions(client, bucket, "dock-a/" + key)) == 1
    assert list(store.list()) == [key]

    assert not store.legal_hold(key)
    store.set_legal_hold(key, True)
    assert store.legal_hold(key)
    store.set_legal_hold(key, False)
    assert not store.legal_hold(key)
    client.close()
    store.close()


def test_s3_refuses_a_bucket_without_object_lock(weed: WeedServer) -> None:
    bucket = bucket_name()
    client = s3_client(weed.endpoint)
    client.create_bucket(Bucket=bucket)
    with pytest.raises(StoreConfigError, match="no Object Lock"):
        make_s3(weed.endpoint, bucket).check()
    with pytest.raises(StoreConfigError, match="does not exist"):
        make_s3(weed.endpoint, bucket_name(), create_bucket=False).check()
    client.close()


def test_s3_outage_mid_upload_is_retried_without_loss_or_duplicates(
    weed: WeedServer, tmp_path: Path
) -> None:
    import time

    proxy = FlakyProxy(weed.ports["s3"])
    try:
        bucket = BUCKET
        slept: list[float] = []
        store = make_s3(proxy.endpoint, bucket, slept=slept, now=time.time(), prefix="dock-b")
        store.check()
        direct = s3_client(weed.endpoint)

        # the connection dies in the middle of the request body, twice
        data = os.urandom(400_000)
        key = key_for(data, "seg-000001.bcs")
        proxy.fail("cut_request", count=2, after=100_000, method=b"PUT")
        receipt = store.put_file(key, spool(tmp_path, data), sha256=sha(data), size=len(data))
        assert proxy.failures == 2 and len(slept) >= 2
        got = direct.get_object(Bucket=bucket, Key="dock-b/" + key)["Body"].read()
        assert got == data and receipt.sha256 == sha(data)
        assert len(versions(direct, bucket, "dock-b/" + key)) == 1

        # the server stored it but the reply was lost: the retry must not upload again
        data2 = os.urandom(50_000)
        key2 = key_for(data2, "seg-000002.bcs")
        proxy.fail("drop_reply", count=1, method=b"PUT")
        receipt2 = store.put_file(key2, spool(tmp_path, data2), sha256=sha(data2), size=len(data2))
        assert receipt2.already_present
        assert len(versions(direct, bucket, "dock-b/" + key2)) == 1

        # down for longer than the retry budget: StoreUnavailable, nothing half-stored
        data3 = os.urandom(10_000)
        key3 = key_for(data3, "seg-000003.bcs")
        proxy.fail("refuse", count=100)
        with pytest.raises(StoreUnavailable, match="stays on the camera"):
            store.put_file(key3, spool(tmp_path, data3), sha256=sha(data3), size=len(data3))
        proxy.heal()
        assert versions(direct, bucket, "dock-b/" + key3) == []
        store.put_file(key3, spool(tmp_path, data3), sha256=sha(data3), size=len(data3))
        assert direct.get_object(Bucket=bucket, Key="dock-b/" + key3)["Body"].read() == data3
        direct.close()
        store.close()
    finally:
        proxy.close()


def test_s3_paused_server_times_out_then_recovers(weed: WeedServer, tmp_path: Path) -> None:
    import time

    bucket = BUCKET
    data = os.urandom(20_000)
    key = key_for(data)
    resumed: list[float] = []

    def sleep_then_resume(seconds: float) -> None:
        if not resumed:
            weed.resume()  # the outage ends during the first backoff
            # The timed-out PUT may still sit in the server's socket and land now; let it,
            # so the retry meets it (a 412 on the conditional PUT) instead of racing it.
            probe = s3_client(weed.endpoint)
            try:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not versions(probe, bucket, "dock-c/" + key):
                    time.sleep(0.05)
            finally:
                probe.close()
        resumed.append(seconds)

    client = s3_client(weed.endpoint, connect_timeout=1, read_timeout=1)
    retry = RetryPolicy(attempts=4, base_delay=0.01, sleep=sleep_then_resume)
    store = S3Store(bucket, "dock-c", client=client, retry=retry, clock=time.time)
    store.check()
    weed.pause()
    try:
        receipt = store.put_file(key, spool(tmp_path, data), sha256=sha(data), size=len(data))
    finally:
        weed.resume()
    assert resumed and receipt.sha256 == sha(data)
    direct = s3_client(weed.endpoint)
    assert len(versions(direct, bucket, "dock-c/" + key)) == 1
    direct.close()
    store.close()


def test_s3_quarantine_is_locked_and_held(weed: WeedServer, tmp_path: Path) -> None:
    import time

    bucket = BUCKET
    store = make_s3(weed.endpoint, bucket, now=time.time(), prefix="dock-d")
    bad = os.urandom(3000)
    key = key_for(bad, "seg-000007.bcs")
    store.quarantine(key, bad, "segment 7 is not in the signed manifest", now=time.time())
    client = s3_client(weed.endpoint)
    head = client.head_object(Bucket=bucket, Key="dock-d/quarantine/" + key)
    assert head["ObjectLockLegalHoldStatus"] == "ON"
    assert head["ObjectLockMode"] == "COMPLIANCE"
    reasons = [k for k in store.list("quarantine/") if ".reason.json." in k]
    assert len(reasons) == 1
    assert "not in the signed manifest" in json.loads(store.get_bytes(reasons[0]))["reason"]
    client.close()
    store.close()


def test_s3_store_from_url_uses_environment_credentials(
    weed: WeedServer, aws_env: dict[str, str], tmp_path: Path
) -> None:
    store = open_store(f"s3://{BUCKET}/dock-e?endpoint={weed.endpoint}&region=us-east-1")
    data = b"event log line\n"
    key = key_for(data, "events.jsonl")
    store.put_file(
        key,
        spool(tmp_path, data),
        sha256=sha(data),
        size=len(data),
        retain_until=dt.datetime.now(dt.UTC).timestamp() + DAY,
    )
    assert store.get_bytes(key) == data
    store.close()


def test_s3_without_credentials_says_what_to_set(
    weed: WeedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = open_store(f"s3://{BUCKET}/x?endpoint={weed.endpoint}&region=us-east-1")
    with pytest.raises(StoreConfigError, match="AWS_ACCESS_KEY_ID"):
        store.check()
    store.close()


def test_a_batch_syncs_each_folder_once_and_only_at_its_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from store import DurableBatch

    store = FileStore(tmp_path / "store")
    store.check()
    spooled = tmp_path / "spool"
    spooled.mkdir()
    synced: list[Path] = []
    from crypto.files import fsync_dir as real

    def counting(directory: Path) -> None:
        synced.append(Path(directory))
        real(directory)

    monkeypatch.setattr(store_mod, "fsync_dir", counting)
    monkeypatch.setattr("crypto.files.fsync_dir", counting)
    batch = DurableBatch()
    datas = [secrets.token_bytes(1000 + i) for i in range(4)]
    keys = [key_for(d, name=f"seg-00000{i}.bcs") for i, d in enumerate(datas)]
    for i, (key, data) in enumerate(zip(keys, datas, strict=True)):
        src = spool(spooled, data, f"seg-{i}.part")
        store.put_file(key, src, sha256=sha(data), size=len(data), consume=True, batch=batch)
        assert not src.exists()
    assert synced == [] and batch.pending  # named, not yet made durable
    batch.commit()
    final = (store.root / keys[0]).parent
    # The spool folder first (its names are gone), then new folders top down, then the
    # objects' folder: each once, for four objects.
    assert synced[0] == spooled and synced[-1] == final
    assert len(synced) == len(set(synced)) and not batch.pending
    for key, data in zip(keys, datas, strict=True):
        assert store.verified(key) is not None and store.get_bytes(key) == data
