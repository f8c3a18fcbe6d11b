"""Errors of the pre-record buffer; all are `ValueError`s so a caller can catch them as such."""

from __future__ import annotations


class BufferConfigError(ValueError):
    """A construction argument is out of range (the message names the argument and the range)."""


class PacketTooLarge(ValueError):
    """A packet is larger than the whole arena, so no eviction can make room for it."""


class NonMonotonicPts(ValueError):
    """A packet's pts is not greater than the previous pts of the same stream."""


class InvalidPacket(ValueError):
    """A packet is empty, or its stream id, duration or pts is out of range."""


class BufferFrozen(ValueError):
    """A packet for a buffer whose pre-roll is frozen (a recording still reads it)."""
