"""UTC instants as text, in the one form the IVOA documents and vo_clip's files share.

VOSI ``upSince``, OAI-PMH dates and VOResource ``created``/``updated`` are xs:dateTime
in UTC to the second with a ``Z`` (OAI-PMH 2.0 §3.3 allows no other form at the
``YYYY-MM-DDThh:mm:ssZ`` granularity), and the archive, index and model card stamp
their ``created`` the same way so that one reader parses them all. A naive datetime
is taken as UTC, never as local time. UWS job times carry milliseconds and keep their
own formatter (:func:`vo_clip.vo.uws.format_datetime`).
"""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["SECONDS_FORMAT", "utc_seconds"]

#: ``strftime``/``strptime`` form of :func:`utc_seconds`.
SECONDS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_seconds(moment: datetime | None = None) -> str:
    """``moment`` (default: now) as ``YYYY-MM-DDThh:mm:ssZ`` in UTC, to the second."""
    if moment is None:
        moment = datetime.now(timezone.utc)
    elif moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime(SECONDS_FORMAT)
