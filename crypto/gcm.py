"""AES-256-GCM for the many chunks of one segment, with the per-key work done once.

Every chunk of a segment is sealed under the same key and associated data with its own
nonce (crypto/FORMAT.md, "Body: chunks"). `AES.new(key, MODE_GCM, nonce=...)` redoes,
per chunk, three AES key schedules, the GHASH key table and a dozen Python objects: about
50 us, more than the GCM work on a 64 KiB chunk. `ChunkGcm` builds the AES key schedule
(one ECB cipher) and the GHASH key table once per segment and then runs plain GCM
(NIST SP 800-38D) per chunk with a 96-bit nonce:

    J0 = nonce || 00000001, counter blocks J0+1, J0+2, ...   (one ECB call over all of
                                                              them, J0 included)
    C  = P xor keystream
    T  = E(J0) xor GHASH_H(A || pad || C || pad || len(A) || len(C))

The output is byte for byte what `AES.new(..., MODE_GCM)` gives (the tests compare both,
and the `cryptography` package opens the result). GHASH comes from pycryptodome's own
GCM module (its CLMUL implementation); where that inner layer is missing (another
pycryptodome line), `ChunkGcm` falls back to one `AES.new` per chunk: same bytes, slower.
"""

from __future__ import annotations

import hmac
import logging
import struct
from typing import Any

import numpy as np
from Crypto.Cipher import AES

log = logging.getLogger(__name__)

NONCE_SIZE = 12
BLOCK = 16

try:  # pycryptodome's GHASH layer: not public API, so checked once and used if it fits
    from Crypto.Cipher import _mode_gcm
    from Crypto.Util._raw_api import create_string_buffer

    _GHASH: Any = _mode_gcm._GHASH
    _GHASH_IMPL: Any = _mode_gcm._ghash_clmul or _mode_gcm._ghash_portable
    _probe = _GHASH(bytes(16), _GHASH_IMPL)
    _probe._last_y = create_string_buffer(16)  # reset as ChunkGcm does per chunk
    _probe.update(bytes(16)).digest()
    FAST_PATH = True
except (ImportError, AttributeError, TypeError, ValueError) as exc:  # pragma: no cover
    log.warning("pycryptodome's GHASH layer is not usable (%s); GCM per chunk is slower", exc)
    FAST_PATH = False


def _pad16(n: int) -> int:
    return -n % BLOCK


class ChunkGcm:
    """GCM under one key and one associated data, for chunks of at most `max_size` bytes."""

    def __init__(self, key: bytes | bytearray, associated_data: bytes, max_size: int) -> None:
        if len(key) != 32:
            raise ValueError(f"AES-256 key must be 32 bytes, got {len(key)}")
        self._key = key  # the caller's buffer (a segment key it wipes); used by the fallback
        self._aad = bytes(associated_data)
        self._max = max_size
        self._wiped = False
        if not FAST_PATH:
            return
        self._ecb = AES.new(bytes(key), AES.MODE_ECB)
        self._ghash = _GHASH(self._ecb.encrypt(bytes(BLOCK)), _GHASH_IMPL)
        self._aad_padded = self._aad + bytes(_pad16(len(self._aad)))
        self._last_block = bytearray(BLOCK)
        self._blocks = 0
        self._grow(0)

    def _grow(self, n: int) -> None:
        """Counter and keystream buffers for chunks of `n` bytes.

        Sized by the chunks actually seen, not by the declared maximum, so a reader of a
        short (or forged) file allocates no more than the file holds.
        """
        blocks = 1 + -(-n // BLOCK)  # J0, then one counter block per 16 bytes
        # Counter blocks: the nonce goes in bytes 0..11 per chunk, the big-endian block
        # counter in 12..15 is the same for every chunk (1 for J0, then 2, 3, ...).
        self._counters = np.zeros((blocks, 4), dtype=np.uint32)
        self._counters[:, 3] = np.arange(1, blocks + 1, dtype=">u4").view(np.uint32)
        self._counter_bytes = self._counters.data.cast("B")
        self._keystream = np.zeros(blocks * BLOCK, dtype=np.uint8)
        self._keystream_view = self._keystream.data
        self._blocks = blocks
        self._nonce_words: list[int | None] = [None, None, None]  # what the counters hold

    def _keystream_for(self, nonce: bytes, n: int) -> np.ndarray:
        """E(J0) in bytes 0..15, then the keystream for `n` bytes of the chunk."""
        if 1 + -(-n // BLOCK) > self._blocks:
            self._grow(n)
        # Chunk nonces of a segment share their first 8 bytes (prefix and the counter's
        # high byte) for 2**24 chunks in a row: rewrite only the words that changed.
        words = struct.unpack("=3I", nonce)
        for col, word in enumerate(words):
            if self._nonce_words[col] != word:
                self._counters[:, col] = word
                self._nonce_words[col] = word
        size = BLOCK * (1 + -(-n // BLOCK))
        self._ecb.encrypt(self._counter_bytes[:size], output=self._keystream_view[:size])
        return self._keystream

    def _tag(self, ciphertext: memoryview, ks: np.ndarray) -> bytes:
        g = self._ghash
        g._last_y = create_string_buffer(BLOCK)
        if self._aad_padded:
            g.update(self._aad_padded)
        n = len(ciphertext)
        whole = n - n % BLOCK
        if whole:
            g.update(ciphertext[:whole])
        if whole != n:
            last = self._last_block
            last[:] = bytes(BLOCK)
            last[: n - whole] = ciphertext[whole:]
            g.update(last)
        g.update(struct.pack(">QQ", 8 * len(self._aad), 8 * n))
        s = int.from_bytes(g.digest(), "big") ^ int.from_bytes(ks[:BLOCK].tobytes(), "big")
        return s.to_bytes(BLOCK, "big")

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
        if not FAST_PATH:
            cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce, mac_len=BLOCK)
            cipher.update(self._aad)
            cipher.encrypt(plaintext, output=out[:n])
            return cipher.digest()
        ks = self._keystream_for(nonce, n)
        if n:
            ct = np.frombuffer(out, dtype=np.uint8, count=n)
            np.bitwise_xor(np.frombuffer(plaintext, dtype=np.uint8), ks[BLOCK : BLOCK + n], out=ct)
        return self._tag(out[:n], ks)

    def decrypt(
        self, nonce: bytes, ciphertext: memoryview, tag: memoryview, out: memoryview
    ) -> bool:
        """Decrypt into `out[:len(ciphertext)]` and check `tag`; False if it does not match.

        On False, `out` holds unauthenticated bytes: the caller must not use them.
        """
        n = len(ciphertext)
        if self._wiped:
            return False  # as the zeroed key of a wiped reader would: nothing opens
        self._check(nonce, n)
        if not FAST_PATH:
            cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce, mac_len=BLOCK)
            cipher.update(self._aad)
            cipher.decrypt(ciphertext, output=out[:n])
            try:
                cipher.verify(tag)
            except ValueError:
                return False
            return True
        ks = self._keystream_for(nonce, n)
        expected = self._tag(ciphertext, ks)
        if n:
            pt = np.frombuffer(out, dtype=np.uint8, count=n)
            np.bitwise_xor(np.frombuffer(ciphertext, dtype=np.uint8), ks[BLOCK : BLOCK + n], out=pt)
        return hmac.compare_digest(expected, bytes(tag))

    def wipe(self) -> None:
        """Drop the key schedule and overwrite the keystream buffer this object owns.

        The ECB cipher's expanded key lives in pycryptodome's memory and is freed (not
        scrubbed) with the object, as with `AES.new` per chunk.
        """
        self._wiped = True
        if FAST_PATH:
            self._keystream[:] = 0
            self._ecb = None  # type: ignore[assignment]
