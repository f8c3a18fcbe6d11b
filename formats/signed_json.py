"""The signed JSON documents of formats/RECORDS.md: one canonical form, one stored form.

The signature covers the canonical JSON of the body (sorted keys, no spaces, UTF-8); the
stored document is `{"format", <field>: body, "signature"}` as sorted, indented JSON.
"""

from __future__ import annotations

import json
from typing import Any

from formats.protocol import Signer


def canonical(body: dict[str, Any]) -> bytes:
    """What the signature covers."""
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def signed_document(format_name: str, field: str, body: dict[str, Any], key: Signer) -> bytes:
    """The stored bytes of `body` under `field`, signed with `key`."""
    doc = {"format": format_name, field: body, "signature": key.sign(canonical(body)).hex()}
    return json.dumps(doc, sort_keys=True, indent=1).encode("utf-8")
