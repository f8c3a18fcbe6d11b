"""Fixtures for the sealed format; they and the helpers live in crypto_support."""

from crypto_support import ckeys, make_recording

__all__ = ["ckeys", "make_recording"]
