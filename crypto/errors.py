"""Errors of the sealed recording format and of key files.

Every problem a reader of sealed footage can hit maps to one specific type, so
the dock can quarantine with a precise reason and the vault can tell an
operator whether to fetch another key or report tampering. All of them are
`ValueError` subclasses: the `bodycam` CLI prints them as one line.

Errors from a segment or recording reader are sticky: once one is raised,
every later read on the same reader raises the same error again.
"""

from __future__ import annotations


class FormatError(ValueError):
    """Base of every error about sealed files (segments, recording header, manifest)."""


class WrongKey(FormatError):
    """None of the given keys opens the recording's data key (not one of its vault recipients)."""


class Tampered(FormatError):
    """Content fails authentication: changed, swapped, reordered, spliced or forged.

    `file` names the file (as it appears in the recording folder); `chunk` is the
    index of the chunk that failed, or None when the whole file or its header is at
    fault (for example a SHA-256 that differs from the signed manifest).
    """

    def __init__(self, file: str, chunk: int | None, reason: str) -> None:
        where = file if chunk is None else f"{file} chunk {chunk}"
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.chunk = chunk
        self.reason = reason

    def __reduce__(self) -> tuple[type[Tampered], tuple[str, int | None, str]]:
        # Keep the three-argument constructor working across pickling (multiprocessing).
        return (type(self), (self.file, self.chunk, self.reason))


class Truncated(FormatError):
    """A file or the recording ends early: missing bytes, chunks or segments."""


class UnknownVersion(FormatError):
    """A file in a format version (or a file kind) this build does not read."""


class NotSignedByDevice(FormatError):
    """The manifest's signature does not verify with the expected device public key."""


class KeyFileError(ValueError):
    """A key file is missing its fields, has the wrong kind or a malformed key."""
