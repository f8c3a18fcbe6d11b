"""AES-256-GCM for the many chunks of one segment, on pycryptodome's public API only.

Every chunk of a segment is sealed under the same key and associated data with its own
nonce (crypto/FORMAT.md, "Body: chunks"): one `AES.new(key, MODE_GCM, nonce=...)` per
chunk. Creating that cipher costs about as much as the GCM work on a 64 KiB chunk
(FIELD-NOTES.md); that price is paid rather than reaching into pycryptodome's private
GHASH layer, which can change in any release.

Decryption never hands unauthenticated bytes to the caller: a chunk is decrypted into a
buffer this object owns, its tag checked, and only then copied into the caller's buffer.
A chunk that fails leaves the caller's buffer untouched and the private copy zeroed.
"""

from __future__ import annotations

import logging

from Crypto.Cipher import AES

log = logging.getLogger(__name__)

NONCE_SIZE = 12
BLOCK = 16
TAG_SIZE = 16


class ChunkGcm:
    """GCM under one key and one associated data, for chunks of at most `max_size` bytes."""

    def __init__(self, key: bytes | bytearray, associated_data: bytes, max_size: int) -> None:
        if len(key) != 32:
            raise ValueError(f"AES-256 key must be 32 bytes, got {len(key)}")
        self._key = key  # the caller's buffer (a segment key it wipes)
        self._aad = bytes(associated_data)
        self._max = max_size
        self._wiped = False
        # Sized by the chunks actually seen, not by the declared maximum, so a reader of
        # a short (or forged) file allocates no more than the file holds.
        self._plain = bytearray(0)

    def _check(self, nonce: bytes, n: int) -> None:
        if self._wiped:
            raise ValueError("the chunk cipher was wiped")
        if len(nonce) != NONCE_SIZE:
            raise ValueError(f"nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")
        if n > self._max:
            raise ValueError(f"chunk of {n} bytes exceeds {self._max}")

    def encrypt(self, nonce: bytes, plaintext: memoryview | bytearray, out: memoryview) -> bytes:
        """Encrypt `plaintext` into `out[:len(plaintext)]`; returns the 16-byte tag."""
        n = len(plaintext)
        self._check(nonce, n)
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_SIZE)
        if self._aad:
            cipher.update(self._aad)
        if n:
            cipher.encrypt(plaintext, output=out[:n])
        tag: bytes = cipher.digest()
        return tag

    def decrypt(
        self, nonce: bytes, ciphertext: memoryview, tag: memoryview, out: memoryview
    ) -> bool:
        """Authenticate and decrypt into `out[:len(ciphertext)]`; False if the tag fails.

        On False nothing was written to `out`.
        """
        n = len(ciphertext)
        if self._wiped:
            return False  # as the zeroed key of a wiped reader would: nothing opens
        self._check(nonce, n)
        if len(out) < n:
            raise ValueError(f"output buffer of {len(out)} bytes is too small")
        if len(self._plain) < n:
            self._plain = bytearray(n)
        private = memoryview(self._plain)[:n]
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_SIZE)
        if self._aad:
            cipher.update(self._aad)
        if n:
            cipher.decrypt(ciphertext, output=private)
        try:
            cipher.verify(tag)  # pycryptodome compares tags without a data-dependent time
        except ValueError:
            private[:] = bytes(n)
            return False
        out[:n] = private
        return True

    def wipe(self) -> None:
        """Refuse further use and overwrite the plaintext buffer this object owns.

        The key itself is the caller's buffer, which the caller overwrites; each chunk's
        cipher (its expanded key in pycryptodome's memory) is freed, not scrubbed.
        """
        self._wiped = True
        self._plain[:] = bytes(len(self._plain))
