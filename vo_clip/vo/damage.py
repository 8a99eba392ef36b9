"""Telling damaged service data from a bad request.

When the index's catalog is truncated, overwritten or unreadable, SQLite answers any
query with "database disk image is malformed" or "file is not a database". Those are
the service's faults, whatever the query: reported as a UsageFault (400) they would
blame the caller, and left alone they would be an unexplained 500. This module
recognises them, so that every endpoint answers the same clear server fault and the
operator's log says which index to rebuild.
"""

from __future__ import annotations

import logging
import sqlite3

from ..errors import IndexDamagedError
from .faults import FatalFault

__all__ = ["DAMAGED_MESSAGE", "damage_fault", "is_damage"]

log = logging.getLogger(__name__)

DAMAGED_MESSAGE = "the service's data is damaged"
_HINT = "the operator must rebuild the index ('vo-clip index --rebuild'); try again later"

#: SQLite's primary result codes that mean the file, not the statement, is at fault.
_DAMAGE_CODES = {"SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_IOERR", "SQLITE_CANTOPEN"}
_DAMAGE_TEXTS = ("malformed", "not a database", "disk i/o error", "unable to open database")


def is_damage(error: BaseException) -> bool:
    """Whether ``error`` says the served index is damaged or unreadable.

    A published table missing from the catalog ("no such table") counts: the
    translator only names tables that the catalog is built with.
    """
    if isinstance(error, IndexDamagedError):
        return True
    if not isinstance(error, sqlite3.Error):
        return False
    name = getattr(error, "sqlite_errorname", "") or ""  # Python 3.11+
    if any(name == code or name.startswith(code + "_") for code in _DAMAGE_CODES):
        return True  # extended codes carry the primary one as a prefix
    text = str(error).lower()
    return any(part in text for part in _DAMAGE_TEXTS) or text.startswith("no such table")


def damage_fault(error: BaseException) -> FatalFault | None:
    """The fault to answer for ``error`` if it is damage (logged once here), else None."""
    if not is_damage(error):
        return None
    log.error("the index is damaged: %s", error)
    return FatalFault(f"{DAMAGED_MESSAGE}: {_reason(error)}", _HINT)


def _reason(error: BaseException) -> str:
    if isinstance(error, IndexDamagedError):
        return "the index cannot be read"
    return f"its catalog cannot be read ({error})"
