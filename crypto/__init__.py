"""Sealed recording format: keys, sealing on the camera, verification, opening (FORMAT.md)."""
