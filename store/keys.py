"""The store's key layout, the same for every backend.

A key is `/`-separated; the last component is the file's own name, a dot and the
lowercase hex SHA-256 of its bytes:

```
<site>/<device_id>/<recording_id>/recording.hdr.<sha256>
<site>/<device_id>/<recording_id>/manifest.bcm.<sha256>      one object per manifest version
<site>/<device_id>/<recording_id>/seg-000000.bcs.<sha256>
<site>/<device_id>/events/events-<first byte>-<end byte>.jsonl.<sha256>
quarantine/<any key above>                                    what failed verification
quarantine/<any key above>.reason.json.<sha256>               why
```

Because a name carries its digest, writing the same content twice is a no-op and
two different contents can never share a key. Every component follows the format's
name grammar (`crypto.names`): a name from a camera never becomes a key unchecked.
`retain_until` is the Object Lock date policy both backends apply.
"""

from __future__ import annotations

import re

from crypto.names import check_component, check_device_id, check_recording_id

DEFAULT_RETENTION_DAYS = 28.0
# A lock date must lie in the future when the PUT reaches the store: this much ahead.
MIN_LOCK_SECONDS = 300.0
QUARANTINE_PREFIX = "quarantine"
REASON_SUFFIX = ".reason.json"
MAX_KEY_LENGTH = 1024
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_EVENTS_PIECE = re.compile(r"events-(\d{12})-(\d{12})\.jsonl")


def _check_component(part: str, what: str) -> str:
    """One path component of a key: the format's name grammar (raises NameRefused)."""
    return check_component(part, what)


def check_sha(sha256: str) -> str:
    """`sha256` if it is 64 lowercase hex digits (how a key carries its content's hash)."""
    if not _SHA256_HEX.fullmatch(sha256):
        raise ValueError(f"sha256 {sha256!r} is not 64 lowercase hex digits")
    return sha256


def object_key(site: str, device_id: str, recording_id: str, name: str, sha256: str) -> str:
    """Key of one file of a recording: site/device/recording/name.sha256."""
    parts = (
        _check_component(site, "site"),
        check_device_id(device_id),
        check_recording_id(recording_id),
        f"{check_component(name, 'file name')}.{check_sha(sha256)}",
    )
    return "/".join(parts)


def events_key(site: str, device_id: str, start: int, end: int, sha256: str) -> str:
    """Key of one offloaded piece of a camera's event log (bytes start..end)."""
    if not 0 <= start < end:
        raise ValueError(f"event log piece {start}..{end} is empty or reversed")
    name = f"events-{start:012d}-{end:012d}.jsonl"
    return f"{events_prefix(site, device_id)}{name}.{check_sha(sha256)}"


def recording_prefix(site: str, device_id: str, recording_id: str) -> str:
    """Key prefix (ending in '/') of every object of one recording."""
    return (
        "/".join(
            (
                _check_component(site, "site"),
                _check_component(device_id, "device id"),
                _check_component(recording_id, "recording id"),
            )
        )
        + "/"
    )


def events_prefix(site: str, device_id: str) -> str:
    """Key prefix (ending in '/') of a camera's offloaded event log pieces."""
    return f"{_check_component(site, 'site')}/{_check_component(device_id, 'device id')}/events/"


def events_range(key: str) -> tuple[int, int] | None:
    """(start, end) byte range of an event log piece's key, None for any other key."""
    m = _EVENTS_PIECE.fullmatch(split_name(key)[0])
    return None if m is None else (int(m[1]), int(m[2]))


def quarantine_key(key: str) -> str:
    """Where a key's object goes when it failed verification."""
    return f"{QUARANTINE_PREFIX}/{check_key(key)}"


def split_name(key: str) -> tuple[str, str]:
    """(file name, sha256) of a content-addressed key's last component."""
    base = key.rsplit("/", 1)[-1]
    name, _, sha = base.rpartition(".")
    if not name or not _SHA256_HEX.fullmatch(sha):
        raise ValueError(f"{key!r} is not a content-addressed key (name.sha256)")
    return name, sha


def check_key(key: str) -> str:
    """`key` if every component of it is a safe name (never a path outside the store)."""
    parts = key.split("/")
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"store key {key!r} is empty or longer than 1024 characters")
    for part in parts:
        _check_component(part, "key component")
    return key


def retain_until(recorded_utc: float, now: float, days: float = DEFAULT_RETENTION_DAYS) -> float:
    """Object Lock date: recorded time + retention, at most now + retention.

    Footage docked on its last day is locked until its deadline itself, not a day past
    it, so the purge removes it on time. The upper bound stops a camera whose clock ran
    ahead from locking footage for years in COMPLIANCE mode (which nobody could undo).
    Only footage docked after its deadline gets a lock a few minutes ahead (S3 requires
    a date in the future); the next purge after that removes it.
    """
    seconds = days * 86400.0
    wanted = recorded_utc + seconds
    return max(now + min(MIN_LOCK_SECONDS, seconds), min(wanted, now + seconds))
