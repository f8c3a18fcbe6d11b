"""Writing a recording's signed manifest, shared by sealing and power-cut recovery.

`ManifestWriter` appends one signed entry at a time and rewrites `manifest.bcm` atomically
after each, so the chain on disk is always complete and signed. Layout: crypto/FORMAT.md.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import NamedTuple

from crypto.format import (
    MANIFEST_NAME,
    MAX_ENTRIES,
    ManifestRecord,
    entry_body,
    entry_message,
    manifest_bytes,
)
from crypto.keys import SigningKey
from crypto.sealed_files import write_atomic

log = logging.getLogger(__name__)


class SealedSegmentInfo(NamedTuple):
    """A segment that is sealed, renamed to its final name and signed into the manifest."""

    name: str
    path: Path
    sha256: str  # lowercase hex of the whole sealed file
    size: int
    chunks: int


class SealerStateError(RuntimeError):
    """The sealer was used out of order (segment still open, recording already finished)."""


class ManifestWriter:
    """Appends signed entries and rewrites `manifest.bcm` atomically after each one."""

    def __init__(
        self, directory: Path, signer: SigningKey, entries: list[bytes], prev: bytes
    ) -> None:
        self.directory = directory
        self.signer = signer
        self.entries = entries
        self.prev = prev

    @classmethod
    def resume(
        cls, directory: Path, signer: SigningKey, records: list[ManifestRecord]
    ) -> ManifestWriter:
        return cls(directory, signer, [r.to_bytes() for r in records], records[-1].link)

    def append(
        self,
        kind: int,
        index: int = 0,
        chunks: int = 0,
        size: int = 0,
        start_pts: int = 0,
        utc: float = 0.0,
        digest: bytes = bytes(32),
    ) -> None:
        if len(self.entries) >= MAX_ENTRIES:
            raise SealerStateError(f"manifest is full ({MAX_ENTRIES} entries)")
        body = entry_body(
            kind, len(self.entries), index, chunks, size, start_pts, utc, digest, self.prev
        )
        signature = self.signer.sign(entry_message(body))
        write_atomic(
            self.directory / MANIFEST_NAME, manifest_bytes([*self.entries, body + signature])
        )
        # Only a manifest that reached the disk advances the chain.
        self.entries.append(body + signature)
        self.prev = hashlib.sha256(body).digest()
