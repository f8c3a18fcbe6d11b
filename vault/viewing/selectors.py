"""Reading what a viewing needs: the pair rules a recording's page offers, the footage's
length behind an open viewing."""

from __future__ import annotations

from vault.access import policy_of
from vault.catalog.models import Recording
from vault.policy import ViewingRule
from vault.viewing.services import Viewing

VIEW_PURPOSES = ("complaint", "learning", "access_request")  # viewing in the browser


def viewing_rules(*, recording: Recording) -> dict[str, ViewingRule]:
    """The purposes the recording's municipality lets people view it for in the browser,
    each with its rule (who forms the pair, whether the officer's consent comes first)."""
    policy = policy_of(recording.municipality)
    return {p: policy.viewing[p] for p in VIEW_PURPOSES if p in policy.viewing}


def viewing_duration(*, viewing: Viewing) -> float:
    """Seconds of footage the viewing's recording holds (0 while it has no end)."""
    r = viewing.row.recording  # read with the row
    return (r.ended_at - r.footage_start_at).total_seconds() if r and r.ended_at else 0.0
