"""Writing and checking the audit chain; anchoring its head in the store.

Every service records what it did or refused through `audit_record`. The entry's hash
covers the previous entry's hash and its own fields (canonical JSON), so an edited,
removed, inserted or reordered entry breaks the chain at that point. The chain head
is anchored from time to time as an object in the store (Object Lock on S3): after
a wholesale rewrite of the database the anchors no longer match.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from vault.audit.models import AuditAnchor, AuditEntry, AuditHead
from vault.clock import Clock

log = logging.getLogger(__name__)

GENESIS = "0" * 64
ANCHOR_PREFIX = "audit/"
MAX_ANCHOR = 64 * 1024


def _fields(
    seq: int,
    at: str,
    actor: str,
    roles: str,
    municipality: str,
    action: str,
    target: str,
    purpose: str,
    result: str,
    detail: str,
) -> bytes:
    doc = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "roles": roles,
        "municipality": municipality,
        "action": action,
        "target": target,
        "purpose": purpose,
        "result": result,
        "detail": detail,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def entry_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + body).hexdigest()


def _hash_of(e: AuditEntry) -> str:
    return entry_hash(
        e.prev_hash,
        _fields(
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
        ),
    )


def audit_record(
    *,
    actor: str,
    action: str,
    result: str,
    clock: Clock,
    roles: str = "",
    municipality: str = "",
    target: str = "",
    purpose: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry; inside the caller's transaction when there is one."""
    if result not in ("ok", "refused", "failed"):
        raise ValueError(f"audit result {result!r}: ok, refused or failed")
    detail_json = json.dumps(detail or {}, sort_keys=True, separators=(",", ":"), default=str)
    with transaction.atomic():
        head = AuditHead.objects.select_for_update().filter(pk=1).first()
        if head is None:
            AuditHead.objects.get_or_create(pk=1, defaults={"seq": 0, "entry_hash": GENESIS})
            head = AuditHead.objects.select_for_update().get(pk=1)
        # Microseconds kept, timezone normalised: what is hashed is what is read back.
        at = clock.utc().astimezone(dt.UTC)
        seq = head.seq + 1
        h = entry_hash(
            head.entry_hash,
            _fields(
                seq,
                at.isoformat(),
                actor,
                roles,
                municipality,
                action,
                target[:300],
                purpose,
                result,
                detail_json,
            ),
        )
        entry = AuditEntry.objects.create(
            seq=seq,
            at=at,
            actor=actor,
            roles=roles,
            municipality=municipality,
            action=action,
            target=target[:300],
            purpose=purpose,
            result=result,
            detail=detail_json,
            prev_hash=head.entry_hash,
            entry_hash=h,
        )
        head.seq, head.entry_hash = seq, h
        head.save(update_fields=["seq", "entry_hash"])
    log.info("audit %d: %s %s %s -> %s", seq, actor, action, target, result)
    return entry


@dataclass
class AuditReport:
    entries: int = 0
    anchors: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def audit_verify(*, store: Any = None) -> AuditReport:
    """Walk the chain; with `store`, also compare the anchors kept in the store."""
    report = AuditReport()
    prev = GENESIS
    expected_seq = 1
    by_seq: dict[int, str] = {}
    for e in AuditEntry.objects.order_by("seq").iterator(chunk_size=2000):
        report.entries += 1
        if e.seq != expected_seq:
            report.problems.append(
                f"entry {expected_seq} is missing (next is {e.seq}): removed or reordered"
            )
            expected_seq = e.seq
        if not hmac.compare_digest(e.prev_hash, prev):
            report.problems.append(
                f"entry {e.seq}: does not follow entry {e.seq - 1} (inserted, removed or reordered)"
            )
        if not hmac.compare_digest(_hash_of(e), e.entry_hash):
            report.problems.append(f"entry {e.seq}: content changed after it was written")
        prev = e.entry_hash
        by_seq[e.seq] = e.entry_hash
        expected_seq += 1
    head = AuditHead.objects.filter(pk=1).first()
    if head is not None and (head.seq != expected_seq - 1 or head.entry_hash != prev):
        report.problems.append(
            f"chain head says entry {head.seq}, the log ends at "
            f"{expected_seq - 1}: entries removed from the end"
        )
    anchors = {(a.seq, a.entry_hash) for a in AuditAnchor.objects.all()}
    if store is not None:
        for key in store.list(ANCHOR_PREFIX):
            try:
                doc = json.loads(store.get_bytes(key, MAX_ANCHOR))
                anchors.add((int(doc["seq"]), str(doc["entry_hash"])))
            except (ValueError, KeyError, TypeError):
                report.problems.append(f"{key}: not an audit anchor")
    for seq, h in sorted(anchors):
        report.anchors += 1
        have = by_seq.get(seq)
        if have is None:
            report.problems.append(f"anchor at entry {seq}: the log has no entry {seq}")
        elif not hmac.compare_digest(have, h):
            report.problems.append(
                f"anchor at entry {seq}: the log's entry differs from the "
                "anchored one (the database was rewritten)"
            )
    return report


def audit_anchor(*, store: Any, site: str, clock: Clock) -> AuditAnchor | None:
    """Store the chain head as an object (Object Lock on S3); None when the log is empty."""
    from store import check_key

    head = AuditHead.objects.filter(pk=1).first()
    if head is None or head.seq == 0:
        return None
    last = AuditAnchor.objects.order_by("-seq").first()
    if last is not None and last.seq == head.seq:
        return last
    now = clock.utc()
    doc = {
        "format": "bodycam-audit-anchor-v1",
        "site": site,
        "seq": head.seq,
        "entry_hash": head.entry_hash,
        "anchored_at": now.isoformat(),
    }
    raw = json.dumps(doc, sort_keys=True, indent=1).encode()
    key = check_key(f"{ANCHOR_PREFIX}anchor-{head.seq:012d}.json.{hashlib.sha256(raw).hexdigest()}")
    store.put_bytes(key, raw)
    return AuditAnchor.objects.create(
        seq=head.seq, entry_hash=head.entry_hash, store_key=key, anchored_at=now
    )


def audit_verify_as(*, actor: Any, store: Any, clock: Clock) -> AuditReport:
    """`audit_verify` for a user whose policy allows it; the check itself is audited."""
    from vault.access import audit_ok, authorize_any

    authorize_any(actor=actor, action="audit.verify", clock=clock, target="audit log")
    report = audit_verify(store=store)
    with transaction.atomic():
        audit_ok(
            actor=actor,
            action="audit.verify",
            target="audit log",
            clock=clock,
            detail={"ok": report.ok, "entries": report.entries, "problems": report.problems[:20]},
        )
    return report


def audit_anchor_as(*, actor: Any, store: Any, site: str, clock: Clock) -> AuditAnchor | None:
    from vault.access import audit_ok, authorize_any

    authorize_any(actor=actor, action="audit.anchor", clock=clock, target="audit log")
    with transaction.atomic():
        audit_ok(actor=actor, action="audit.anchor", target="audit log", clock=clock)
    return audit_anchor(store=store, site=site, clock=clock)
