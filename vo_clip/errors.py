"""Errors that reach a user: one sentence of what went wrong, and a hint on what to do.

Everything the library raises on bad input derives from :class:`VoClipError`; built-in
exceptions escaping the library mean bugs. The command line prints ``message`` (and
``hint``) on one line each and exits non-zero; the service turns the same errors into
VO error documents.
"""

from __future__ import annotations

__all__ = [
    "ArchiveError",
    "CheckpointError",
    "IndexDamagedError",
    "IndexMismatchError",
    "IndexMissingError",
    "ModelUnavailableError",
    "QueryError",
    "UnknownObservationError",
    "VoClipError",
]


class VoClipError(Exception):
    """Base of all user-facing errors.

    Parameters
    ----------
    message : str
        One sentence saying what is wrong, naming the offending value.
    hint : str, optional
        What the user can do about it.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ArchiveError(VoClipError):
    """The archive directory is missing, incomplete, or its observations table is invalid."""


class CheckpointError(VoClipError):
    """A file given as a model checkpoint cannot be read as one."""


class ModelUnavailableError(VoClipError):
    """Model weights are not on this machine and cannot be fetched."""


class IndexMissingError(VoClipError):
    """No index exists where one was expected."""


class IndexDamagedError(VoClipError):
    """A file of an index is truncated, garbage or unreadable; rebuilding it is the cure."""


class IndexMismatchError(VoClipError):
    """An index was built from another model or another version of the archive."""


class UnknownObservationError(VoClipError):
    """An observation id is not in the index."""


class QueryError(VoClipError):
    """A search request is malformed: empty text, unreadable image, bad filter."""
