"""crypto.gcm: GCM per chunk on pycryptodome's public API gives the bytes the independent
`cryptography` package opens, and a chunk that does not authenticate gives the caller
no plaintext."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
from Crypto.Cipher import AES
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crypto.gcm import ChunkGcm

KEY = bytes(range(32))
MAX = 1024


@pytest.mark.parametrize(
    "aad",
    [b"", b"h", bytes(range(16)), bytes((i * 151 + 7) % 256 for i in range(93))],
    ids=["none", "1-byte", "16-byte", "93-byte"],
)
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


def test_a_chunk_that_does_not_authenticate_leaves_the_callers_buffer_untouched() -> None:
    box = ChunkGcm(bytearray(KEY), b"aad", MAX)
    nonce = bytes(12)
    plain = bytes(range(200))
    out = memoryview(bytearray(MAX + 16))
    tag = box.encrypt(nonce, memoryview(plain), out)
    ct = bytearray(out[:200])
    ct[-1] ^= 1
    back = bytearray(b"\xaa" * MAX)
    assert not box.decrypt(nonce, memoryview(ct), memoryview(tag), memoryview(back))
    assert back == b"\xaa" * MAX  # not one byte of the forged chunk's plaintext
    ct[-1] ^= 1
    assert not box.decrypt(nonce, memoryview(ct), memoryview(bytes(16)), memoryview(back))
    assert back == b"\xaa" * MAX


def _private_names(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in modules:
            parts = name.split(".")
            if parts[0] in ("Crypto", "Cryptodome", "cryptography") and any(
                p.startswith("_") for p in parts[1:]
            ):
                found.append(name)
    return found


def test_crypto_uses_no_private_name_of_a_crypto_library() -> None:
    root = Path(__file__).resolve().parents[2] / "crypto"
    files = sorted(root.rglob("*.py"))
    assert files
    bad = {
        str(f.relative_to(root)): names
        for f in files
        if (names := _private_names(ast.parse(f.read_text(), str(f))))
    }
    assert bad == {}
    # and nothing reaches a private attribute of one either (e.g. `_mode_gcm._GHASH`)
    for f in files:
        text = f.read_text()
        assert "_mode_gcm" not in text and "_raw_api" not in text and "_last_y" not in text, f


def test_the_check_finds_a_private_import() -> None:
    tree = ast.parse("from Crypto.Cipher import _mode_gcm\nimport Crypto.Util._raw_api\n")
    assert _private_names(tree) == ["Crypto.Cipher._mode_gcm", "Crypto.Util._raw_api"]
