"""One registry: the back office publishes it signed into the store, the dock verifies and caches
it (offline on the last good copy, no rollback), ingests only what it lists, and writes the
signed ingest record the catalog reads."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from vault_support import actor, make_municipalities, make_user

sys.path.insert(0, str(Path(__file__).parents[1] / "dock"))

from dock_support import Dock, make_camera  # noqa: E402

from crypto.keys import SigningKey, VaultKey, write_public_key  # noqa: E402
from dock.daemon import DockDaemon  # noqa: E402
from dock.daemon_config import DaemonConfig  # noqa: E402
from dock.ledger import Ledger  # noqa: E402
from dock.registry import refresh_ledger  # noqa: E402
from formats.registry import RegistryError, publish_registry  # noqa: E402
from store import FileStore  # noqa: E402


@pytest.fixture
def keys() -> dict[str, Any]:
    return {
        "dock": SigningKey.generate(kind="dock"),
        "vault": VaultKey.generate(),
        "registry": SigningKey.generate(kind="registry"),
    }


def test_the_dock_applies_the_signed_registry_and_keeps_its_last_good_copy(
    tmp_path: Path, keys: dict[str, Any]
) -> None:
    store = FileStore(tmp_path / "store")
    reg = keys["registry"]
    a, b = SigningKey.generate(), SigningKey.generate()
    state = tmp_path / "ledger.sqlite.registry.json"

    def cams(*pairs: tuple[str, Any]) -> list[dict[str, str]]:
        return [
            {"device_id": d, "public_key": k.public_bytes().hex(), "municipality": "m", "model": ""}
            for d, k in pairs
        ]

    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        publish_registry(store, reg, version=1, site="s", cameras=cams(("A", a), ("B", b)), now=1.0)
        r1 = refresh_ledger(store, ledger, reg.public_bytes(), state)
        assert (r1.version, r1.added, r1.problem) == (1, ["A", "B"], None)
        assert ledger.active_device("A").public_key == a.public_bytes()
        # B removed, A re-provisioned with a new key.
        a2 = SigningKey.generate()
        publish_registry(store, reg, version=2, site="s", cameras=cams(("A", a2)), now=2.0)
        r2 = refresh_ledger(store, ledger, reg.public_bytes(), state)
        assert (r2.rekeyed, r2.removed) == (["A"], ["B"])
        assert ledger.active_device("B") is None
        assert ledger.active_device("A").public_key == a2.public_bytes()
        # A forged version 3 (signed by another key) is refused; version 2 stays in force.
        publish_registry(
            store,
            SigningKey.generate(),
            version=3,
            site="s",
            cameras=cams(("A", a), ("EVIL", SigningKey.generate())),
            now=3.0,
        )
        r3 = refresh_ledger(store, ledger, reg.public_bytes(), state)
        assert r3.version == 2 and "signature does not verify" in (r3.problem or "")
        assert ledger.active_device("EVIL") is None
        # Offline: the store is gone; the dock goes on with what it has.
        (tmp_path / "store").rename(tmp_path / "store-away")
        gone = refresh_ledger(
            FileStore(tmp_path / "store", create=False), ledger, reg.public_bytes(), state
        )
        assert gone.version == 2 and ledger.active_device("A") is not None
        # Rollback: a store holding only version 1 is refused.
        old = FileStore(tmp_path / "old-store")
        publish_registry(old, reg, version=1, site="s", cameras=cams(("A", a), ("B", b)), now=1.0)
        rb = refresh_ledger(old, ledger, reg.public_bytes(), state)
        assert "rollback" in (rb.problem or "") and ledger.active_device("B") is None
        state.write_text("garbage")
        with pytest.raises(RegistryError, match="not a registry state file"):
            refresh_ledger(old, ledger, reg.public_bytes(), state)


def test_registered_in_the_back_office_ingested_by_the_dock_catalogued_with_its_record(
    db: str, tmp_path: Path, keys: dict[str, Any], clock: Any
) -> None:
    from vault.catalog.models import Recording
    from vault.catalog.services import catalog_sync
    from vault.registry.services import camera_register, dock_station_add, registry_publish

    make_municipalities(["heusden"])
    make_user("cora", {"heusden": ["coordinator", "privacy_officer"]})
    cora = actor("cora")
    docks = Dock(tmp_path / "slots")
    cam = make_camera(tmp_path / "cameras", "cam1", [keys["dock"].public_bytes()], keys["vault"])
    stranger = make_camera(
        tmp_path / "cameras", "cam2", [keys["dock"].public_bytes()], keys["vault"]
    )
    try:
        rec_id = cam.record(2)
        stranger.record(1)
        camera_register(
            actor=cora,
            municipality="heusden",
            device_id=cam.device_id,
            public_key=cam.public_key,
            clock=clock,
        )
        dock_station_add(
            actor=cora, name="dock-1", public_key=keys["dock"].public_bytes(), clock=clock
        )
        store = FileStore(tmp_path / "store")
        registry_publish(
            actor=cora, store=store, signing_key=keys["registry"], site="s", clock=clock
        )
        write_public_key(tmp_path / "registry.pub", keys["registry"].public_bytes(), "registry")
        docks.dock(cam, "slot-1")
        docks.dock(stranger, "slot-2")
        with Ledger(tmp_path / "state" / "ledger.sqlite") as ledger:
            out = io.StringIO()
            config = DaemonConfig(
                slots=docks.slots,
                store_url=store.url,
                ledger_path=tmp_path / "state" / "ledger.sqlite",
                settle=0.0,
                site="s",
                live=False,
                once=True,
                registry_key=tmp_path / "registry.pub",
            )
            DockDaemon(config, store=store, ledger=ledger, dock_key=keys["dock"], out=out).run()
        lines = out.getvalue()
        assert f"{cam.device_id}: all 1 recording stored, camera released" in lines
        assert (
            f"{stranger.device_id}: refused: camera {stranger.device_id} is not registered" in lines
        )
        records = [
            k
            for k in store.list(f"s/{cam.device_id}/{rec_id}/")
            if k.split("/")[-1].startswith("ingest.json.")
        ]
        assert len(records) == 1
        doc = json.loads(store.get_bytes(records[0]))
        assert doc["record"]["dock_public_key"] == keys["dock"].public_bytes().hex()
        assert [s["name"] for s in doc["record"]["segments"]] == [
            "seg-000000.bcs",
            "seg-000001.bcs",
        ]
        report = catalog_sync(actor=cora, store=store, clock=clock)
        assert (report.added, report.refused, report.problems) == (1, [], [])
        rec = Recording.objects.get(recording_id=rec_id)
        assert rec.ingest_dock == "dock-1" and rec.state == "stored"
        assert rec.ingested_at is not None
    finally:
        docks.close()
        cam.close()
        stranger.close()
