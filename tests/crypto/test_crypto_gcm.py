"""crypto.gcm: per-segment GCM gives the same bytes as `AES.new(..., MODE_GCM)` per chunk,
and what it seals opens with the independent `cryptography` package."""

from __future__ import annotations

import os

import pytest
from Crypto.Cipher import AES
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crypto import gcm
from crypto.gcm import ChunkGcm

KEY = bytes(range(32))
MAX = 1024


def test_the_fast_path_is_in_use_with_the_installed_pycryptodome() -> None:
    # If a pycryptodome upgrade moves its GHASH layer, sealing falls back to a slow path
    # silently in production; this makes the change visible.
    assert gcm.FAST_PATH


@pytest.mark.parametrize("aad", [b"", b"h", bytes(range(16)), os.urandom(93)])
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 255, MAX - 1, MAX])
def test_same_bytes_as_pycryptodome_and_opens_with_cryptography(aad: bytes, size: int) -> None:
    box = ChunkGcm(bytearray(KEY), aad, MAX)
    plain = os.urandom(size)
    for counter in range(3):  # several chunks through the same object
        nonce = os.urandom(12)
        out = memoryview(bytearray(MAX + 16))
        tag = box.encrypt(nonce, memoryview(plain), out)
        ref = AES.new(KEY, AES.MODE_GCM, nonce=nonce, mac_len=16)
        ref.update(aad)
        ct, ref_tag = ref.encrypt_and_digest(plain)
        assert bytes(out[:size]) == ct and tag == ref_tag, counter
        assert AESGCM(KEY).decrypt(nonce, ct + tag, aad) == plain
        back = memoryview(bytearray(MAX))
        assert box.decrypt(nonce, memoryview(ct), memoryview(tag), back)
        assert bytes(back[:size]) == plain


def test_a_changed_byte_nonce_or_tag_does_not_open() -> None:
    box = ChunkGcm(bytearray(KEY), b"aad", MAX)
    nonce = bytes(12)
    out = memoryview(bytearray(MAX + 16))
    tag = box.encrypt(nonce, memoryview(b"x" * 100), out)
    ct = bytearray(out[:100])
    back = memoryview(bytearray(MAX))
    assert box.decrypt(nonce, memoryview(ct), memoryview(tag), back)
    ct[50] ^= 1
    assert not box.decrypt(nonce, memoryview(ct), memoryview(tag), back)
    ct[50] ^= 1
    assert not box.decrypt(b"\x01" + nonce[1:], memoryview(ct), memoryview(tag), back)
    assert not box.decrypt(nonce, memoryview(ct), memoryview(bytes(16)), back)


def test_bad_sizes_and_a_wiped_cipher_are_refused() -> None:
    box = ChunkGcm(bytearray(KEY), b"", MAX)
    out = memoryview(bytearray(MAX + 32))
    with pytest.raises(ValueError, match="exceeds"):
        box.encrypt(bytes(12), memoryview(bytes(MAX + 1)), out)
    with pytest.raises(ValueError, match="nonce"):
        box.encrypt(bytes(8), memoryview(b"x"), out)
    with pytest.raises(ValueError, match="32 bytes"):
        ChunkGcm(bytearray(16), b"", MAX)
    tag = box.encrypt(bytes(12), memoryview(b"abc"), out)
    box.wipe()
    assert not box.decrypt(bytes(12), out[:3], memoryview(tag), memoryview(bytearray(3)))
    with pytest.raises(ValueError, match="wiped"):
        box.encrypt(bytes(12), memoryview(b"abc"), out)
