"""What can go wrong with a store: one base class, and a subclass per thing the caller does next."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every storage failure; the message says what to do."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now (network, server down, disk unmounted); retry later."""


class StoreFull(StoreError):
    """The store has no room for the object; free space or add capacity, then retry."""


class StoreIntegrityError(StoreError):
    """The store holds or returned something other than what was sent: never release."""


class StoreConfigError(StoreError, ValueError):
    """The store URL or the bucket/directory is not usable as a bodycam store."""


class StoreLocked(StoreError):
    """A legal hold or an unexpired Object Lock retention still protects the object."""
