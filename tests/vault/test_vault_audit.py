"""The audit chain: any edit, removal, insertion or reordering is found; a rewritten database
is found through the anchors in the store. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from vault_support import Site

from vault.audit.models import AuditEntry, AuditHead
from vault.audit.services import _fields, audit_anchor, audit_record, audit_verify, entry_hash


@pytest.fixture
def chain(any_db: str, clock: Any) -> list[AuditEntry]:
    entries = []
    for i in range(6):
        clock.advance(seconds=7)
        entries.append(
            audit_record(
                actor=f"user{i % 2}",
                action="catalog.show",
                result="ok",
                clock=clock,
                target=f"CAM/rec-{i}",
                municipality="heusden",
                detail={"i": i},
            )
        )
    return entries


def test_an_intact_chain_verifies(chain: list[AuditEntry]) -> None:
    report = audit_verify()
    assert report.ok and report.entries == 6


def test_an_edited_entry_is_found(chain: list[AuditEntry]) -> None:
    AuditEntry.objects.filter(seq=3).update(result="refused")
    assert audit_verify().problems == ["entry 3: content changed after it was written"]


def test_a_removed_entry_is_found(chain: list[AuditEntry]) -> None:
    AuditEntry.objects.filter(seq=4).delete()
    problems = audit_verify().problems
    assert (
        problems[0].startswith("entry 4 is missing") and "entry 5: does not follow" in problems[1]
    )


def test_removing_the_last_entries_is_found(chain: list[AuditEntry]) -> None:
    AuditEntry.objects.filter(seq__gte=5).delete()
    assert audit_verify().problems == [
        "chain head says entry 6, the log ends at 4: entries removed from the end"
    ]


def test_an_inserted_entry_is_found(chain: list[AuditEntry], clock: Any) -> None:
    AuditEntry.objects.filter(seq__gte=4).update(seq=models_f("seq") + 100)
    e = chain[2]
    body = _fields(
        4, e.at.isoformat(), "mallory", "", "heusden", "catalog.show", "x", "", "ok", "{}"
    )
    AuditEntry.objects.create(
        seq=4,
        at=e.at,
        actor="mallory",
        municipality="heusden",
        action="catalog.show",
        target="x",
        result="ok",
        detail="{}",
        prev_hash=e.entry_hash,
        entry_hash=entry_hash(e.entry_hash, body),
    )
    AuditEntry.objects.filter(seq__gte=104).update(seq=models_f("seq") - 99)
    assert any("entry 5: does not follow" in p for p in audit_verify().problems)


def test_reordered_entries_are_found(chain: list[AuditEntry]) -> None:
    AuditEntry.objects.filter(seq=2).update(seq=1002)
    AuditEntry.objects.filter(seq=3).update(seq=2)
    AuditEntry.objects.filter(seq=1002).update(seq=3)
    problems = audit_verify().problems
    assert "entry 2: does not follow entry 1 (inserted, removed or reordered)" in problems


def test_a_rewritten_database_is_found_through_the_anchor_in_the_store(
    chain: list[AuditEntry], tmp_path: Any, clock: Any
) -> None:
    site = Site.create(tmp_path / "site")
    anchor = audit_anchor(store=site.store, site="s1", clock=clock)
    assert anchor is not None and anchor.seq == 6
    assert list(site.store.list("audit/")) == [anchor.store_key]
    # Rewrite entry 2 and recompute every hash after it, head included: the chain holds.
    prev = AuditEntry.objects.get(seq=1).entry_hash
    for e in AuditEntry.objects.filter(seq__gte=2).order_by("seq"):
        if e.seq == 2:
            e.result = "refused"
        body = _fields(
            e.seq,
            e.at.isoformat(),
            e.actor,
            e.roles,
            e.municipality,
            e.action,
            e.target,
            e.purpose,
            e.result,
            e.detail,
        )
        e.prev_hash, e.entry_hash = prev, entry_hash(prev, body)
        e.save()
        prev = e.entry_hash
    AuditHead.objects.filter(pk=1).update(entry_hash=prev)
    from vault.audit.models import AuditAnchor

    AuditAnchor.objects.all().delete()  # the database's own record of anchors goes too
    assert audit_verify().ok  # without the store nothing shows
    problems = audit_verify(store=site.store).problems
    assert problems == [
        "anchor at entry 6: the log's entry differs from the anchored one "
        "(the database was rewritten)"
    ]


def models_f(name: str) -> Any:
    from django.db.models import F

    return F(name)
