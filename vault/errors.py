"""The back office's exceptions: each says what is wrong in words a user can act on."""

from __future__ import annotations


class VaultError(Exception):
    """Base of every back-office failure."""


class AuthenticationFailed(VaultError):
    """Unknown user, wrong password, or an inactive account."""


class PermissionRefused(VaultError, PermissionError):
    """The municipality's policy does not allow this user this action (the refusal is audited)."""


class NotFound(VaultError, LookupError):
    """No such recording, camera, officer, hold or user visible to this user."""


class InvalidRequest(VaultError, ValueError):
    """The request breaks a rule of the policy or names something malformed."""


class OriginRefused(VaultError):
    """A recording is not signed by a key the coordinator registered for its camera."""


class NotConfigured(VaultError):
    """The back office is not set up (no database, no site file, no key)."""


class FootageUnavailable(VaultError):
    """The footage cannot be prepared for viewing: it does not verify, decrypt or open as video."""
