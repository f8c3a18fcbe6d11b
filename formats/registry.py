"""The camera registry document: the back office signs and publishes it, docks read it.

The coordinator adds and removes cameras in the back office only. The back office
signs the whole registry with its registry key (Ed25519) and stores it:

```
registry/cameras-<version, 10 digits>.json.<sha256>
{"format": "bodycam-camera-registry-v1",
 "registry": {"version": N, "issued_utc": t, "site": "...",
              "cameras": [{"device_id", "public_key" (64 hex), "municipality", "model"}]},
 "signature": "<128 hex: Ed25519 over the canonical JSON of registry>"}
```

A dock given the back office's registry public key (`bodycam dock run --registry-key`)
takes the highest version whose signature verifies, never an older version than the
one it has (no rollback), and applies it to its ledger (dock/registry.py), which is its
cache: with the store unreachable or a bad copy in it, the dock keeps working on its
last good copy. Spec: formats/RECORDS.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass

from crypto.keys import SigningKey, verify_signature
from formats.signed_json import canonical, signed_document
from store import Store, StoreError, split_name

log = logging.getLogger(__name__)

FORMAT = "bodycam-camera-registry-v1"
PREFIX = "registry/"
NAME = re.compile(r"cameras-(\d{10})\.json")
MAX_REGISTRY = 16 << 20
_DEVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class RegistryError(ValueError):
    """A published registry is malformed, unsigned, or older than the one already applied."""


class RegistrySignatureError(RegistryError):
    """A published registry is not signed by the key the dock was given."""


@dataclass(frozen=True)
class Registry:
    version: int
    issued_utc: float
    site: str
    cameras: dict[str, dict[str, str]]  # device_id -> {public_key, municipality, model}


def registry_key(version: int, sha256: str) -> str:
    return f"{PREFIX}cameras-{version:010d}.json.{sha256}"


def publish_registry(
    store: Store,
    signing_key: SigningKey,
    *,
    version: int,
    site: str,
    cameras: list[dict[str, str]],
    now: float,
) -> tuple[str, str]:
    """Sign and store registry `version`; returns (key, sha256). The back office calls this."""
    body = {
        "version": version,
        "issued_utc": now,
        "site": site,
        "cameras": sorted(cameras, key=lambda c: c["device_id"]),
    }
    raw = signed_document(FORMAT, "registry", body, signing_key)
    sha = hashlib.sha256(raw).hexdigest()
    key = registry_key(version, sha)
    store.put_bytes(key, raw)
    return key, sha


def parse_registry(raw: bytes, trusted_key: bytes, source: str = "registry") -> Registry:
    """Check signature and every entry; RegistryError naming what is wrong."""
    if len(raw) > MAX_REGISTRY:
        raise RegistryError(f"{source}: larger than {MAX_REGISTRY} bytes")
    try:
        doc = json.loads(raw)
        body = doc["registry"]
        signature = bytes.fromhex(doc["signature"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"{source}: not a camera registry ({exc})") from None
    if doc.get("format") != FORMAT or not isinstance(body, dict):
        raise RegistryError(f"{source}: format is not {FORMAT}")
    if not verify_signature(trusted_key, canonical(body), signature):
        raise RegistrySignatureError(
            f"{source}: signature does not verify with the back office's registry key"
        )
    cameras: dict[str, dict[str, str]] = {}
    try:
        version = int(body["version"])
        for c in body["cameras"]:
            dev, pub = str(c["device_id"]), str(c["public_key"])
            if not _DEVICE.fullmatch(dev) or not _HEX64.fullmatch(pub):
                raise RegistryError(f"{source}: camera entry {dev!r} is malformed")
            cameras[dev] = {
                "public_key": pub,
                "municipality": str(c.get("municipality", "")),
                "model": str(c.get("model", "")),
            }
        return Registry(version, float(body["issued_utc"]), str(body["site"]), cameras)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, RegistryError):
            raise
        raise RegistryError(f"{source}: malformed registry ({exc})") from None


def _published(store: Store) -> list[tuple[int, str]]:
    """(version, store key) of every registry in the store, newest first."""
    candidates: list[tuple[int, str]] = []
    for key in store.list(PREFIX):
        try:
            name, _ = split_name(key)
        except ValueError:
            continue
        m = NAME.fullmatch(name)
        if m:
            candidates.append((int(m.group(1)), key))
    return sorted(candidates, reverse=True)


def latest_registry(store: Store, trusted_key: bytes) -> tuple[Registry | None, str | None]:
    """The newest registry in the store that verifies, and why newer ones were skipped."""
    problem = None
    for version, key in _published(store):
        try:
            reg = parse_registry(store.get_bytes(key, MAX_REGISTRY), trusted_key, key)
        except (RegistryError, StoreError, OSError) as exc:
            problem = problem or str(exc)
            log.error("camera registry refused: %s", exc)  # the message names the key
            continue
        if reg.version != version:
            problem = problem or f"{key}: names version {version}, says {reg.version}"
            continue
        return reg, problem
    return None, problem


def unsigned_by(store: Store, trusted_key: bytes) -> str | None:
    """The newest published registry, when `trusted_key` verifies none of them.

    None when nothing is published yet, when one registry verifies, or when the
    failures are not signatures (a damaged copy is not the key's fault). A dock
    given another key than the back office's (another site's, or a dock's own)
    verifies nothing at all: that is what this finds.
    """
    unsigned = None
    for _, key in _published(store):
        try:
            parse_registry(store.get_bytes(key, MAX_REGISTRY), trusted_key, key)
        except RegistrySignatureError:
            unsigned = unsigned or key
            continue
        except (RegistryError, StoreError, OSError):
            continue
        return None
    return unsigned
