"""The back office's identifiers in words, for the pages: purposes, roles, states, holds.

The policy files, the audit log and the CLI keep the identifiers (`complaint`,
`cluster_manager`); a page shows the words in the reader's language ("klacht",
"clustermanager"). An identifier without words here is shown with spaces for its
underscores, never hidden.
"""

from __future__ import annotations

import json
from typing import Any

from django.utils.formats import number_format
from django.utils.functional import Promise
from django.utils.translation import gettext, gettext_lazy, pgettext_lazy

PURPOSES: dict[str, Promise] = {
    "complaint": gettext_lazy("complaint"),
    "criminal_investigation": gettext_lazy("criminal investigation"),
    "access_request": gettext_lazy("citizen access request"),
    "learning": gettext_lazy("learning"),
    "prosecutor": gettext_lazy("police / prosecutor claim"),
}
ROLES: dict[str, Promise] = {
    "coordinator": gettext_lazy("coordinator"),
    "cluster_manager": gettext_lazy("cluster manager"),
    "privacy_officer": gettext_lazy("privacy officer"),
    "municipal_secretary": gettext_lazy("municipal secretary"),
    "safety_coordinator": gettext_lazy("safety coordinator"),
    "officer": gettext_lazy("officer"),
    "officer_concerned": gettext_lazy("the officer concerned"),
    "senior_boa": gettext_lazy("senior officer"),
    "assistant_team_leader": gettext_lazy("assistant team leader"),
    "staff_member": gettext_lazy("staff member"),
    "administrator": gettext_lazy("administrator"),
    "scheduler": gettext_lazy("scheduled job"),
}
STATES: dict[str, Promise] = {
    "stored": pgettext_lazy("recording", "stored"),
    "incomplete": pgettext_lazy("recording", "incomplete"),
    "purged": pgettext_lazy("recording", "purged"),
    "draft": pgettext_lazy("report", "draft"),
    "submitted": pgettext_lazy("report", "submitted"),
}
HOLDS: dict[str, Promise] = {
    "access_request": gettext_lazy("citizen access request"),
    "complaint": gettext_lazy("complaint"),
    "prosecutor": gettext_lazy("police / prosecutor claim"),
    "any": pgettext_lazy("hold", "any"),
    "none": pgettext_lazy("hold", "none"),
}
RESULTS: dict[str, Promise] = {
    "ok": pgettext_lazy("audit result", "ok"),
    "refused": pgettext_lazy("audit result", "refused"),
    "failed": pgettext_lazy("audit result", "failed"),
}
DECISIONS: dict[str, Promise] = {
    "granted": pgettext_lazy("decision", "granted"),
    "refused": pgettext_lazy("decision", "refused"),
}
# The audit entries' detail keys that appear most.
DETAIL_KEYS: dict[str, Promise] = {
    "reason": gettext_lazy("reason"),
    "reference": gettext_lazy("reference"),
    "request": gettext_lazy("request"),
    "hold": gettext_lazy("hold"),
    "error": gettext_lazy("error"),
    "consent": gettext_lazy("consent"),
    "remote": gettext_lazy("address"),
    "pair": gettext_lazy("pair"),
    "entries": gettext_lazy("entries"),
    "cameras": gettext_lazy("cameras"),
    "recordings": gettext_lazy("recordings"),
    "segments": gettext_lazy("segments"),
    "second": gettext_lazy("second person"),
    "decision": gettext_lazy("decision"),
    "problems": gettext_lazy("problems"),
    "purged": gettext_lazy("purged"),
    "bytes": gettext_lazy("bytes"),
    "camera": gettext_lazy("camera"),
    "officer": gettext_lazy("officer"),
    "state": gettext_lazy("state"),
    "since": gettext_lazy("from"),
    "until": gettext_lazy("until"),
}

# An audit entry's target when it is a part of the back office rather than one recording.
TARGETS: dict[str, Promise] = {
    "recordings": DETAIL_KEYS["recordings"],
    "cameras": DETAIL_KEYS["cameras"],
    "catalog": DETAIL_KEYS["recordings"],
    "requests": gettext_lazy("requests"),
    "reports": gettext_lazy("shift reports"),
    "audit": gettext_lazy("audit log"),
    "audit log": gettext_lazy("audit log"),
}


def target_in_words(target: Any) -> str:
    """An audit target: a part of the back office in words, anything else as it is."""
    text = str(target or "")
    return str(TARGETS[text]) if text in TARGETS else text


def _plain(identifier: str) -> str:
    return identifier.replace("_", " ")


def in_words(table: dict[str, Promise], identifier: Any) -> str:
    """The words for `identifier` in the active language (its own text when unknown)."""
    text = str(identifier or "")
    return str(table[text]) if text in table else _plain(text)


def roles_in_words(roles: Any) -> str:
    """`cluster_manager,municipal_secretary` (or a list, or `heusden:a,b;...`) in words."""
    if isinstance(roles, str):
        parts = []
        for scope in roles.split(";"):
            muni, _, names = scope.rpartition(":")
            words = ", ".join(in_words(ROLES, r) for r in names.split(",") if r)
            parts.append(f"{muni}: {words}" if muni else words)
        return "; ".join(p for p in parts if p)
    return ", ".join(in_words(ROLES, r) for r in roles)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, int):
        return number_format(value, force_grouping=True)
    if isinstance(value, dict):
        return "(" + detail_in_words(value) + ")"
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value) or "-"
    if value is None:
        return "-"
    return str(value)


def detail_in_words(detail: Any) -> str:
    """An audit entry's detail (canonical JSON) as `key: value; key: value` in words."""
    if isinstance(detail, str):
        if not detail:
            return ""
        try:
            detail = json.loads(detail)
        except ValueError:
            return detail
    if not isinstance(detail, dict):
        return _value(detail)
    return "; ".join(f"{in_words(DETAIL_KEYS, k)}: {_value(v)}" for k, v in detail.items())


def bytes_in_words(count: Any) -> str:
    """A byte count with the language's thousands separator (Dutch 1.234.567)."""
    try:
        n = int(count)
    except (TypeError, ValueError):
        return str(count)
    return number_format(n, force_grouping=True)
