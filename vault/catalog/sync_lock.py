"""Several syncs at once (every dock's `--on-docked`, the timer) on one catalog.

Each sync commits the store's recordings in batches. A batch takes the catalog's sync
lock for its own transaction only (PostgreSQL: a transaction-level advisory lock,
released at commit; SQLite serialises writers by itself) and then looks again at what
the catalog already holds for the recordings of that batch, so a recording another sync
catalogued a moment ago is seen as known: never inserted twice, never skipped, and no
two syncs wait on each other's rows (no deadlock). The lock is held while one batch is
written, never across a whole sync.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from vault.catalog.models import Recording

# Any fixed 64-bit number, the same in every process of every back office on the database.
SYNC_LOCK = 0x626F647963616D01  # "bodycam" + 1

Key = tuple[str, str, str]  # (site, device id, recording id)


def lock_for_this_transaction() -> None:
    """Wait until no other sync is writing a batch; released when this transaction ends."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SYNC_LOCK])


def known_now(keys: Iterable[Key]) -> dict[Key, tuple[str, str]]:
    """(state, store fingerprint) of those of `keys` the catalog holds at this moment."""
    wanted = set(keys)
    if not wanted:
        return {}
    rows = Recording.objects.filter(recording_id__in={rec for _, _, rec in wanted}).values_list(
        "site", "device_id", "recording_id", "state", "store_fingerprint"
    )
    return {(s, d, r): (state, fp) for s, d, r, state, fp in rows if (s, d, r) in wanted}
