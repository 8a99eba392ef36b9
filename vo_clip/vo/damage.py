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

from ..errors import IndexDamagedError
from ..search.backends.sqlite import is_damage as is_sqlite_damage
from .faults import FatalFault

__all__ = ["DAMAGED_MESSAGE", "damage_fault", "damaged_catalog_fault", "is_damage"]

log = logging.getLogger(__name__)

DAMAGED_MESSAGE = "the service's data is damaged"
_HINT = "the operator must rebuild the index ('vo-clip index --rebuild'); try again later"


def is_damage(error: BaseException) -> bool:
    """Whether ``error`` says the served index is damaged or unreadable."""
    return isinstance(error, IndexDamagedError) or is_sqlite_damage(error)


def damage_fault(error: BaseException) -> FatalFault | None:
    """The fault to answer for ``error`` if it is damage (logged once here), else None."""
    if not is_damage(error):
        return None
    log.error("the index is damaged: %s", error)
    return FatalFault(f"{DAMAGED_MESSAGE}: {_reason(error)}", _HINT)


def damaged_catalog_fault(message: str) -> FatalFault:
    """The fault for a catalog the backend found unreadable (``message`` says how)."""
    log.error("the index is damaged: %s", message)
    return FatalFault(f"{DAMAGED_MESSAGE}: its catalog cannot be read ({message})", _HINT)


def _reason(error: BaseException) -> str:
    if isinstance(error, IndexDamagedError):
        return "the index cannot be read"
    return f"its catalog cannot be read ({error})"
